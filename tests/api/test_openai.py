"""The OpenAI dialect with the official `openai` package, sync and async, against a live server
(`sentserve run` on a free port); then its error shapes through the Flask test client."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.api.contract import BAD_PADDING, BROKEN, READY_MODELS
from tests.integration.servers import BIN, free_port, running

SENTENCES = ["hola mundo", "Arriba, abajo lento lento!", "la canción también está aquí"]
DIMENSIONS = {"bow-spanish": 300, "lstm-multilingual": 64, "text-encoder": 128, "bow-keras": 64}


@pytest.fixture(scope="module")
def base_url(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo models plus `broken` (a cut checkpoint: failed), served by `sentserve run`."""
    models = tmp_path_factory.mktemp("openai") / "models"
    shutil.copytree(demo_dir, models)
    shutil.copytree(demo_dir / "bow-spanish", models / BROKEN)
    checkpoint = models / BROKEN / "tensorflow_model"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    env = {
        "SENTSERVE_MODELS_DIR": str(models),
        "SENTSERVE_PROFILE": "testing",
        "SENTSERVE_LOG_LEVEL": "WARNING",
        "SENTSERVE_WARMUP_BATCHES": "0",
        "SENTSERVE_READY_WHEN": "any",
    }
    port = free_port()
    with running([str(BIN / "sentserve"), "run", "--port", str(port)], env, port) as (url, _):
        yield url


@pytest.fixture(scope="module")
def sync_client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def async_client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def native(base_url: str, model: str, sentences: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """/embed's vectors and usage: what every dialect must equal."""
    answer = requests.post(
        f"{base_url}/api/v1/models/{model}/embed", json={"sentences": sentences}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return np.array(body["embeddings"]), body["usage"]


def vectors_of(response: openai.types.CreateEmbeddingResponse) -> np.ndarray:
    assert [item.index for item in response.data] == list(range(len(response.data)))
    assert all(item.object == "embedding" for item in response.data)
    return np.array([item.embedding for item in response.data])


# -- the official client, live ----------------------------------------------------------------


@pytest.mark.parametrize("model", READY_MODELS)
def test_a_batch_equals_embed(sync_client: openai.OpenAI, base_url: str, model: str) -> None:
    """The client's default: base64, decoded by the client itself."""
    response = sync_client.embeddings.create(model=model, input=SENTENCES)
    assert response.object == "list"
    assert response.model == model
    expected, usage = native(base_url, model, SENTENCES)
    vectors = vectors_of(response)
    assert vectors.shape == (len(SENTENCES), DIMENSIONS[model])
    np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-6)
    assert response.usage.prompt_tokens == response.usage.total_tokens
    if model != "text-encoder":  # it tokenizes in its graph; /embed counts no ids for it
        assert response.usage.prompt_tokens == usage["tokens"]


def test_one_string_as_float_and_base64(sync_client: openai.OpenAI, base_url: str) -> None:
    as_float = sync_client.embeddings.create(
        model="bow-spanish", input="hola mundo", encoding_format="float", user="someone"
    )
    as_base64 = sync_client.embeddings.create(
        model="bow-spanish", input="hola mundo", encoding_format="base64"
    )
    expected, _ = native(base_url, "bow-spanish", ["hola mundo"])
    np.testing.assert_allclose(vectors_of(as_float), expected, rtol=0, atol=1e-6)
    # Asked for explicitly, base64 is left to the caller to decode: little-endian float32.
    decoded = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in as_base64.data]
    np.testing.assert_array_equal(np.array(decoded), vectors_of(as_float).astype(np.float32))
    assert as_float.usage.prompt_tokens == 2


def test_base64_is_little_endian_float32(base_url: str) -> None:
    answer = requests.post(
        f"{base_url}/v1/embeddings",
        json={"model": "bow-keras", "input": ["hola"], "encoding_format": "base64"},
        timeout=30,
    )
    assert answer.status_code == 200
    encoded = answer.json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    expected, _ = native(base_url, "bow-keras", ["hola"])
    np.testing.assert_array_equal(decoded, expected[0].astype(np.float32))


@pytest.mark.parametrize("dimensions", [1, 16, 64])
def test_dimensions_keep_the_first_values_at_unit_length(
    sync_client: openai.OpenAI, base_url: str, dimensions: int
) -> None:
    response = sync_client.embeddings.create(
        model="lstm-multilingual", input=SENTENCES, dimensions=dimensions
    )
    vectors = vectors_of(response)
    assert vectors.shape == (len(SENTENCES), dimensions)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    first = native(base_url, "lstm-multilingual", SENTENCES)[0][:, :dimensions]
    direction = first / np.linalg.norm(first, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, direction, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dimensions", [0, 65])
def test_dimensions_outside_the_model_are_400(sync_client: openai.OpenAI, dimensions: int) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sync_client.embeddings.create(model="bow-keras", input="hola", dimensions=dimensions)
    assert raised.value.status_code == 400
    assert raised.value.param == "dimensions"


def test_an_unknown_model_is_not_found(sync_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sync_client.embeddings.create(model="nope", input="hola")
    assert raised.value.code == "model_not_found"
    assert "nope" in raised.value.message


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("", "empty string"),
        ([], "non-empty"),
        (["hola", ""], "empty string"),
        ([12, 7], "token-id arrays are not supported"),
        ([[12, 7], [3]], "token-id arrays are not supported"),
    ],
)
def test_bad_input_is_400(sync_client: openai.OpenAI, given: Any, fragment: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sync_client.embeddings.create(model="bow-spanish", input=given)
    assert fragment in raised.value.message
    assert raised.value.type == "invalid_request_error"
    assert raised.value.param == "input"


def test_a_failed_model_is_503(sync_client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        sync_client.embeddings.create(model=BROKEN, input="hola")
    assert raised.value.status_code == 503
    assert raised.value.code == "model_not_ready"


def test_models_lists_the_ready_ones(sync_client: openai.OpenAI) -> None:
    models = list(sync_client.models.list())
    assert sorted(m.id for m in models) == sorted(READY_MODELS)
    for model in models:
        assert model.object == "model"
        assert model.owned_by == "sentserve"
        assert isinstance(model.created, int) and model.created > 1_600_000_000


def test_the_async_client(base_url: str) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with async_client(base_url) as client:
            return await asyncio.gather(
                client.embeddings.create(model="bow-spanish", input="hola mundo"),
                client.embeddings.create(model="text-encoder", input=SENTENCES),
                client.embeddings.create(
                    model="bow-keras", input=SENTENCES, encoding_format="float", dimensions=8
                ),
                client.models.list(),
            )

    one, batch, short, models = asyncio.run(scenario())
    expected, _ = native(base_url, "bow-spanish", ["hola mundo"])
    np.testing.assert_allclose(vectors_of(one), expected, rtol=0, atol=1e-6)
    expected, _ = native(base_url, "text-encoder", SENTENCES)
    np.testing.assert_allclose(vectors_of(batch), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors_of(short), axis=1), 1.0, atol=1e-6)
    assert sorted(m.id for m in models.data) == sorted(READY_MODELS)

    async def missing() -> None:
        async with async_client(base_url) as client:
            await client.embeddings.create(model="nope", input="hola")

    with pytest.raises(openai.NotFoundError):
        asyncio.run(missing())


# -- error shapes, through the test client ----------------------------------------------------


def assert_openai_error(
    response: TestResponse, status: int, kind: str, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`, nothing else."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/json", text
    body = response.get_json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == kind
    assert error["code"] == code
    assert "Traceback" not in text
    return error


EMBEDDINGS = "/v1/embeddings"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hola"}, "model"),
        ({"model": "bow-spanish"}, "input"),
        ({"model": "bow-spanish", "input": "hola", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "bow-spanish", "input": "hola", "dimensions": "8"}, "dimensions"),
        ({"model": "bow-spanish", "input": [None]}, "input"),
        (["hola"], None),
    ],
)
def test_invalid_bodies_are_400(client: FlaskClient, body: Any, param: str | None) -> None:
    error = assert_openai_error(client.post(EMBEDDINGS, json=body), 400, "invalid_request_error")
    assert error["param"] == param


def test_engine_errors_in_openai_shape(client: FlaskClient) -> None:
    answer = client.post(EMBEDDINGS, json={"model": "nope", "input": "x"})
    assert_openai_error(answer, 404, "invalid_request_error", "model_not_found")
    answer = client.post(EMBEDDINGS, json={"model": BROKEN, "input": "x"})
    assert_openai_error(answer, 503, "server_error", "model_not_ready")
    answer = client.post(EMBEDDINGS, json={"model": BAD_PADDING, "input": ["hola", " "]})
    error = assert_openai_error(answer, 500, "server_error")
    assert "failed to run this batch" in error["message"]


def test_malformed_json_and_wrong_media_type(client: FlaskClient) -> None:
    malformed = client.post(EMBEDDINGS, data="{nope", content_type="application/json")
    error = assert_openai_error(malformed, 400, "invalid_request_error")
    assert "malformed JSON" in error["message"]
    as_text = client.post(EMBEDDINGS, data="{}", content_type="text/plain")
    assert_openai_error(as_text, 415, "invalid_request_error", "unsupported_media_type")


def test_limits_from_settings(make_app: Callable[..., Flask]) -> None:
    limited = make_app(max_body_bytes=2048, max_sentences=3, max_sentence_chars=50).test_client()
    body: dict[str, Any] = {"model": "bow-spanish", "input": ["a", "b", "c"]}
    assert limited.post(EMBEDDINGS, json=body).status_code == 200
    answer = limited.post(EMBEDDINGS, json={**body, "input": ["a"] * 4})
    error = assert_openai_error(answer, 400, "invalid_request_error")
    assert error["message"] == "'input' has 4 items; the limit is 3"
    answer = limited.post(EMBEDDINGS, json={**body, "input": ["a", "x" * 51]})
    error = assert_openai_error(answer, 400, "invalid_request_error")
    assert error["message"] == "'input' item 1 has 51 characters; the limit is 50"
    answer = limited.post(EMBEDDINGS, json={**body, "input": ["x" * 40] * 60})
    assert_openai_error(answer, 413, "invalid_request_error", "request_too_large")


def test_401_and_429_in_openai_shape(make_app: Callable[..., Flask]) -> None:
    keyed = make_app(api_keys=["s3cret"], rate_limit="2/minute").test_client()
    body = {"model": "bow-spanish", "input": "hola"}
    answer = keyed.post(EMBEDDINGS, json=body)
    assert_openai_error(answer, 401, "invalid_request_error", "invalid_api_key")
    answer = keyed.get("/v1/models", headers={"Authorization": "Bearer wrong"})
    assert_openai_error(answer, 401, "invalid_request_error", "invalid_api_key")
    headers = {"Authorization": "Bearer s3cret"}  # what the openai client sends
    for _ in range(2):  # Flask-Limiter counts per route
        assert keyed.post(EMBEDDINGS, json=body, headers=headers).status_code == 200
    answer = keyed.post(EMBEDDINGS, json=body, headers=headers)
    assert_openai_error(answer, 429, "requests", "rate_limit_exceeded")
    assert "Retry-After" in answer.headers


def test_models_in_process_lists_only_ready_models(client: FlaskClient) -> None:
    answer = client.get("/v1/models")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["object"] == "list"
    assert sorted(m["id"] for m in body["data"]) == sorted([*READY_MODELS, BAD_PADDING])
    assert BROKEN not in {m["id"] for m in body["data"]}
