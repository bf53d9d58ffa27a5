"""Tests for the deterministic demo models (real TensorFlow, no mocks)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from sentserve.engine.demo_models import (  # noqa: E402
    BOW_OUTPUT,
    DEMO_MODEL_NAMES,
    LSTM_MANIFEST,
    LSTM_OUTPUT,
    build_demo_models,
)

BOW_INPUT = "input/title:0"
DENSE_KEEP = "config/dense_dropout_keep_prob:0"
TITLE_KEEP = "config/title_dropout_keep_prob:0"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return build_demo_models(tmp_path_factory.mktemp("demo"), "small")


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A second build into another folder, which already holds a stale model folder."""
    target = tmp_path_factory.mktemp("demo-again")
    stale = target / "bow-spanish" / "stale.txt"
    stale.parent.mkdir()
    stale.write_text("left over from an older build", encoding="utf-8")
    return build_demo_models(target, "small")


def _model(paths: Sequence[Path], name: str) -> Path:
    for path in paths:
        if name in (path.name, path.parent.name):
            return path
    raise AssertionError(f"{name} not built: {paths}")


def _vocab(folder: Path) -> dict[str, int]:
    data = json.loads((folder / "word_mapping.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _ids(vocab: dict[str, int], sentence: str) -> list[int]:
    words = sentence.split()
    missing = [w for w in words if w not in vocab]
    assert not missing, f"not in vocabulary: {missing}"
    return [vocab[w] for w in words]


def _pad(rows: Sequence[Sequence[int]], length: int) -> np.ndarray:
    out = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


class _Tf1Model:
    """A TF1 model restored the way a server would: import_meta_graph + Saver.restore."""

    def __init__(self, folder: Path) -> None:
        self.graph = tf.Graph()
        with self.graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(str(folder / "tensorflow_model.meta"))
            self.sess = tf.compat.v1.Session(graph=self.graph)
            saver.restore(self.sess, str(folder / "tensorflow_model"))

    def run(self, output: str, feed: dict[str, Any]) -> np.ndarray:
        with self.graph.as_default():
            tensors = {self.graph.get_tensor_by_name(k): v for k, v in feed.items()}
            result = self.sess.run(self.graph.get_tensor_by_name(output), feed_dict=tensors)
        return np.asarray(result)

    def close(self) -> None:
        self.sess.close()


@pytest.fixture(scope="module")
def bow(built: list[Path]) -> Iterator[_Tf1Model]:
    model = _Tf1Model(_model(built, "bow-spanish"))
    yield model
    model.close()


@pytest.fixture(scope="module")
def lstm(built: list[Path]) -> Iterator[_Tf1Model]:
    model = _Tf1Model(_model(built, "lstm-multilingual"))
    yield model
    model.close()


def _bow_embed(bow: _Tf1Model, rows: Sequence[Sequence[int]]) -> np.ndarray:
    return bow.run(BOW_OUTPUT, {BOW_INPUT: _pad(rows, 20).astype(np.float32)})


def _lstm_embed(lstm: _Tf1Model, rows: Sequence[Sequence[int]], length: int) -> np.ndarray:
    return lstm.run(LSTM_OUTPUT, {BOW_INPUT: _pad(rows, length).astype(np.int32)})


def _serving(folder: Path) -> Any:
    return tf.saved_model.load(str(folder)).signatures["serving_default"]


# --------------------------------------------------------------------------- layout


def test_returns_one_folder_per_model(built: list[Path]) -> None:
    assert DEMO_MODEL_NAMES == ("bow-spanish", "lstm-multilingual", "text-encoder", "bow-keras")
    assert len(built) == 4
    root = built[0].parent
    assert built == [
        root / "bow-spanish",
        root / "lstm-multilingual",
        root / "text-encoder" / "1",
        root / "bow-keras",
    ]
    assert sorted(p.name for p in root.iterdir()) == sorted(DEMO_MODEL_NAMES)


def test_bow_spanish_layout_is_classic_v1(built: list[Path]) -> None:
    folder = _model(built, "bow-spanish")
    assert sorted(p.name for p in folder.iterdir()) == [
        "net_config.json",
        "tensorflow_model",
        "tensorflow_model.meta",
        "word_mapping.json",
    ]
    assert (folder / "tensorflow_model").is_file()
    config = json.loads((folder / "net_config.json").read_text(encoding="utf-8"))
    assert config["embedding_dim"] == 300
    assert config["title_length"] == 20
    assert config["vocabulary_size"] == max(_vocab(folder).values()) + 1


def test_lstm_layout_is_v2_with_manifest(built: list[Path]) -> None:
    folder = _model(built, "lstm-multilingual")
    assert sorted(p.name for p in folder.iterdir()) == [
        "net_config.json",
        "sentserve.yaml",
        "tensorflow_model.data-00000-of-00001",
        "tensorflow_model.index",
        "tensorflow_model.meta",
        "word_mapping.json",
    ]
    manifest = (folder / "sentserve.yaml").read_text(encoding="utf-8")
    assert manifest == LSTM_MANIFEST
    assert manifest.splitlines()[0] == 'output: "sentence_encoder/sentence_embedding:0"'
    assert "fold_accents: true" in manifest


def test_saved_model_layouts(built: list[Path]) -> None:
    text = _model(built, "text-encoder")
    assert text.name == "1"
    assert (text / "saved_model.pb").is_file()
    assert (text / "variables" / "variables.index").is_file()
    assert not (text / "word_mapping.json").exists()

    ids = _model(built, "bow-keras")
    assert (ids / "saved_model.pb").is_file()
    manifest = json.loads((ids / "sentserve.json").read_text(encoding="utf-8"))
    assert manifest == {"tokenizer": {"kind": "vocab"}, "oov_token": "OOV"}
    assert _vocab(ids) == _vocab(_model(built, "bow-spanish"))


# --------------------------------------------------------------------------- vocabularies


@pytest.mark.parametrize("name", ["bow-spanish", "lstm-multilingual", "bow-keras"])
def test_vocabulary_reserved_ids(built: list[Path], name: str) -> None:
    vocab = _vocab(_model(built, name))
    assert 0 not in vocab.values()
    assert vocab["OOV"] == 1
    specials = [".", ",", ";", ":", "!", "?", "¡", "¿", "-", "(", ")", '"', "'", " "]
    assert [vocab[t] for t in specials] == list(range(2, 2 + len(specials)))
    assert sorted(vocab.values()) == list(range(1, len(vocab) + 1))
    words = [t for t in vocab if t not in specials and t != "OOV"]
    assert all(w.isalpha() and w == w.lower() for w in words)


def test_spanish_vocabulary_contents(built: list[Path]) -> None:
    vocab = _vocab(_model(built, "bow-spanish"))
    for word in ["arriba", "abajo", "lento", "hola", "mundo", "y", "a", "o", "canción"]:
        assert word in vocab
    assert "también" in vocab
    assert "está" in vocab
    assert len(vocab) == 5000 + 15


def test_multilingual_vocabulary(built: list[Path]) -> None:
    vocab = _vocab(_model(built, "lstm-multilingual"))
    for word in ["the", "and", "und", "que", "hola", "mundo", "arriba", "cancion"]:
        assert word in vocab
    assert 5500 < len(vocab) < 6500


# --------------------------------------------------------------------------- bow-spanish


def test_bow_spanish_tensors(bow: _Tf1Model) -> None:
    title = bow.graph.get_tensor_by_name(BOW_INPUT)
    assert title.dtype == tf.float32
    assert title.shape.as_list() == [None, 20]
    for name in (DENSE_KEEP, TITLE_KEEP):
        keep = bow.graph.get_tensor_by_name(name)
        assert keep.dtype == tf.float32
        assert keep.shape.rank == 0
        assert keep.op.type == "PlaceholderWithDefault"
    output = bow.graph.get_tensor_by_name(BOW_OUTPUT)
    assert output.dtype == tf.float32
    assert output.shape.as_list() == [None, 300]
    names = [v.name for v in bow.graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)]
    assert any("embedding" in n for n in names)


def test_bow_spanish_output(built: list[Path], bow: _Tf1Model) -> None:
    vocab = _vocab(_model(built, "bow-spanish"))
    out = _bow_embed(bow, [_ids(vocab, "hola mundo"), []])
    assert out.shape == (2, 300)
    assert np.all(np.isfinite(out))
    assert np.linalg.norm(out[0]) > 0
    # explicit keep probabilities of 1.0 give the same vectors as the defaults
    feed = {
        BOW_INPUT: _pad([_ids(vocab, "hola mundo")], 20).astype(np.float32),
        DENSE_KEEP: 1.0,
        TITLE_KEEP: 1.0,
    }
    np.testing.assert_allclose(bow.run(BOW_OUTPUT, feed)[0], out[0], rtol=1e-6, atol=1e-6)


def test_bow_spanish_similarity(built: list[Path], bow: _Tf1Model) -> None:
    vocab = _vocab(_model(built, "bow-spanish"))
    a, b, c = _bow_embed(
        bow,
        [
            _ids(vocab, "hola mundo arriba y abajo"),
            _ids(vocab, "hola mundo arriba y lento"),
            _ids(vocab, "también está la casa"),
        ],
    )
    assert _cos(a, b) > _cos(a, c)
    assert _cos(a, b) > 0.5


# --------------------------------------------------------------------------- lstm


def test_lstm_tensors(lstm: _Tf1Model) -> None:
    title = lstm.graph.get_tensor_by_name(BOW_INPUT)
    assert title.dtype == tf.int32
    assert title.shape.as_list() == [None, None]
    output = lstm.graph.get_tensor_by_name(LSTM_OUTPUT)
    assert output.dtype == tf.float32
    assert output.shape.as_list() == [None, 64]
    assert not any("dropout" in op.name for op in lstm.graph.get_operations())


def test_lstm_padding_invariance(built: list[Path], lstm: _Tf1Model) -> None:
    vocab = _vocab(_model(built, "lstm-multilingual"))
    rows = [_ids(vocab, "hola mundo arriba"), _ids(vocab, "the world"), []]
    short = _lstm_embed(lstm, rows, 5)
    long = _lstm_embed(lstm, rows, 40)
    assert short.shape == long.shape == (3, 64)
    assert np.all(np.isfinite(short))
    np.testing.assert_allclose(short, long, rtol=0, atol=1e-6)
    # a zero-length batch still gives finite vectors
    empty = _lstm_embed(lstm, [[], []], 0)
    assert empty.shape == (2, 64)
    assert np.all(np.isfinite(empty))


def test_lstm_similarity(built: list[Path], lstm: _Tf1Model) -> None:
    vocab = _vocab(_model(built, "lstm-multilingual"))
    a, b, c = _lstm_embed(
        lstm,
        [
            _ids(vocab, "hola mundo arriba y abajo"),
            _ids(vocab, "hola mundo arriba y lento"),
            _ids(vocab, "the house is very old"),
        ],
        8,
    )
    assert _cos(a, b) > _cos(a, c)


# --------------------------------------------------------------------------- SavedModels


def test_text_encoder_signature(built: list[Path]) -> None:
    fn = _serving(_model(built, "text-encoder"))
    assert list(fn.structured_input_signature[1]) == ["text"]
    assert fn.structured_input_signature[1]["text"].dtype == tf.string
    assert list(fn.structured_outputs) == ["embedding"]
    sentences = ["The cat sat on the mat.", "", "¡Qué tal, zzqx!"]
    out = fn(text=tf.constant(sentences))["embedding"].numpy()
    assert out.shape == (3, 128)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[1], np.zeros(128, dtype=np.float32))


def test_text_encoder_similarity(built: list[Path]) -> None:
    fn = _serving(_model(built, "text-encoder"))
    texts = [
        "the old man walked his dog in the park",
        "The old man walked his DOG in the park!",
        "stock market prices rose sharply today",
        "the old man walked with his dog near the park",
    ]
    a, same, c, b = fn(text=tf.constant(texts))["embedding"].numpy()
    np.testing.assert_allclose(a, same, rtol=1e-6, atol=1e-6)  # case and punctuation ignored
    assert _cos(a, b) > _cos(a, c)


def test_bow_keras_signature(built: list[Path]) -> None:
    folder = _model(built, "bow-keras")
    fn = _serving(folder)
    assert list(fn.structured_input_signature[1]) == ["token_ids"]
    assert fn.structured_input_signature[1]["token_ids"].dtype == tf.int32
    vocab = _vocab(folder)
    rows = [_ids(vocab, "hola mundo arriba"), _ids(vocab, "lento"), []]
    short = fn(token_ids=tf.constant(_pad(rows, 4), dtype=tf.int32))["embedding"].numpy()
    long = fn(token_ids=tf.constant(_pad(rows, 30), dtype=tf.int32))["embedding"].numpy()
    assert short.shape == (3, 64)
    assert short.dtype == np.float32
    assert np.all(np.isfinite(short))
    np.testing.assert_allclose(short, long, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(short[2], np.zeros(64, dtype=np.float32))


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", ["bow-spanish", "lstm-multilingual", "bow-keras"])
def test_vocabularies_are_byte_identical(built: list[Path], rebuilt: list[Path], name: str) -> None:
    first = (_model(built, name) / "word_mapping.json").read_bytes()
    second = (_model(rebuilt, name) / "word_mapping.json").read_bytes()
    assert first == second


def test_tf1_outputs_are_deterministic(built: list[Path], rebuilt: list[Path]) -> None:
    for name, output, dtype in (
        ("bow-spanish", BOW_OUTPUT, np.float32),
        ("lstm-multilingual", LSTM_OUTPUT, np.int32),
    ):
        vectors = []
        for paths in (built, rebuilt):
            model = _Tf1Model(_model(paths, name))
            ids = _ids(_vocab(_model(paths, name)), "hola mundo")
            vectors.append(model.run(output, {BOW_INPUT: _pad([ids], 20).astype(dtype)}))
            model.close()
        np.testing.assert_array_equal(vectors[0], vectors[1])


def test_saved_model_outputs_are_deterministic(built: list[Path], rebuilt: list[Path]) -> None:
    text = [_serving(_model(p, "text-encoder")) for p in (built, rebuilt)]
    first, second = (fn(text=tf.constant(["hello world"]))["embedding"].numpy() for fn in text)
    np.testing.assert_array_equal(first, second)
    ids = tf.constant([[20, 30, 40, 0]], dtype=tf.int32)
    keras = [_serving(_model(p, "bow-keras")) for p in (built, rebuilt)]
    first, second = (fn(token_ids=ids)["embedding"].numpy() for fn in keras)
    np.testing.assert_array_equal(first, second)


def test_rebuild_replaces_existing_folders(rebuilt: list[Path]) -> None:
    folder = _model(rebuilt, "bow-spanish")
    assert not (folder / "stale.txt").exists()
    assert (folder / "tensorflow_model").is_file()
