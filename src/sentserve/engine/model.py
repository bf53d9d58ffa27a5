"""One served model: where it lives, its status, and once ready its tokenizer, backend, batcher.

Loading validates everything a request would trip over later (files, vocabulary, tensors,
a smoke embedding), so a model is `ready` only when it can really answer.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from sentserve import metrics
from sentserve.engine.backends import Backend
from sentserve.engine.backends.checkpoint import PREFIX, CheckpointBackend, checkpoint_files
from sentserve.engine.backends.saved_model import SavedModelBackend
from sentserve.engine.batcher import MicroBatcher, Row
from sentserve.engine.errors import (
    InferenceFailed,
    InvalidInput,
    ModelLoadError,
    ModelNotReady,
    ModelTimeout,
    SentenceTooLong,
)
from sentserve.engine.manifest import Manifest
from sentserve.engine.tokenizers import (
    EncodedSentence,
    GensimTokenizer,
    Tokenizer,
    VocabTokenizer,
    Vocabulary,
)
from sentserve.settings import Settings

log = logging.getLogger(__name__)
VOCABULARY_FILE = "word_mapping.json"
DEFAULT_MAX_TOKENS = 128
PROBE_SENTENCE = "hola mundo hello world"


class ModelStatus(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    DISABLED = "disabled"


@dataclass
class Embedding:
    """Vectors for a list of sentences, with what the answer reports about them."""

    vectors: np.ndarray
    encoded: list[EncodedSentence]
    token_count: int  # ids fed to the model; words, for a model that tokenizes in its graph
    oov_count: int
    tokenize_s: float
    queue_s: float
    inference_s: float


def version_folder(folder: Path) -> tuple[Path, int]:
    """The folder to serve and its version: the highest numeric subfolder, else the folder as 1."""
    versions = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    if versions:
        return folder / str(max(versions)), max(versions)
    return folder, 1


class ServedModel:
    def __init__(self, name: str, folder: Path, settings: Settings) -> None:
        self.name = name
        self.folder = folder
        self.settings = settings
        self.status = ModelStatus.LOADING
        self.reason: str | None = None
        self.version = 1
        self.warnings: list[str] = []
        self.load_seconds: float | None = None
        self.inference_errors = 0
        self._errors_lock = threading.Lock()
        self.manifest = Manifest()
        self.tokenizer: Tokenizer | None = None
        self.backend: Backend | None = None
        self.batcher: MicroBatcher | None = None
        self.max_tokens = DEFAULT_MAX_TOKENS

    # -- status ---------------------------------------------------------------------------

    def mark(self, status: ModelStatus, reason: str | None = None) -> None:
        self.status, self.reason = status, reason

    def require_ready(self) -> None:
        if self.status is not ModelStatus.READY:
            raise ModelNotReady(self.name, self.status.value, self.reason)

    # -- loading --------------------------------------------------------------------------

    def load(self, intra: int, inter: int) -> None:
        """Load and validate; on any problem the model is `failed` with a reason, never raises."""
        started = time.monotonic()
        try:
            self._load(intra, inter)
            self._smoke_test()
            self._warm_up()
        except ModelLoadError as exc:
            self.close()
            self.mark(ModelStatus.FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken model must not stop the others
            log.exception("model %s failed to load", self.name)
            self.close()
            self.mark(ModelStatus.FAILED, f"unexpected error while loading: {exc}")
        else:
            self.load_seconds = time.monotonic() - started
            self.mark(ModelStatus.READY)
        for warning in self.warnings:
            log.warning("model %s: %s", self.name, warning)

    def _load(self, intra: int, inter: int) -> None:
        if not self.folder.is_dir():
            raise ModelLoadError(f"not found: no folder {self.folder}")
        folder, self.version = version_folder(self.folder)
        self.manifest = Manifest.read(folder)
        if (folder / "saved_model.pb").is_file():
            self.backend = SavedModelBackend(folder, self.manifest)
        elif (folder / f"{PREFIX}.meta").is_file():
            self._check_classic_files(folder)
            self.backend = CheckpointBackend(folder, self.manifest, intra, inter)
        else:
            raise ModelLoadError(f"no saved_model.pb or {PREFIX}.meta in {folder}")
        backend = self.backend
        self.max_tokens = self.manifest.max_tokens or backend.input_length or DEFAULT_MAX_TOKENS
        if backend.input_length is not None and self.max_tokens > backend.input_length:
            raise ModelLoadError(
                f"max_tokens {self.max_tokens} exceeds the input's fixed length"
                f" {backend.input_length}"
            )
        if backend.input_kind == "ids":
            self.tokenizer = self._tokenizer(folder / VOCABULARY_FILE)
        self.batcher = self._batcher(backend)

    def _check_classic_files(self, folder: Path) -> None:
        """MODEL_FILES, as the classic server required; the checkpoint prefix entry is met by a
        V1 single file or a V2 .index/.data pair."""
        missing = []
        for name in self.settings.model_files:
            present = (
                checkpoint_files(folder) is not None if name == PREFIX else (folder / name).exists()
            )
            if not present:
                missing.append(name)
        if missing:
            raise ModelLoadError(f"missing {', '.join(missing)} (required by MODEL_FILES)")

    def _tokenizer(self, path: Path) -> Tokenizer:
        mapping, self.warnings = Vocabulary.read_mapping(path)
        vocabulary = Vocabulary(mapping, self.manifest.oov_token_or(self.settings.oov_token))
        rows = self.backend.embedding_rows if self.backend else None
        if rows is not None and vocabulary.max_id >= rows:
            raise ModelLoadError(
                f"{VOCABULARY_FILE} has id {vocabulary.max_id}, outside the embedding table"
                f" of {rows} rows"
            )
        spec = self.manifest.tokenizer
        if spec.kind == "gensim":
            return GensimTokenizer(vocabulary, self.max_tokens)
        return VocabTokenizer(
            vocabulary, self.max_tokens, spec.lowercase, spec.fold_accents, spec.keep_punctuation
        )

    def _batcher(self, backend: Backend) -> MicroBatcher:
        spec, settings = self.manifest.batching, self.settings
        return MicroBatcher(
            self.name,
            self._run_rows,
            max_batch_size=spec.max_batch_size or settings.max_batch_size,
            max_wait_ms=spec.max_wait_ms if spec.max_wait_ms is not None else settings.max_wait_ms,
            max_queued_sentences=spec.max_queued_sentences or settings.max_queued_sentences,
            group_by_length=backend.input_kind == "ids" and backend.input_length is None,
            on_batch=metrics.batch_observer(self.name),
        )

    def _smoke_test(self) -> None:
        vectors = self._embed([PROBE_SENTENCE], truncate=True).vectors
        assert self.backend is not None
        expected = (1, self.backend.dimensions)
        if vectors.shape != expected or not np.isfinite(vectors).all():
            raise ModelLoadError(
                f"smoke embedding of {PROBE_SENTENCE!r} gave shape {vectors.shape}"
                f" (finite: {bool(np.isfinite(vectors).all())}); expected {expected} finite floats"
            )

    def _warm_up(self) -> None:
        """A few batches of growing size, so the first real request does not pay TF's warm-up."""
        for batch in range(self.settings.warmup_batches):
            self._embed([PROBE_SENTENCE] * (4**batch), truncate=True)

    # -- inference ------------------------------------------------------------------------

    def encode(
        self, sentences: list[str], truncate: bool = True, max_tokens: int | None = None
    ) -> list[EncodedSentence]:
        if self.tokenizer is None:  # the graph tokenizes: report whitespace words
            return [_whitespace(text) for text in sentences]
        return self.tokenizer.encode_batch(sentences, truncate, max_tokens)

    def embed(
        self, sentences: list[str], truncate: bool = True, max_tokens: int | None = None
    ) -> Embedding:
        """Tokenize and embed through the batcher. Raises ModelNotReady, SentenceTooLong,
        QueueFull or InferenceFailed, each meaning only this request."""
        self.require_ready()
        return self._embed(sentences, truncate, max_tokens)

    def _embed(
        self, sentences: list[str], truncate: bool, max_tokens: int | None = None
    ) -> Embedding:
        started = time.monotonic()
        encoded = self.encode(sentences, truncate, max_tokens)
        rows: list[Row]
        if self.tokenizer is None:  # the graph tokenizes: count the words it is given
            rows, tokens = list(sentences), sum(len(e.tokens) for e in encoded)
        else:
            rows = [e.input_ids for e in encoded]
            tokens = sum(len(row) for row in rows)
        tokenized = time.monotonic()
        vectors, queue_s, inference_s = self._submit(rows)
        oov = sum(e.oov_count for e in encoded)
        return Embedding(vectors, encoded, tokens, oov, tokenized - started, queue_s, inference_s)

    def embed_ids(self, rows: list[list[int]]) -> Embedding:
        """Raw token ids, as TF Serving would take them; checked against the model's limits."""
        self.require_ready()
        assert self.backend is not None
        if self.backend.input_kind != "ids":
            raise InvalidInput(f"model '{self.name}' takes text, not token ids")
        limit = self.backend.embedding_rows
        for index, row in enumerate(rows):
            if len(row) > self.max_tokens:
                raise SentenceTooLong(index, len(row), self.max_tokens)
            if any(i < 0 or (limit is not None and i >= limit) for i in row):
                raise InvalidInput(f"instance {index} has ids outside [0, {limit})")
        vectors, queue_s, inference_s = self._submit(list(rows))
        tokens = sum(len(row) for row in rows)
        return Embedding(vectors, [], tokens, 0, 0.0, queue_s, inference_s)

    def _submit(self, rows: list[Row]) -> tuple[np.ndarray, float, float]:
        batcher = self.batcher  # read once: close() may clear it meanwhile
        if batcher is None:
            raise ModelNotReady(self.name, self.status.value, self.reason or "closed")
        ticket = batcher.submit(rows)
        try:
            vectors = ticket.result(timeout=self.settings.timeout_s)
        except TimeoutError:
            raise ModelTimeout(self.name, self.settings.timeout_s) from None
        except Exception as exc:
            with self._errors_lock:
                self.inference_errors += 1
            raise InferenceFailed(self.name, exc) from exc
        return vectors, ticket.queue_s, ticket.inference_s

    def _run_rows(self, rows: list[Row]) -> np.ndarray:
        """Called by the batcher: pad id rows into one matrix and run the backend."""
        assert self.backend is not None
        if self.backend.input_kind == "text":
            return self.backend.embed(np.array(rows, dtype=object))
        width = self.backend.input_length or max(1, max(len(row) for row in rows))
        batch = np.full((len(rows), width), self.manifest.pad_id, dtype=np.int64)
        for index, row in enumerate(rows):
            batch[index, : len(row)] = row
        return self.backend.embed(batch)

    def close(self) -> None:
        """Finish queued work and free the session; a model closed while ready is disabled."""
        if self.status is ModelStatus.READY:
            self.mark(ModelStatus.DISABLED, "closed: the server is shutting down")
            metrics.record_model_status(self.name, self.status.value)
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    # -- description ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        backend = self.backend
        return {
            "name": self.name,
            "version": self.version,
            "format": backend.format if backend else None,
            "status": self.status.value,
            "dimensions": backend.dimensions if backend else None,
            # A text-input model tokenizes in its graph: no token limit sentserve can apply.
            "max_tokens": self.max_tokens if self.tokenizer else None,
            "error": self.reason,
        }

    def details(self) -> dict[str, Any]:
        backend = self.backend
        return {
            **self.summary(),
            "input": backend.input_kind if backend else None,
            "tokenizer": self.tokenizer.describe() if self.tokenizer else None,
            "load_seconds": round(self.load_seconds, 3) if self.load_seconds else None,
            "inference_errors": self.inference_errors,
            "warnings": self.warnings,
            "batching": {
                "max_batch_size": self.batcher.max_batch_size,
                "max_wait_ms": self.batcher.max_wait_s * 1000,
                "max_queued_sentences": self.batcher.max_queued,
                "queued": self.batcher.queued,
            }
            if self.batcher
            else None,
        }


def _whitespace(text: str) -> EncodedSentence:
    words = tuple(text.split())
    return EncodedSentence(words, (None,) * len(words), (False,) * len(words), truncated=False)
