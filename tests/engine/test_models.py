"""Models through ModelRegistry and ServedModel: formats, vectors, failures, isolation.

Real TensorFlow throughout. Broken models are tmp copies of the demo folders; the session's
demo_dir is never modified.
"""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest

from sentserve.engine.demo_models import BOW_OUTPUT, LSTM_OUTPUT
from sentserve.engine.errors import (
    InferenceFailed,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    SentenceTooLong,
)
from sentserve.engine.manifest import CLASSIC_INPUT, CLASSIC_OUTPUT, Manifest
from sentserve.engine.model import ModelStatus, version_folder
from sentserve.engine.registry import ModelRegistry
from sentserve.engine.tensorflow_runtime import tensorflow

SENTENCES = ["hola mundo", "Arriba, abajo lento lento!", "la canción está aquí y allá", ""]
FORMATS = {
    "bow-spanish": "tf1-checkpoint-v1",
    "lstm-multilingual": "tf1-checkpoint-v2",
    "text-encoder": "saved-model",
    "bow-keras": "saved-model",
}
DIMENSIONS = {"bow-spanish": 300, "lstm-multilingual": 64, "text-encoder": 128, "bow-keras": 64}


def loaded(settings, background=False):
    registry = ModelRegistry(settings)
    registry.load_all(background=background)
    registry.wait_loaded(timeout=120)
    return registry


def vocabulary(folder):
    return json.loads((folder / "word_mapping.json").read_text(encoding="utf-8"))


def copy_model(source, target):
    shutil.copytree(source, target)
    return target


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def edit_mapping(folder, **extra):
    mapping = {**vocabulary(folder), **extra}
    (folder / "word_mapping.json").write_text(json.dumps(mapping), encoding="utf-8")


class Tf1Checkpoint:
    """A checkpoint restored by hand, the way the classic server did, in its own graph."""

    def __init__(self, folder):
        tf = tensorflow()
        self.graph = tf.Graph()
        with self.graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(str(folder / "tensorflow_model.meta"))
            self.session = tf.compat.v1.Session(graph=self.graph)
            saver.restore(self.session, str(folder / "tensorflow_model"))

    def run(self, output, feeds):
        with self.graph.as_default():
            feed_dict = {self.graph.get_tensor_by_name(k): v for k, v in feeds.items()}
            return self.session.run(self.graph.get_tensor_by_name(output), feed_dict=feed_dict)

    def close(self):
        self.session.close()


def padded(rows, width, dtype):
    batch = np.zeros((len(rows), width), dtype=dtype)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = row
    return batch


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def registry(make_settings):
    """All four demo models in one process."""
    registry = loaded(make_settings())
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def alone(make_settings):
    """bow-spanish alone (plus a MODEL_NAMES entry with no folder), loaded in the background."""
    registry = loaded(make_settings(model_names=["bow-spanish", "ghost"]), background=True)
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def zoo_dir(demo_dir, tmp_path_factory):
    """Two healthy models beside one broken copy of a demo model per failure case."""
    root = tmp_path_factory.mktemp("zoo")
    bow, lstm, keras = (
        demo_dir / name for name in ("bow-spanish", "lstm-multilingual", "bow-keras")
    )
    (root / "bow-spanish").symlink_to(bow, target_is_directory=True)
    no_oov = copy_model(keras, root / "keras-no-oov")
    (no_oov / "sentserve.json").write_text(
        '{"tokenizer": {"kind": "vocab"}, "oov_token": null}', encoding="utf-8"
    )

    truncate(copy_model(lstm, root / "corrupt-v2") / "tensorflow_model.data-00000-of-00001")
    truncate(copy_model(bow, root / "truncated-v1") / "tensorflow_model")
    (copy_model(bow, root / "no-vocabulary") / "word_mapping.json").unlink()
    (copy_model(keras, root / "keras-no-vocabulary") / "word_mapping.json").unlink()
    (copy_model(bow, root / "wrong-tensor") / "sentserve.yaml").write_text(
        "output: 'nope:0'\n", encoding="utf-8"
    )
    (copy_model(bow, root / "unknown-key") / "sentserve.yaml").write_text(
        "outptu: 'nope:0'\n", encoding="utf-8"
    )
    edit_mapping(copy_model(bow, root / "id-outside-table"), zzqx=999_999)
    (copy_model(bow, root / "no-net-config") / "net_config.json").unlink()
    (copy_model(lstm, root / "v2-without-data") / "tensorflow_model.data-00000-of-00001").unlink()
    (root / "empty").mkdir()
    (copy_model(bow, root / "bad-mapping") / "word_mapping.json").write_text("[1, 2]")
    truncate(copy_model(keras, root / "broken-saved-model") / "saved_model.pb", keep=0.3)
    (copy_model(bow, root / "too-many-tokens") / "sentserve.yaml").write_text("max_tokens: 50\n")
    (root / ".hidden").mkdir()  # dot folders are not models
    (root / "README.txt").write_text("files beside the model folders are ignored\n")
    return root


@pytest.fixture(scope="module")
def zoo(zoo_dir, make_settings):
    registry = loaded(make_settings(models_dir=zoo_dir, oov_token="OOV"))
    yield registry
    registry.close()


# --------------------------------------------------------------------------- loading


def test_every_demo_model_is_ready(registry):
    assert sorted(registry.models) == sorted(FORMATS)
    for name, model in registry.models.items():
        assert model.status is ModelStatus.READY, model.reason
        summary = model.summary()
        assert summary["format"] == FORMATS[name]
        assert summary["dimensions"] == DIMENSIONS[name]
        assert summary["version"] == 1
        assert summary["error"] is None
        assert model.load_seconds is not None and model.load_seconds > 0
    assert registry.not_ready() == []


def test_max_tokens(registry):
    assert registry.get("bow-spanish").max_tokens == 20  # the input's fixed length
    assert registry.get("lstm-multilingual").max_tokens == 128  # variable length: the default


def test_details(registry):
    details = registry.get("bow-spanish").details()
    assert details["input"] == "ids"
    assert details["tokenizer"]["kind"] == "gensim"
    assert details["tokenizer"]["oov_token"] is None
    assert details["batching"]["max_batch_size"] == 64
    assert details["warnings"] == []
    lstm = registry.get("lstm-multilingual").details()
    assert lstm["tokenizer"]["kind"] == "vocab"
    assert lstm["tokenizer"]["fold_accents"] is True
    assert registry.get("text-encoder").details()["input"] == "text"


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_embed_shapes(registry, name):
    embedding = registry.get(name).embed(SENTENCES)
    assert embedding.vectors.shape == (len(SENTENCES), DIMENSIONS[name])
    assert embedding.vectors.dtype == np.float32
    assert np.isfinite(embedding.vectors).all()
    assert len(embedding.encoded) == len(SENTENCES)


def test_bow_spanish_equals_a_direct_session_run(registry, demo_dir):
    model = registry.get("bow-spanish")
    embedding = model.embed(SENTENCES)
    ids = [sentence.input_ids for sentence in embedding.encoded]
    mapping = vocabulary(demo_dir / "bow-spanish")
    assert ids[1] == [mapping[word] for word in ("arriba", "abajo", "lento", "lento")]
    assert ids[3] == []  # the empty sentence: all padding
    checkpoint = Tf1Checkpoint(demo_dir / "bow-spanish")
    try:
        expected = checkpoint.run(
            BOW_OUTPUT,
            {
                "input/title:0": padded(ids, 20, np.float32),
                "config/dense_dropout_keep_prob:0": 1.0,
                "config/title_dropout_keep_prob:0": 1.0,
            },
        )
    finally:
        checkpoint.close()
    np.testing.assert_allclose(embedding.vectors, expected, rtol=1e-6, atol=1e-6)
    # The engine returns the model's raw vectors: no normalisation of its own.
    norms = np.linalg.norm(embedding.vectors[:3], axis=1)
    assert not np.allclose(norms, 1.0)


def test_lstm_equals_a_direct_session_run(registry, demo_dir):
    embedding = registry.get("lstm-multilingual").embed(SENTENCES)
    ids = [sentence.input_ids for sentence in embedding.encoded]
    checkpoint = Tf1Checkpoint(demo_dir / "lstm-multilingual")
    try:
        width = max(len(row) for row in ids)
        expected = checkpoint.run(LSTM_OUTPUT, {"input/title:0": padded(ids, width, np.int32)})
    finally:
        checkpoint.close()
    np.testing.assert_allclose(embedding.vectors, expected, rtol=1e-6, atol=1e-6)


def test_saved_models_equal_their_signature(registry, demo_dir):
    tf = tensorflow()
    text = tf.saved_model.load(str(demo_dir / "text-encoder" / "1")).signatures["serving_default"]
    expected = text(text=tf.constant(SENTENCES))["embedding"].numpy()
    np.testing.assert_allclose(
        registry.get("text-encoder").embed(SENTENCES).vectors, expected, rtol=1e-6, atol=1e-6
    )
    keras = tf.saved_model.load(str(demo_dir / "bow-keras")).signatures["serving_default"]
    embedding = registry.get("bow-keras").embed(SENTENCES)
    ids = [sentence.input_ids for sentence in embedding.encoded]
    width = max(len(row) for row in ids)
    expected = keras(token_ids=tf.constant(padded(ids, width, np.int32)))["embedding"].numpy()
    np.testing.assert_allclose(embedding.vectors, expected, rtol=1e-6, atol=1e-6)


def test_text_saved_model_takes_text(registry):
    model = registry.get("text-encoder")
    assert model.tokenizer is None
    embedding = model.embed(["hello world"])
    assert embedding.vectors.shape == (1, 128)
    assert np.linalg.norm(embedding.vectors[0]) > 0
    assert embedding.encoded[0].tokens == ("hello", "world")
    assert embedding.encoded[0].oov_count == 0
    with pytest.raises(InvalidInput, match="takes text, not token ids"):
        model.embed_ids([[1, 2]])


def test_vocab_tokenizer_from_manifest(registry):
    encoded = registry.get("lstm-multilingual").embed(["¿Canción, y está?"]).encoded[0]
    assert encoded.tokens == ("¿", "cancion", ",", "y", "esta", "?")  # accents folded
    assert encoded.oov_count == 0


def test_several_models_give_the_same_vectors_as_one_alone(registry, alone):
    sentences = [*SENTENCES, "también está la casa"]
    by_itself = alone.get("bow-spanish").embed(sentences).vectors
    beside_others = registry.get("bow-spanish").embed(sentences).vectors
    np.testing.assert_allclose(beside_others, by_itself, rtol=1e-6, atol=1e-6)


def test_models_used_from_many_threads_at_once(registry):
    expected = {name: registry.get(name).embed(SENTENCES).vectors for name in FORMATS}
    results = {}

    def embed(name, round_):
        results[name, round_] = registry.get(name).embed(SENTENCES).vectors

    threads = [
        threading.Thread(target=embed, args=(name, round_))
        for round_ in range(4)
        for name in FORMATS
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4 * len(FORMATS)
    for (name, _), vectors in results.items():
        np.testing.assert_allclose(vectors, expected[name], rtol=1e-6, atol=1e-6)


def test_model_names(alone):
    assert alone.get("bow-spanish").status is ModelStatus.READY
    ghost = alone.get("ghost")
    assert ghost.status is ModelStatus.FAILED
    assert ghost.reason.startswith("not found")
    for name in ("lstm-multilingual", "text-encoder", "bow-keras"):
        model = alone.get(name)
        assert model.status is ModelStatus.DISABLED
        assert model.reason == "not listed in MODEL_NAMES"
        assert model.backend is None  # never loaded
    assert [m.name for m in alone.enabled()] == ["bow-spanish", "ghost"]
    with pytest.raises(ModelNotReady, match="model 'lstm-multilingual' is disabled"):
        alone.ready("lstm-multilingual")


def test_unknown_model(registry):
    with pytest.raises(ModelNotFound, match="model 'nope' does not exist"):
        registry.get("nope")


# --------------------------------------------------------------------------- versions


def test_version_folder_picks_the_highest_number(tmp_path):
    for name in ("2", "10", "9", "backup", "v11"):
        (tmp_path / name).mkdir()
    assert version_folder(tmp_path) == (tmp_path / "10", 10)
    assert version_folder(tmp_path / "backup") == (tmp_path / "backup", 1)


def test_higher_version_folder_wins(demo_dir, tmp_path, make_settings):
    model = tmp_path / "text-encoder"
    (model / "1").mkdir(parents=True)
    (model / "1" / "saved_model.pb").write_bytes(b"not a model")  # would fail if chosen
    shutil.copytree(demo_dir / "text-encoder" / "1", model / "2")
    registry = loaded(make_settings(models_dir=tmp_path))
    try:
        served = registry.get("text-encoder")
        assert served.status is ModelStatus.READY, served.reason
        assert served.version == 2
        assert served.summary()["version"] == 2
        assert served.embed(["hello world"]).vectors.shape == (1, 128)
    finally:
        registry.close()


# --------------------------------------------------------------------------- failures


FAILURES = {
    "corrupt-v2": "tensorflow_model.data-00000-of-00001 is truncated or corrupt",
    "truncated-v1": "tensorflow_model is truncated or corrupt",
    "no-vocabulary": "missing word_mapping.json (required by MODEL_FILES)",
    "keras-no-vocabulary": "word_mapping.json not found",
    "wrong-tensor": "tensor 'nope:0' not in graph",
    "unknown-key": "sentserve.yaml: outptu: Extra inputs are not permitted",
    "id-outside-table": "word_mapping.json has id 999999, outside the embedding table of",
    "no-net-config": "missing net_config.json (required by MODEL_FILES)",
    "v2-without-data": "tensorflow_model.index has no tensorflow_model.data-* file",
    "empty": "no saved_model.pb or tensorflow_model.meta in",
    "bad-mapping": "word_mapping.json must be a non-empty object",
    "broken-saved-model": "saved_model.pb could not be loaded",
    "too-many-tokens": "max_tokens 50 exceeds the input's fixed length 20",
}


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_broken_model_fails_with_a_reason(zoo, name):
    model = zoo.get(name)
    assert model.status is ModelStatus.FAILED
    assert FAILURES[name] in model.reason
    assert "\n" not in model.reason
    assert "unexpected error" not in model.reason
    assert model.backend is None and model.batcher is None  # released
    summary = model.summary()
    assert (summary["status"], summary["error"], summary["format"]) == (
        "failed",
        model.reason,
        None,
    )
    with pytest.raises(ModelNotReady) as raised:
        model.embed(["hola mundo"])
    assert raised.value.status == "failed"
    assert FAILURES[name] in str(raised.value)


def test_corrupt_checkpoint_reason_says_what_tensorflow_found(zoo):
    reason = zoo.get("corrupt-v2").reason
    assert "Graph execution error" not in reason
    assert "Read less bytes than requested" in reason


def test_healthy_models_serve_beside_broken_ones(zoo, registry):
    ready = sorted(name for name, m in zoo.models.items() if m.status is ModelStatus.READY)
    assert ready == ["bow-spanish", "keras-no-oov"]
    assert sorted(m.name for m in zoo.not_ready()) == sorted(FAILURES)
    assert ".hidden" not in zoo.models and "README.txt" not in zoo.models
    vectors = zoo.ready("bow-spanish").embed(["hola mundo"]).vectors
    expected = registry.get("bow-spanish").embed(["hola mundo"]).vectors
    np.testing.assert_allclose(vectors, expected, rtol=1e-6, atol=1e-6)


def test_ready_when_any(zoo, monkeypatch):
    monkeypatch.setattr(zoo, "settings", zoo.settings.model_copy(update={"ready_when": "any"}))
    assert zoo.not_ready() == []


def test_model_files_setting_decides_what_is_required(zoo_dir, make_settings):
    settings = make_settings(
        models_dir=zoo_dir,
        model_names=["no-net-config"],
        model_files=["tensorflow_model", "tensorflow_model.meta", "word_mapping.json"],
    )
    registry = loaded(settings)
    try:
        model = registry.get("no-net-config")
        assert model.status is ModelStatus.READY, model.reason
        assert model.embed(["hola"]).vectors.shape == (1, 300)
    finally:
        registry.close()


# --------------------------------------------------------------------------- OOV and limits


def test_oov_token_setting_applies_without_manifest(registry, zoo, demo_dir):
    oov_id = vocabulary(demo_dir / "bow-spanish")["OOV"]
    without = registry.get("bow-spanish").embed(["hola zzqx"]).encoded[0]
    assert without.ids[1] is None and without.oov_count == 1
    with_token = zoo.get("bow-spanish").embed(["hola zzqx"]).encoded[0]
    assert with_token.input_ids[1] == oov_id and with_token.oov_count == 1
    assert zoo.get("bow-spanish").tokenizer.vocabulary.oov_token == "OOV"


def test_manifest_oov_token_beats_setting(registry, zoo):
    # bow-keras's manifest names "OOV" while the setting is unset...
    keras = registry.get("bow-keras").embed(["hola zzqx"]).encoded[0]
    assert keras.ids[1] == 1
    # ...and an explicit null in the manifest turns it off although the setting is "OOV".
    no_oov = zoo.get("keras-no-oov").embed(["hola zzqx"]).encoded[0]
    assert no_oov.ids[1] is None
    assert no_oov.oov_count == 1


def test_truncation(registry):
    model = registry.get("bow-spanish")
    words = ("hola mundo arriba abajo lento " * 5).strip()  # 25 known words, limit 20
    cut = model.embed([words]).encoded[0]
    assert cut.truncated and len(cut.input_ids) == 20
    first_twenty = " ".join(words.split()[:20])
    np.testing.assert_allclose(
        model.embed([words]).vectors, model.embed([first_twenty]).vectors, rtol=1e-6, atol=1e-6
    )
    with pytest.raises(SentenceTooLong) as raised:
        model.embed(["hola", words], truncate=False)
    assert (raised.value.index, raised.value.tokens, raised.value.limit) == (1, 25, 20)


def test_embed_ids(registry):
    model = registry.get("bow-spanish")
    embedding = model.embed(["hola mundo", "arriba"])
    ids = [sentence.input_ids for sentence in embedding.encoded]
    np.testing.assert_allclose(
        model.embed_ids(ids).vectors, embedding.vectors, rtol=1e-6, atol=1e-6
    )
    rows = model.backend.embedding_rows
    with pytest.raises(InvalidInput, match=rf"instance 1 has ids outside \[0, {rows}\)"):
        model.embed_ids([[1], [rows]])
    with pytest.raises(InvalidInput):
        model.embed_ids([[-1]])
    with pytest.raises(SentenceTooLong):
        model.embed_ids([[5] * 21])


def test_empty_request(registry):
    assert registry.get("bow-spanish").embed([]).vectors.shape[0] == 0


# --------------------------------------------------------------------------- runtime isolation


def build_poison_model(folder, poison_id=9):
    """A TF1 graph that raises at run time for one id (a bug in a real model's graph)."""
    tf = tensorflow()
    folder.mkdir()
    graph = tf.Graph()
    with graph.as_default():
        ids = tf.compat.v1.placeholder(tf.int32, [None, None], name="ids")
        table = np.arange(40, dtype=np.float32).reshape(10, 4)
        embedding = tf.compat.v1.get_variable("embedding", initializer=table)
        check = tf.debugging.assert_less(ids, poison_id, message="poison id")
        with tf.control_dependencies([check]):
            vectors = tf.reduce_mean(tf.gather(embedding, ids), axis=1)
        tf.identity(vectors, name="vector")
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(folder / "tensorflow_model"), write_state=False)
    mapping = {"hola": 2, "mundo": 3, "hello": 4, "world": 5, "veneno": poison_id}
    (folder / "word_mapping.json").write_text(json.dumps(mapping), encoding="utf-8")
    (folder / "net_config.json").write_text("{}", encoding="utf-8")
    (folder / "sentserve.yaml").write_text(
        "input: ids:0\noutput: vector:0\ntokenizer:\n  kind: vocab\n", encoding="utf-8"
    )


@pytest.fixture(scope="module")
def poisoned(demo_dir, tmp_path_factory, make_settings):
    root = tmp_path_factory.mktemp("poison")
    build_poison_model(root / "poison")
    (root / "bow-spanish").symlink_to(demo_dir / "bow-spanish", target_is_directory=True)
    registry = loaded(make_settings(models_dir=root))
    yield registry
    registry.close()


def test_poison_model_layout(poisoned):
    model = poisoned.get("poison")
    assert model.status is ModelStatus.READY, model.reason
    assert model.summary()["format"] == "tf1-checkpoint-v2"
    assert sorted(p.name for p in model.folder.iterdir()) == [
        "net_config.json",
        "sentserve.yaml",
        "tensorflow_model.data-00000-of-00001",
        "tensorflow_model.index",
        "tensorflow_model.meta",
        "word_mapping.json",
    ]
    assert model.backend.embedding_rows == 10


def test_failing_batch_fails_only_its_request(poisoned):
    model = poisoned.get("poison")
    before = model.inference_errors
    np.testing.assert_allclose(model.embed(["hola mundo"]).vectors, [[10, 11, 12, 13]])
    with pytest.raises(InferenceFailed) as raised:
        model.embed(["hola veneno"])
    message = str(raised.value)
    assert message.startswith("model 'poison' failed to run this batch: ")
    assert "poison id" in message
    assert "\n" not in message
    assert model.inference_errors == before + 1
    assert model.status is ModelStatus.READY
    # The next request to the same model and to the others succeed.
    np.testing.assert_allclose(model.embed(["hello"]).vectors, [[16, 17, 18, 19]])
    assert poisoned.get("bow-spanish").embed(["hola mundo"]).vectors.shape == (1, 300)
    assert model.details()["inference_errors"] == before + 1


# --------------------------------------------------------------------------- manifest


def test_manifest_defaults_fit_the_classic_model(tmp_path):
    manifest = Manifest.read(tmp_path)
    assert (manifest.input, manifest.output) == (CLASSIC_INPUT, CLASSIC_OUTPUT)
    assert manifest.tokenizer.kind == "gensim"
    assert manifest.oov_token_or("OOV") == "OOV"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("sentserve.yaml", "oov_token: null\nmax_tokens: 32\ntokenizer: {kind: vocab}\n"),
        ("sentserve.yml", "oov_token:\nmax_tokens: 32\ntokenizer:\n  kind: vocab\n"),
        ("sentserve.json", '{"oov_token": null, "max_tokens": 32, "tokenizer": {"kind": "vocab"}}'),
    ],
)
def test_manifest_formats(tmp_path, name, text):
    (tmp_path / name).write_text(text, encoding="utf-8")
    manifest = Manifest.read(tmp_path)
    assert manifest.max_tokens == 32
    assert manifest.tokenizer.kind == "vocab"
    assert manifest.oov_token_or("OOV") is None  # explicit null beats the setting


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokenizer: {kind: bpe}\n", "sentserve.yaml: tokenizer.kind: Input should be"),
        ("tokenizer: {lowercas: true}\n", "tokenizer.lowercas: Extra inputs are not permitted"),
        ("batching: {max_batch_size: 0}\n", "batching.max_batch_size: Input should be greater"),
        ("input: [unclosed\n", "sentserve.yaml cannot be read"),
        ("- just\n- a list\n", "sentserve.yaml: manifest: Input should be a valid dictionary"),
    ],
)
def test_manifest_errors(tmp_path, text, message):
    (tmp_path / "sentserve.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ModelLoadError) as raised:
        Manifest.read(tmp_path)
    assert message in str(raised.value)
