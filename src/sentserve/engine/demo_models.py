"""Small, deterministic demo models for sentserve.

These models let the quickstart, the test-suite and the benchmarks run
without downloading any real (large, licensed) embedding model.  They
reproduce the model layouts sentserve has to serve:

* ``bow-spanish/`` -- the *classic* TF1 layout: a V1 single-file checkpoint
  ``tensorflow_model`` plus ``tensorflow_model.meta``, a ``word_mapping.json``
  vocabulary and a ``net_config.json``, with the historical tensor names
  (``input/title:0``, the two ``config/*_dropout_keep_prob:0`` placeholders and
  the long ``target-embedding/.../reduced_title_emb:0`` output) and no manifest.
* ``lstm-multilingual/`` -- a TF1 graph with a V2 checkpoint, variable-length
  int32 input, an LSTM built from raw ops and a ``sentserve.yaml`` manifest.
* ``text-encoder/1/`` -- a TF2 SavedModel that takes raw strings and does its
  own tokenisation and vocabulary lookup inside the graph.
* ``bow-keras/`` -- a TF2 SavedModel that takes token ids, with a
  ``word_mapping.json`` vocabulary and a ``sentserve.json`` manifest.

The weights are random (fixed seeds) but the architectures average word
vectors, so sentences that share words come out more similar than unrelated
ones.  Vocabularies are real word lists from :mod:`wordfreq`.  Building twice
gives byte-identical vocabularies and identical weights.
"""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["DEMO_MODEL_NAMES", "build_demo_models"]

Size = Literal["small", "large"]

DEMO_MODEL_NAMES = ("bow-spanish", "lstm-multilingual", "text-encoder", "bow-keras")

PAD_ID = 0
OOV_TOKEN = "OOV"
PUNCTUATION_TOKENS = (".", ",", ";", ":", "!", "?", "¡", "¿", "-", "(", ")", '"', "'")
SPACE_TOKEN = " "
SPECIAL_TOKENS = (OOV_TOKEN, *PUNCTUATION_TOKENS, SPACE_TOKEN)

REQUIRED_SPANISH_WORDS = (
    "arriba", "abajo", "lento", "hola", "mundo", "y", "a", "o", "canción", "también", "está",
)  # fmt: skip
MULTILINGUAL_LANGS = ("es", "en", "fr", "de", "it", "pt")

BOW_TITLE_LENGTH = 20
BOW_EMBEDDING_DIM = 300
BOW_INPUT = "input/title"
BOW_OUTPUT = (
    "target-embedding/title_sub_network/clickability/add_title_emb/"
    "apply_title_to_vec_func/reduced_title_emb:0"
)
LSTM_OUTPUT = "sentence_encoder/sentence_embedding:0"
TEXT_ENCODER_DIM = 128
BOW_KERAS_DIM = 64
CHECKPOINT_PREFIX = "tensorflow_model"

LSTM_MANIFEST = """\
output: "sentence_encoder/sentence_embedding:0"
tokenizer:
  kind: vocab
  lowercase: true
  fold_accents: true
  keep_punctuation: true
"""


@dataclass(frozen=True)
class _SizeSpec:
    spanish_words: int
    multilingual_words: int
    lstm_embedding_dim: int
    lstm_units: int
    english_words: int


_SIZES: dict[str, _SizeSpec] = {
    "small": _SizeSpec(5_000, 6_000, 32, 64, 5_000),
    # large: the Spanish table has exactly 100,000 rows (padding + specials + words).
    "large": _SizeSpec(100_000 - 1 - len(SPECIAL_TOKENS), 60_000, 256, 512, 20_000),
}


# --------------------------------------------------------------------------- helpers


def _tf() -> Any:
    """Import TensorFlow lazily (after TF_CPP_MIN_LOG_LEVEL has been set)."""
    import tensorflow as tf

    return tf


def _fold_accents(token: str) -> str:
    decomposed = unicodedata.normalize("NFKD", token)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


def _is_word(token: str) -> bool:
    return token.isalpha() and token == token.lower()


def _top_words(lang: str, n: int, fold: bool = False) -> list[str]:
    """The ``n`` most frequent purely alphabetic lowercase words, synthetic filler if short."""
    import wordfreq

    words: list[str] = []
    seen: set[str] = set()
    for raw in wordfreq.top_n_list(lang, 2 * n + 1000):
        token = _fold_accents(raw) if fold else raw
        if _is_word(token) and token not in seen:
            seen.add(token)
            words.append(token)
            if len(words) == n:
                return words
    index = 0
    while len(words) < n:
        filler = f"tok_{index:06d}"
        index += 1
        if filler not in seen:
            seen.add(filler)
            words.append(filler)
    return words


def _ensure_words(words: list[str], required: Iterable[str], n: int) -> list[str]:
    """Return ``n`` words that include every required word (evicting the rarest ones)."""
    present = set(words)
    missing = [w for w in dict.fromkeys(required) if w not in present]
    kept = words[: n - len(missing)]
    return kept + missing


def _interleave(lists: Sequence[list[str]], n: int) -> list[str]:
    """Round-robin merge of ranked word lists, deduplicated, at most ``n`` words."""
    merged: dict[str, None] = {}
    for rank in range(max((len(x) for x in lists), default=0)):
        for words in lists:
            if rank < len(words):
                merged.setdefault(words[rank], None)
                if len(merged) == n:
                    return list(merged)
    return list(merged)


def _make_vocab(words: Iterable[str]) -> dict[str, int]:
    """token -> id; 0 is padding, then OOV, punctuation, the space token, then words."""
    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *words):
        vocab.setdefault(token, len(vocab) + 1)
    return vocab


def _spanish_vocab(spec: _SizeSpec) -> dict[str, int]:
    words = _top_words("es", spec.spanish_words)
    return _make_vocab(_ensure_words(words, REQUIRED_SPANISH_WORDS, spec.spanish_words))


def _multilingual_vocab(spec: _SizeSpec) -> dict[str, int]:
    n = spec.multilingual_words
    per_language = 2 * n // len(MULTILINGUAL_LANGS)
    ranked = [_top_words(lang, per_language, fold=True) for lang in MULTILINGUAL_LANGS]
    merged = _interleave(ranked, n)
    required = [_fold_accents(w) for w in REQUIRED_SPANISH_WORDS]
    return _make_vocab(_ensure_words(merged, required, len(merged)))


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _embedding_table(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """Random word vectors; row 0 (padding) is all zeros."""
    table = rng.standard_normal((rows, dim), dtype=np.float32)
    table[PAD_ID] = 0.0
    return table


def _scaled_normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return (scale * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def _near_identity(rng: np.random.Generator, dim: int, noise: float) -> np.ndarray:
    return np.eye(dim, dtype=np.float32) + _scaled_normal(rng, (dim, dim), noise)


# --------------------------------------------------------------------------- TF1 helpers


class _Tf1Variables:
    """Creates TF1 variables whose values come from numpy (not baked into the graph)."""

    def __init__(self, tf: Any) -> None:
        self._tf = tf
        self.values: list[tuple[Any, np.ndarray]] = []

    def get(self, name: str, value: np.ndarray) -> Any:
        var = self._tf.compat.v1.get_variable(
            name,
            shape=value.shape,
            dtype=self._tf.float32,
            initializer=self._tf.compat.v1.zeros_initializer(),
        )
        self.values.append((var, value))
        return var

    def initialize(self, sess: Any) -> None:
        """Run each initializer with its initial value fed from numpy."""
        feed = {var.initializer.inputs[1]: value for var, value in self.values}
        sess.run([var.initializer for var, _ in self.values], feed_dict=feed)


def _masked_mean(tf: Any, vectors: Any, mask: Any) -> Any:
    """Mean of ``vectors`` [B, T, D] over positions where ``mask`` [B, T] is 1 (0 if none)."""
    mask3 = tf.expand_dims(mask, -1)
    total = tf.reduce_sum(tf.where(mask3 > 0, vectors, tf.zeros_like(vectors)), axis=1)
    count = tf.reduce_sum(mask, axis=1, keepdims=True)
    return total / tf.maximum(count, 1.0)


def _save_tf1(
    graph: Any,
    variables: _Tf1Variables,
    target: Path,
    write_version: Any,
) -> None:
    """Initialise the variables of ``graph`` and write checkpoint + meta graph to ``target``."""
    tf = _tf()
    logger = tf.get_logger()
    level = logger.level
    with graph.as_default():
        logger.setLevel("ERROR")  # the V1 format is deliberate: hide its deprecation banner
        try:
            saver = tf.compat.v1.train.Saver(
                var_list=[var for var, _ in variables.values], write_version=write_version
            )
        finally:
            logger.setLevel(level)
        with tf.compat.v1.Session(graph=graph) as sess:
            variables.initialize(sess)
            saver.save(
                sess, str(target / CHECKPOINT_PREFIX), write_meta_graph=True, write_state=False
            )
    state = target / "checkpoint"
    if state.exists():
        state.unlink()


# --------------------------------------------------------------------------- model 1


def _bow_spanish_graph(tf: Any, rng: np.random.Generator, vocab_size: int) -> tuple[Any, Any]:
    graph = tf.Graph()
    variables = _Tf1Variables(tf)
    dim = BOW_EMBEDDING_DIM
    with graph.as_default():
        title = tf.compat.v1.placeholder(tf.float32, [None, BOW_TITLE_LENGTH], name=BOW_INPUT)
        with tf.compat.v1.name_scope("config"):
            dense_keep = tf.compat.v1.placeholder_with_default(
                1.0, shape=[], name="dense_dropout_keep_prob"
            )
            title_keep = tf.compat.v1.placeholder_with_default(
                1.0, shape=[], name="title_dropout_keep_prob"
            )
        with tf.compat.v1.variable_scope("target-embedding"):
            embedding = variables.get("word_embedding", _embedding_table(rng, vocab_size, dim))
            with tf.compat.v1.variable_scope("title_sub_network/clickability/add_title_emb"):
                kernel = variables.get("title_dense/kernel", _near_identity(rng, dim, 0.01))
                bias = variables.get("title_dense/bias", np.zeros(dim, dtype=np.float32))
                with tf.compat.v1.name_scope("apply_title_to_vec_func"):
                    ids = tf.cast(title, tf.int32)
                    mask = tf.cast(tf.not_equal(ids, PAD_ID), tf.float32)
                    words = tf.nn.dropout(tf.gather(embedding, ids), rate=1.0 - title_keep)
                    mean = _masked_mean(tf, words, mask)
                    dense = tf.nn.dropout(tf.matmul(mean, kernel) + bias, rate=1.0 - dense_keep)
                    tf.identity(dense, name="reduced_title_emb")
    return graph, variables


def _build_bow_spanish(target: Path, vocab: dict[str, int]) -> Path:
    tf = _tf()
    out = _fresh_dir(target / "bow-spanish")
    vocab_size = max(vocab.values()) + 1
    graph, variables = _bow_spanish_graph(tf, np.random.default_rng(1), vocab_size)
    _save_tf1(graph, variables, out, tf.compat.v1.train.SaverDef.V1)
    _write_json(out / "word_mapping.json", vocab)
    _write_json(
        out / "net_config.json",
        {
            "architecture": "bag-of-words",
            "embedding_dim": BOW_EMBEDDING_DIM,
            "title_length": BOW_TITLE_LENGTH,
            "vocabulary_size": vocab_size,
            "input": f"{BOW_INPUT}:0",
            "output": BOW_OUTPUT,
        },
    )
    return out


# --------------------------------------------------------------------------- model 2


def _lstm_last_state(tf: Any, inputs: Any, mask: Any, kernel: Any, bias: Any) -> Any:
    """Run an LSTM over ``inputs`` [B, T, E]; padded steps carry the previous state."""
    units = kernel.shape[1] // 4
    batch = tf.shape(inputs)[0]
    zeros = tf.zeros(tf.stack([batch, units]), dtype=tf.float32)
    xs = tf.transpose(inputs, [1, 0, 2])
    ms = tf.transpose(tf.expand_dims(mask > 0, -1), [1, 0, 2])

    def step(state: tuple[Any, Any], elems: tuple[Any, Any]) -> tuple[Any, Any]:
        h, c = state
        x, m = elems
        z = tf.matmul(tf.concat([x, h], axis=1), kernel) + bias
        i, f, g, o = tf.split(z, 4, axis=1)
        c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h_new = tf.sigmoid(o) * tf.tanh(c_new)
        return tf.where(m, h_new, h), tf.where(m, c_new, c)

    hs, _ = tf.compat.v1.scan(step, (xs, ms), initializer=(zeros, zeros))
    return hs[-1]


def _lstm_weights(
    rng: np.random.Generator, vocab_size: int, dim: int, units: int
) -> dict[str, np.ndarray]:
    fan_in = dim + units
    bias = np.zeros(4 * units, dtype=np.float32)
    bias[units : 2 * units] = 1.0  # forget-gate bias
    return {
        "word_embedding": _embedding_table(rng, vocab_size, dim),
        "lstm/kernel": _scaled_normal(rng, (fan_in, 4 * units), fan_in**-0.5),
        "lstm/bias": bias,
        "mean_projection": _scaled_normal(rng, (dim, units), dim**-0.5),
        "state_projection": _scaled_normal(rng, (units, units), 0.5 * units**-0.5),
    }


def _lstm_graph(tf: Any, weights: dict[str, np.ndarray]) -> tuple[Any, Any]:
    graph = tf.Graph()
    variables = _Tf1Variables(tf)
    with graph.as_default():
        title = tf.compat.v1.placeholder(tf.int32, [None, None], name=BOW_INPUT)
        with tf.compat.v1.variable_scope("sentence_encoder"):
            v = {name: variables.get(name, value) for name, value in weights.items()}
            # One trailing padding step: a zero-length input still gives one scan step.
            ids = tf.pad(title, [[0, 0], [0, 1]], constant_values=PAD_ID)
            mask = tf.cast(tf.not_equal(ids, PAD_ID), tf.float32)
            words = tf.gather(v["word_embedding"], ids)
            mean = _masked_mean(tf, words, mask)
            last_h = _lstm_last_state(tf, words, mask, v["lstm/kernel"], v["lstm/bias"])
            out = tf.matmul(mean, v["mean_projection"]) + tf.matmul(last_h, v["state_projection"])
            tf.identity(out, name="sentence_embedding")
    return graph, variables


def _build_lstm(target: Path, spec: _SizeSpec) -> Path:
    tf = _tf()
    out = _fresh_dir(target / "lstm-multilingual")
    vocab = _multilingual_vocab(spec)
    vocab_size = max(vocab.values()) + 1
    dim, units = spec.lstm_embedding_dim, spec.lstm_units
    weights = _lstm_weights(np.random.default_rng(2), vocab_size, dim, units)
    graph, variables = _lstm_graph(tf, weights)
    _save_tf1(graph, variables, out, tf.compat.v1.train.SaverDef.V2)
    _write_json(out / "word_mapping.json", vocab)
    _write_json(
        out / "net_config.json",
        {
            "architecture": "lstm",
            "embedding_dim": dim,
            "units": units,
            "output_dim": units,
            "vocabulary_size": vocab_size,
            "languages": list(MULTILINGUAL_LANGS),
            "accent_folded_vocabulary": True,
            "input": f"{BOW_INPUT}:0",
            "output": LSTM_OUTPUT,
        },
    )
    (out / "sentserve.yaml").write_text(LSTM_MANIFEST, encoding="utf-8")
    return out


# --------------------------------------------------------------------------- SavedModels


def _save_module(module: Any, fn: Any, path: Path) -> None:
    tf = _tf()
    tf.saved_model.save(module, str(path), signatures={"serving_default": fn})


def _ragged_mean(tf: Any, embedding: Any, ids: Any) -> Any:
    """Mean of the embedding rows of each (ragged) row of ids; an empty row gives zeros."""
    vectors = ids.with_flat_values(tf.gather(embedding, ids.flat_values))
    total = tf.reduce_sum(vectors, axis=1)
    count = tf.cast(tf.expand_dims(ids.row_lengths(), -1), tf.float32)
    return total / tf.maximum(count, 1.0)


def _text_encoder_fn(tf: Any, module: Any) -> Callable[[Any], dict[str, Any]]:
    def embed(text: Any) -> dict[str, Any]:
        lowered = tf.strings.lower(text, encoding="utf-8")
        cleaned = tf.strings.regex_replace(lowered, r"[[:punct:]¡¿«»“”‘’…]", " ")
        tokens = tf.strings.split(cleaned)
        ids = tf.ragged.map_flat_values(module.table.lookup, tokens)
        mean = _ragged_mean(tf, module.embedding, ids)
        return {"embedding": tf.ensure_shape(mean, [None, TEXT_ENCODER_DIM])}

    return embed


def _build_text_encoder(target: Path, spec: _SizeSpec) -> Path:
    tf = _tf()
    parent = _fresh_dir(target / "text-encoder")
    words = _top_words("en", spec.english_words)
    rng = np.random.default_rng(3)
    module = tf.Module()
    # Rows: 0 unused (padding), 1 = OOV, words from 2.
    module.embedding = tf.Variable(
        _embedding_table(rng, len(words) + 2, TEXT_ENCODER_DIM), name="word_embedding"
    )
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(words, dtype=tf.string),
            tf.range(2, len(words) + 2, dtype=tf.int64),
        ),
        default_value=1,
    )
    module.embed = tf.function(
        _text_encoder_fn(tf, module),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    out = parent / "1"
    _save_module(module, module.embed.get_concrete_function(), out)
    return out


def _bow_keras_fn(tf: Any, module: Any) -> Callable[[Any], dict[str, Any]]:
    def embed(token_ids: Any) -> dict[str, Any]:
        rows = tf.shape(module.embedding)[0]
        in_range = tf.logical_and(token_ids >= 0, token_ids < rows)
        ids = tf.where(in_range, token_ids, tf.ones_like(token_ids))  # out of range -> OOV
        mask = tf.cast(tf.not_equal(ids, PAD_ID), tf.float32)
        mean = _masked_mean(tf, tf.gather(module.embedding, ids), mask)
        return {"embedding": tf.ensure_shape(mean, [None, BOW_KERAS_DIM])}

    return embed


def _build_bow_keras(target: Path, vocab: dict[str, int]) -> Path:
    tf = _tf()
    out = _fresh_dir(target / "bow-keras")
    vocab_size = max(vocab.values()) + 1
    module = tf.Module()
    module.embedding = tf.Variable(
        _embedding_table(np.random.default_rng(4), vocab_size, BOW_KERAS_DIM),
        name="word_embedding",
    )
    module.embed = tf.function(
        _bow_keras_fn(tf, module),
        input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")],
    )
    _save_module(module, module.embed.get_concrete_function(), out)
    _write_json(out / "word_mapping.json", vocab)
    _write_json(out / "sentserve.json", {"tokenizer": {"kind": "vocab"}, "oov_token": OOV_TOKEN})
    return out


# --------------------------------------------------------------------------- public API


def build_demo_models(target: Path, size: Size = "small") -> list[Path]:
    """Write the demo models under ``target`` and return their folders.

    The returned paths are, in order, ``bow-spanish``, ``lstm-multilingual``,
    ``text-encoder/1`` (the SavedModel version folder) and ``bow-keras``.
    Existing model folders are replaced.
    """
    if size not in _SIZES:
        raise ValueError(f"size must be 'small' or 'large', not {size!r}")
    spec = _SIZES[size]
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    spanish = _spanish_vocab(spec)
    return [
        _build_bow_spanish(target, spanish),
        _build_lstm(target, spec),
        _build_text_encoder(target, spec),
        _build_bow_keras(target, spanish),
    ]
