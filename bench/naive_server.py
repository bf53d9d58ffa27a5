"""The baseline: a hurried Flask app, as the classic server would have been written.

Each worker loads every model in its own tf.Graph and tf.compat.v1.Session with TensorFlow's
default thread pools, tokenizes exactly as sentserve does (same tokenizer classes and manifest),
then runs ONE session.run per request -- no batching across requests -- and answers with
`flask.jsonify(vectors.tolist())`. Same path and body as sentserve's native API, so wrk drives
both with identical loads:

    BENCH_MODELS_DIR=bench/out/models-large BENCH_MODEL_NAMES=bow-spanish \
    gunicorn -w 2 --threads 8 -k gthread --chdir bench 'naive_server:create_app()'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flask
import numpy as np
import tensorflow as tf
from gensim.utils import simple_preprocess  # noqa: F401 - imported up front, as the classic did

from sentserve.engine.manifest import CLASSIC_FEEDS, Manifest
from sentserve.engine.tokenizers import GensimTokenizer, Tokenizer, VocabTokenizer, Vocabulary

PREFIX = "tensorflow_model"
DEFAULT_MAX_TOKENS = 128
PROBE = ["hola mundo hello world"]


class NaiveModel:
    """One TF1 checkpoint in its own graph and session, with its vocabulary."""

    def __init__(self, folder: Path) -> None:
        manifest = Manifest.read(folder)
        self.pad_id = manifest.pad_id
        self.graph = tf.Graph()
        with self.graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(str(folder / f"{PREFIX}.meta"))
            self.session = tf.compat.v1.Session(graph=self.graph)
            saver.restore(self.session, str(folder / PREFIX))
            self.input = self.graph.get_tensor_by_name(manifest.input)
            self.output = self.graph.get_tensor_by_name(manifest.output)
            self.feeds = self._feeds(manifest)
        self.length: int | None = self.input.shape.as_list()[1]
        self.tokenizer = self._tokenizer(folder, manifest)

    def _feeds(self, manifest: Manifest) -> dict[Any, Any]:
        configured = manifest.feeds if manifest.feeds is not None else CLASSIC_FEEDS
        names = {op.name for op in self.graph.get_operations()}
        return {
            self.graph.get_tensor_by_name(name): value
            for name, value in configured.items()
            if name.split(":")[0] in names
        }

    def _tokenizer(self, folder: Path, manifest: Manifest) -> Tokenizer:
        mapping, _ = Vocabulary.read_mapping(folder / "word_mapping.json")
        vocabulary = Vocabulary(mapping, manifest.oov_token_or(None))
        max_tokens = manifest.max_tokens or self.length or DEFAULT_MAX_TOKENS
        spec = manifest.tokenizer
        if spec.kind == "gensim":
            return GensimTokenizer(vocabulary, max_tokens)
        return VocabTokenizer(
            vocabulary, max_tokens, spec.lowercase, spec.fold_accents, spec.keep_punctuation
        )

    def embed(self, sentences: list[str]) -> np.ndarray:
        """Tokenize, pad, one session.run for this request's sentences alone."""
        rows = [e.input_ids for e in self.tokenizer.encode_batch(sentences)]
        width = self.length or max(1, max(len(row) for row in rows))
        batch = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        for index, row in enumerate(rows):
            batch[index, : len(row)] = row
        feed = {self.input: batch, **self.feeds}
        return self.session.run(self.output, feed_dict=feed)


def load_models() -> dict[str, NaiveModel]:
    """Every model, each run once so that no measured request pays a first-run cost (sentserve
    warms up too): the comparison is of steady states."""
    base = Path(os.environ["BENCH_MODELS_DIR"])
    names = [n.strip() for n in os.environ["BENCH_MODEL_NAMES"].split(",") if n.strip()]
    models = {name: NaiveModel(base / name) for name in names}
    for model in models.values():
        model.embed(PROBE)
    return models


def create_app() -> flask.Flask:
    """gunicorn's app factory: models load in each worker, before it takes requests."""
    app = flask.Flask("naive")
    models = load_models()

    @app.get("/readyz")
    def readyz() -> Any:
        return flask.jsonify({"status": "ready"})

    @app.post("/api/v1/models/<name>/embed")
    def embed(name: str) -> Any:
        if name not in models:
            flask.abort(404)
        sentences = flask.request.get_json()["sentences"]
        vectors = models[name].embed(sentences)
        return flask.jsonify({"embeddings": vectors.tolist()})

    return app
