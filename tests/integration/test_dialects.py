"""One path, three dialects: native `/embed`, OpenAI `/v1/embeddings` and TF Serving `:predict`
against one live `sentserve serve`, with API keys on and JSON logs to a file. The same sentence
gives the same vector through each, a request id sent through each shows in the log, and each
dialect's errors (404, 401) come in its own shape."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import requests

from tests.integration.servers import BIN, free_port, running

KEY = "dialect-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODELS = ("bow-spanish", "lstm-multilingual", "text-encoder")
SENTENCE = "Arriba, abajo, la canción también está aquí"


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dialects") / "sentserve.log"


@pytest.fixture(scope="module")
def base_url(
    demo_dir: Path, log_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = {
        "SENTSERVE_MODELS_DIR": str(demo_dir),
        "SENTSERVE_MODEL_NAMES": ",".join(MODELS),
        "SENTSERVE_PROFILE": "production",
        "SENTSERVE_CONSOLE_LOG": "false",
        "SENTSERVE_LOG_FILE": str(log_file),
        "SENTSERVE_LOG_FORMAT": "json",
        "SENTSERVE_WARMUP_BATCHES": "0",
        "SENTSERVE_API_KEYS": KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics")),
    }
    port = free_port()
    command = [str(BIN / "sentserve"), "serve", "--port", str(port), "--workers", "1"]
    with running(command, env, port) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0) as client:
        yield client


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(url, json=body, headers={**AUTH, **(headers or {})}, timeout=30)


def native_vector(base_url: str, model: str, headers: dict[str, str] | None = None) -> np.ndarray:
    answer = post(f"{base_url}/api/v1/models/{model}/embed", {"sentences": [SENTENCE]}, headers)
    assert answer.status_code == 200, answer.text
    return np.array(answer.json()["embeddings"][0])


def openai_vector(
    client: openai.OpenAI, model: str, headers: dict[str, str] | None = None
) -> np.ndarray:
    response = client.embeddings.create(model=model, input=SENTENCE, extra_headers=headers)
    return np.array(response.data[0].embedding)


def tfserving_vector(
    base_url: str, model: str, instance: Any = SENTENCE, headers: dict[str, str] | None = None
) -> np.ndarray:
    answer = post(f"{base_url}/v1/models/{model}:predict", {"instances": [instance]}, headers)
    assert answer.status_code == 200, answer.text
    return np.array(answer.json()["predictions"][0])


@pytest.mark.parametrize("model", MODELS)
def test_the_same_sentence_gives_the_same_vector_through_each_dialect(
    base_url: str, client: openai.OpenAI, model: str
) -> None:
    expected = native_vector(base_url, model)
    np.testing.assert_allclose(openai_vector(client, model), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(tfserving_vector(base_url, model), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("model", ["bow-spanish", "lstm-multilingual"])
def test_the_tokenizers_ids_through_tf_serving_give_the_same_vector(
    base_url: str, model: str
) -> None:
    answer = post(f"{base_url}/api/v1/models/{model}/tokenize", {"sentences": [SENTENCE]})
    assert answer.status_code == 200, answer.text
    ids = [i for i in answer.json()["sentences"][0]["ids"] if i is not None]
    vector = tfserving_vector(base_url, model, instance=ids)
    np.testing.assert_allclose(vector, native_vector(base_url, model), rtol=0, atol=1e-6)


def test_a_request_id_through_each_dialect_shows_in_the_log(
    base_url: str, client: openai.OpenAI, log_file: Path
) -> None:
    ids = {dialect: f"{dialect}-{uuid.uuid4().hex}" for dialect in ("native", "openai", "tf")}
    native_vector(base_url, "bow-spanish", {"X-Request-ID": ids["native"]})
    openai_vector(client, "bow-spanish", {"X-Request-ID": ids["openai"]})
    tfserving_vector(base_url, "bow-spanish", headers={"X-Request-ID": ids["tf"]})
    lines = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    logged = {line["request_id"]: line for line in lines if line.get("request_id") in ids.values()}
    assert logged.keys() == set(ids.values())
    paths = {
        "native": "/api/v1/models/bow-spanish/embed",
        "openai": "/v1/embeddings",
        "tf": "/v1/models/bow-spanish:predict",
    }
    for dialect, request_id in ids.items():
        line = logged[request_id]
        assert line["path"] == paths[dialect]
        assert line["status"] == 200
        assert line["method"] == "POST"
        assert line["sentences"] == 1
        assert SENTENCE not in json.dumps(line)  # counts only, never the text


def test_each_dialects_404_comes_in_its_own_shape(base_url: str, client: openai.OpenAI) -> None:
    native = post(f"{base_url}/api/v1/models/nope/embed", {"sentences": [SENTENCE]})
    assert native.status_code == 404
    assert native.headers["Content-Type"] == "application/problem+json"
    assert native.json()["type"] == "urn:sentserve:problem:model-not-found"

    with pytest.raises(openai.NotFoundError) as raised:
        client.embeddings.create(model="nope", input=SENTENCE)
    assert raised.value.code == "model_not_found"
    assert set(raised.value.response.json()) == {"error"}

    tf = post(f"{base_url}/v1/models/nope:predict", {"instances": [SENTENCE]})
    assert tf.status_code == 404
    assert tf.headers["Content-Type"] == "application/json"
    assert tf.json() == {"error": "Servable not found for request: Latest(nope)"}


def test_each_dialects_401_comes_in_its_own_shape(base_url: str) -> None:
    wrong = {"Authorization": "Bearer wrong"}
    native = requests.post(
        f"{base_url}/api/v1/models/bow-spanish/embed",
        json={"sentences": [SENTENCE]},
        headers=wrong,
        timeout=30,
    )
    assert native.status_code == 401
    assert native.headers["Content-Type"] == "application/problem+json"

    with (
        openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        stranger.embeddings.create(model="bow-spanish", input=SENTENCE)
    assert raised.value.code == "invalid_api_key"

    tf = requests.post(
        f"{base_url}/v1/models/bow-spanish:predict",
        json={"instances": [SENTENCE]},
        headers=wrong,
        timeout=30,
    )
    assert tf.status_code == 401
    assert set(tf.json()) == {"error"}
