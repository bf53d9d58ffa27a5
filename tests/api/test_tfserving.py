"""The TensorFlow Serving REST dialect, from TF Serving's REST API documentation examples adapted
to the demo models: model status, metadata, `:predict` in row (`instances`) and columnar
(`inputs`) format, with text or token ids, versions, and every error as `{"error": "..."}`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sentserve.api.app import create_app
from sentserve.engine.registry import ModelRegistry
from sentserve.settings import Settings
from tests.api.conftest import registry_of, restore_logging
from tests.api.contract import BAD_PADDING, BROKEN, READY_MODELS

PREDICT = "/v1/models/{}:predict"
SENTENCES = ["hola mundo", "Arriba, abajo lento lento!", "la canción también está aquí"]
ID_MODELS = ("bow-spanish", "lstm-multilingual", "bow-keras")
AVAILABLE = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def assert_tf_error(response: TestResponse, status: int) -> str:
    """TF Serving's error body: JSON with one `error` string, never problem+json or HTML."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/json", text
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in text
    message: str = body["error"]
    return message


def engine_vectors(registry: ModelRegistry, name: str, sentences: list[str]) -> np.ndarray:
    return registry.get(name).embed(sentences).vectors


def token_ids(registry: ModelRegistry, name: str, sentences: list[str]) -> list[list[int]]:
    tokenizer = registry.get(name).tokenizer
    assert tokenizer is not None
    return [e.input_ids for e in tokenizer.encode_batch(sentences)]


# -- model status -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", READY_MODELS)
def test_status_of_a_ready_model_is_available(client: FlaskClient, name: str) -> None:
    # TF Serving's docs: GET http://host:port/v1/models/${MODEL_NAME}[/versions/${VERSION}]
    expected = {"model_version_status": [{"version": "1", **AVAILABLE}]}
    for path in (f"/v1/models/{name}", f"/v1/models/{name}/versions/1"):
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.mimetype == "application/json"
        assert answer.get_json() == expected


def test_status_of_a_failed_model_says_end_and_why(client: FlaskClient) -> None:
    answer = client.get(f"/v1/models/{BROKEN}")
    assert answer.status_code == 200
    (entry,) = answer.get_json()["model_version_status"]
    assert entry["version"] == "1"
    assert entry["state"] == "END"
    assert entry["status"]["error_code"] == "UNKNOWN"
    assert "truncated or corrupt" in entry["status"]["error_message"]


def test_status_of_an_unknown_model_or_version_is_404(client: FlaskClient) -> None:
    message = assert_tf_error(client.get("/v1/models/nope"), 404)
    assert message == "Servable not found for request: Latest(nope)"
    message = assert_tf_error(client.get("/v1/models/bow-spanish/versions/3"), 404)
    assert message == "Servable not found for request: Specific(bow-spanish, 3)"


# -- versions ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def versioned(
    demo_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    make_settings: Callable[..., Settings],
    app: Flask,
) -> Iterator[FlaskClient]:
    """text-encoder as version 2 (its `2/` folder), and bow-keras present but not enabled."""
    root = tmp_path_factory.mktemp("versioned")
    shutil.copytree(demo_dir / "text-encoder" / "1", root / "text-encoder" / "2")
    shutil.copytree(demo_dir / "bow-keras", root / "bow-keras")
    versioned_app = create_app(make_settings(models_dir=root, model_names=["text-encoder"]))
    yield versioned_app.test_client()
    registry_of(versioned_app).close()
    restore_logging(app)


def test_a_version_folder_is_the_served_version(versioned: FlaskClient) -> None:
    expected = {"model_version_status": [{"version": "2", **AVAILABLE}]}
    assert versioned.get("/v1/models/text-encoder").get_json() == expected
    assert versioned.get("/v1/models/text-encoder/versions/2").get_json() == expected
    metadata = versioned.get("/v1/models/text-encoder/versions/2/metadata").get_json()
    assert metadata["model_spec"] == {"name": "text-encoder", "signature_name": "", "version": "2"}


def test_another_version_than_the_served_one_is_404(versioned: FlaskClient) -> None:
    expected = "Servable not found for request: Specific(text-encoder, 1)"
    for answer in (
        versioned.get("/v1/models/text-encoder/versions/1"),
        versioned.get("/v1/models/text-encoder/versions/1/metadata"),
        versioned.post("/v1/models/text-encoder/versions/1:predict", json={"instances": ["a"]}),
    ):
        assert assert_tf_error(answer, 404) == expected


def test_predict_on_the_served_version(versioned: FlaskClient, registry: ModelRegistry) -> None:
    """The version 2 folder is a copy of version 1: the same vectors, by either route."""
    body = {"instances": SENTENCES}
    latest = versioned.post(PREDICT.format("text-encoder"), json=body)
    pinned = versioned.post("/v1/models/text-encoder/versions/2:predict", json=body)
    assert latest.status_code == pinned.status_code == 200
    assert latest.get_json() == pinned.get_json()
    expected = engine_vectors(registry, "text-encoder", SENTENCES)
    np.testing.assert_allclose(latest.get_json()["predictions"], expected, rtol=0, atol=1e-6)


def test_a_model_not_enabled_ends_with_failed_precondition(versioned: FlaskClient) -> None:
    (entry,) = versioned.get("/v1/models/bow-keras").get_json()["model_version_status"]
    assert entry["state"] == "END"
    assert entry["status"] == {
        "error_code": "FAILED_PRECONDITION",
        "error_message": "not listed in MODEL_NAMES",
    }
    answer = versioned.post(PREDICT.format("bow-keras"), json={"instances": [[5, 6, 7]]})
    assert "disabled" in assert_tf_error(answer, 503)


def test_a_loading_model_is_loading_and_predict_is_503(
    api_settings: Callable[..., Settings], app: Flask
) -> None:
    """A registry whose models are found but not loaded yet: what probes see at start-up."""
    settings = api_settings(model_names=["bow-spanish"])
    loading = create_app(settings, registry=ModelRegistry(settings)).test_client()
    restore_logging(app)
    (entry,) = loading.get("/v1/models/bow-spanish").get_json()["model_version_status"]
    assert entry == {
        "version": "1",
        "state": "LOADING",
        "status": {"error_code": "OK", "error_message": ""},
    }
    answer = loading.post(PREDICT.format("bow-spanish"), json={"instances": ["hola"]})
    assert "loading" in assert_tf_error(answer, 503)
    assert answer.headers["Retry-After"] == "5"
    assert_tf_error(loading.get("/v1/models/bow-spanish/metadata"), 503)


# -- metadata ---------------------------------------------------------------------------------


def tensor(dtype: str, sizes: list[int], name: str) -> dict[str, Any]:
    dims = [{"size": str(size), "name": ""} for size in sizes]
    return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}


def test_metadata_of_the_classic_model_as_tf_serving_prints_it(client: FlaskClient) -> None:
    answer = client.get("/v1/models/bow-spanish/metadata")
    assert answer.status_code == 200
    output = (
        "target-embedding/title_sub_network/clickability/add_title_emb/"
        "apply_title_to_vec_func/reduced_title_emb:0"
    )
    assert answer.get_json() == {
        "model_spec": {"name": "bow-spanish", "signature_name": "", "version": "1"},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {"input": tensor("DT_FLOAT", [-1, 20], "input/title:0")},
                        "outputs": {"embedding": tensor("DT_FLOAT", [-1, 300], output)},
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        },
    }
    assert client.get("/v1/models/bow-spanish/versions/1/metadata").get_json() == answer.get_json()


@pytest.mark.parametrize(
    ("name", "inputs", "dimensions"),
    [
        ("text-encoder", {"text": tensor("DT_STRING", [-1], "text")}, 128),
        ("bow-keras", {"token_ids": tensor("DT_INT32", [-1, -1], "token_ids")}, 64),
    ],
)
def test_metadata_of_saved_models(
    client: FlaskClient, name: str, inputs: dict[str, Any], dimensions: int
) -> None:
    signature = client.get(f"/v1/models/{name}/metadata").get_json()["metadata"]["signature_def"]
    definition = signature["signature_def"]["serving_default"]
    assert definition["inputs"] == inputs
    (output,) = definition["outputs"].values()
    assert output["dtype"] == "DT_FLOAT"
    assert output["tensor_shape"]["dim"][-1] == {"size": str(dimensions), "name": ""}


def test_metadata_of_a_failed_or_unknown_model(client: FlaskClient) -> None:
    assert "failed" in assert_tf_error(client.get(f"/v1/models/{BROKEN}/metadata"), 503)
    assert_tf_error(client.get("/v1/models/nope/metadata"), 404)


# -- predict ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READY_MODELS)
def test_row_format_with_text(client: FlaskClient, registry: ModelRegistry, name: str) -> None:
    # TF Serving's docs: {"signature_name": "serving_default", "instances": [...]}
    body = {"signature_name": "serving_default", "instances": SENTENCES}
    answer = client.post(PREDICT.format(name), json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    assert set(answer.get_json()) == {"predictions"}
    expected = engine_vectors(registry, name, SENTENCES)
    np.testing.assert_allclose(answer.get_json()["predictions"], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ID_MODELS)
def test_row_format_with_token_ids_equals_the_text(
    client: FlaskClient, registry: ModelRegistry, name: str
) -> None:
    """The ids the tokenizer gives are the raw input tensor: the same vectors as the text.
    Ragged rows are fine: sentserve pads them as it pads tokenized text."""
    ids = token_ids(registry, name, SENTENCES)
    assert len({len(row) for row in ids}) > 1
    answer = client.post(PREDICT.format(name), json={"instances": ids})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    expected = engine_vectors(registry, name, SENTENCES)
    np.testing.assert_allclose(answer.get_json()["predictions"], expected, rtol=0, atol=1e-6)


def test_whole_floats_are_ids_as_the_classic_float_input_took_them(
    client: FlaskClient, registry: ModelRegistry
) -> None:
    ids = token_ids(registry, "bow-spanish", ["hola mundo"])
    floats = [[float(i) for i in row] for row in ids]
    answer = client.post(PREDICT.format("bow-spanish"), json={"instances": floats})
    assert answer.status_code == 200
    expected = engine_vectors(registry, "bow-spanish", ["hola mundo"])
    np.testing.assert_allclose(answer.get_json()["predictions"], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "inputs",
    [
        SENTENCES,
        {"input": SENTENCES},
        {"input/title:0": SENTENCES},
    ],
    ids=["list", "signature-key", "tensor-name"],
)
def test_columnar_format_answers_outputs(
    client: FlaskClient, registry: ModelRegistry, inputs: Any
) -> None:
    # TF Serving's docs: {"inputs": {"tag": [...], ...}}; with one input, a bare list too.
    answer = client.post(PREDICT.format("bow-spanish"), json={"inputs": inputs})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert set(answer.get_json()) == {"outputs"}
    expected = engine_vectors(registry, "bow-spanish", SENTENCES)
    np.testing.assert_allclose(answer.get_json()["outputs"], expected, rtol=0, atol=1e-6)


def test_columnar_token_ids_by_input_name(client: FlaskClient, registry: ModelRegistry) -> None:
    ids = token_ids(registry, "bow-keras", SENTENCES)
    answer = client.post(PREDICT.format("bow-keras"), json={"inputs": {"token_ids": ids}})
    assert answer.status_code == 200
    expected = engine_vectors(registry, "bow-keras", SENTENCES)
    np.testing.assert_allclose(answer.get_json()["outputs"], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("signature", [None, "", "serving_default"])
def test_the_default_signature_by_any_name(client: FlaskClient, signature: str | None) -> None:
    body: dict[str, Any] = {"instances": ["hola"]}
    if signature is not None:
        body["signature_name"] = signature
    assert client.post(PREDICT.format("text-encoder"), json=body).status_code == 200


def test_the_version_route_predicts_like_the_latest(client: FlaskClient) -> None:
    body = {"instances": ["hola mundo"]}
    latest = client.post(PREDICT.format("lstm-multilingual"), json=body)
    pinned = client.post("/v1/models/lstm-multilingual/versions/1:predict", json=body)
    assert latest.status_code == pinned.status_code == 200
    assert latest.get_json() == pinned.get_json()


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"instances": ["a"], "inputs": ["a"]}, "only one of 'inputs' or 'instances'"),
        ({}, "Missing 'inputs' or 'instances' key"),
        ({"signature_name": "serving_default"}, "Missing 'inputs' or 'instances' key"),
        ({"instances": []}, "No values in 'instances' array"),
        ({"inputs": []}, "No values in 'inputs' array"),
        ({"instances": "hola"}, "instances"),
        ({"instances": [5]}, "a string (text) or a list of token ids"),
        ({"instances": [None]}, "a string (text) or a list of token ids"),
        ({"instances": [{"input": [1]}]}, "a string (text) or a list of token ids"),
        ({"instances": [["hola", "mundo"]]}, "token ids are numbers, not str"),
        ({"instances": [[1, True]]}, "token ids are numbers, not bool"),
        ({"instances": [[1.5, 2]]}, "token ids are whole numbers, not 1.5"),
        ({"instances": [[1, 2], [[3]]]}, "token ids are numbers, not list"),
        ({"instances": ["hola", [1, 2]]}, "mixes strings (text) and lists of token ids"),
        ({"inputs": {"input": ["a"], "other": ["b"]}}, "exactly one key"),
        ({"inputs": {"nope": ["a"]}}, "'nope' is not an input of the model"),
        ({"inputs": {"input": "hola"}}, "inputs"),
        ({"instance": ["hola"]}, "instance"),
        ({"signature_name": "classify", "instances": ["a"]}, 'name: "classify" not found'),
        ({"signature_name": 3, "instances": ["a"]}, "signature_name"),
        (["hola"], "dictionary"),
        ("hola", "dictionary"),
    ],
)
def test_invalid_bodies_are_400(client: FlaskClient, body: Any, fragment: str) -> None:
    message = assert_tf_error(client.post(PREDICT.format("bow-spanish"), json=body), 400)
    assert fragment in message


def test_ids_beyond_the_models_length_or_vocabulary_are_400(client: FlaskClient) -> None:
    too_long = {"instances": [list(range(2, 30))]}  # bow-spanish takes 20
    message = assert_tf_error(client.post(PREDICT.format("bow-spanish"), json=too_long), 400)
    assert message == "instance 0 has 28 token ids; the model takes at most 20"
    outside = {"instances": [[1, 10**9]]}
    message = assert_tf_error(client.post(PREDICT.format("bow-spanish"), json=outside), 400)
    assert "ids outside" in message


def test_ids_to_a_text_model_are_400(client: FlaskClient) -> None:
    answer = client.post(PREDICT.format("text-encoder"), json={"instances": [[1, 2]]})
    assert "takes text, not token ids" in assert_tf_error(answer, 400)


def test_unknown_model_and_version_are_404(client: FlaskClient) -> None:
    body = {"instances": ["hola"]}
    message = assert_tf_error(client.post(PREDICT.format("nope"), json=body), 404)
    assert message == "Servable not found for request: Latest(nope)"
    answer = client.post("/v1/models/bow-spanish/versions/2:predict", json=body)
    message = assert_tf_error(answer, 404)
    assert message == "Servable not found for request: Specific(bow-spanish, 2)"


def test_a_failed_model_is_503(client: FlaskClient) -> None:
    answer = client.post(PREDICT.format(BROKEN), json={"instances": ["hola"]})
    assert f"model '{BROKEN}' is failed" in assert_tf_error(answer, 503)


def test_an_inference_failure_is_500_and_the_next_request_works(client: FlaskClient) -> None:
    """An empty sentence is padded with the bad id: TensorFlow fails for this batch only."""
    answer = client.post(PREDICT.format(BAD_PADDING), json={"instances": [""]})
    assert "failed to run this batch" in assert_tf_error(answer, 500)
    again = client.post(PREDICT.format(BAD_PADDING), json={"instances": ["hola mundo"]})
    assert again.status_code == 200


def test_body_is_json_whatever_its_media_type(client: FlaskClient) -> None:
    """TF Serving reads the body as JSON regardless of Content-Type: its own docs post with a
    bare `curl -d`, which sends application/x-www-form-urlencoded."""
    url = PREDICT.format("bow-spanish")
    malformed = client.post(url, data="{nope", content_type="application/json")
    assert "malformed JSON" in assert_tf_error(malformed, 400)
    body = json.dumps({"instances": [[5, 6]]})
    for media_type in ("text/plain", "application/x-www-form-urlencoded"):
        answer = client.post(url, data=body, content_type=media_type)
        assert answer.status_code == 200
        assert len(answer.json["predictions"]) == 1
    assert "malformed JSON" in assert_tf_error(client.post(url, data="{nope"), 400)


@pytest.fixture(scope="module")
def limited(make_app: Callable[..., Flask]) -> FlaskClient:
    """Small limits: 2 KiB bodies, 3 instances of at most 50 characters."""
    return make_app(max_body_bytes=2048, max_sentences=3, max_sentence_chars=50).test_client()


def test_limits_from_settings_are_400_and_413(limited: FlaskClient) -> None:
    url = PREDICT.format("bow-spanish")
    assert limited.post(url, json={"instances": ["a", "b", "c"]}).status_code == 200
    message = assert_tf_error(limited.post(url, json={"instances": ["a"] * 4}), 400)
    assert message == "'instances' has 4 values; the limit is 3"
    message = assert_tf_error(limited.post(url, json={"inputs": [[1]] * 4}), 400)
    assert message == "'inputs' has 4 values; the limit is 3"
    message = assert_tf_error(limited.post(url, json={"instances": ["a", "x" * 51]}), 400)
    assert message == "instances[1] has 51 characters; the limit is 50"
    assert_tf_error(limited.post(url, json={"instances": ["x" * 40] * 60}), 413)


def test_401_and_429_in_tf_serving_shape(make_app: Callable[..., Flask]) -> None:
    keyed = make_app(api_keys=["s3cret"], rate_limit="2/minute").test_client()
    url = PREDICT.format("bow-spanish")
    body = {"instances": ["hola"]}
    assert_tf_error(keyed.post(url, json=body), 401)
    assert_tf_error(keyed.get("/v1/models/bow-spanish", headers={"X-API-Key": "wrong"}), 401)
    headers = {"Authorization": "Bearer s3cret"}
    assert keyed.post(url, json=body, headers=headers).status_code == 200
    assert keyed.post(url, json=body, headers=headers).status_code == 200
    assert_tf_error(keyed.post(url, json=body, headers=headers), 429)
