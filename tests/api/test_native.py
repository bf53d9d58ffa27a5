"""The native routes over real models: /api/v1/models..., probes, metrics, docs redirect."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from sentserve.api.app import create_app
from sentserve.engine.registry import ModelRegistry
from sentserve.settings import Settings
from tests.api.contract import BAD_PADDING, BROKEN, READY_MODELS, assert_problem

EMBED = "/api/v1/models/{}/embed"
DIMENSIONS = {"bow-spanish": 300, "lstm-multilingual": 64, "text-encoder": 128, "bow-keras": 64}
SENTENCES = ["hola mundo", "Arriba, abajo lento lento!", "la canción también está aquí"]
TIMING_HEADERS = ("X-Queue-Time", "X-Tokenization-Time", "X-Inference-Time", "X-Total-Time")


def vocabulary(models_dir: Path, name: str) -> dict[str, int]:
    mapping: dict[str, int] = json.loads((models_dir / name / "word_mapping.json").read_text())
    return mapping


# -- embed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READY_MODELS)
def test_embed_answers_the_engines_vectors(
    client: FlaskClient, registry: ModelRegistry, name: str
) -> None:
    answer = client.post(EMBED.format(name), json={"sentences": SENTENCES})
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    body = answer.get_json()
    assert set(body) == {"model", "version", "dimensions", "embeddings", "usage"}
    assert body["model"] == name
    assert body["version"] == 1
    assert body["dimensions"] == DIMENSIONS[name]
    vectors = np.array(body["embeddings"], dtype=np.float64)
    assert vectors.shape == (len(SENTENCES), DIMENSIONS[name])
    expected = registry.get(name).embed(SENTENCES).vectors
    np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-6)
    assert body["usage"]["sentences"] == len(SENTENCES)


def test_embed_takes_the_classic_title_as_one_sentence(
    client: FlaskClient, registry: ModelRegistry
) -> None:
    answer = client.post(EMBED.format("bow-spanish"), json={"title": "hola mundo"})
    assert answer.status_code == 200
    body = answer.get_json()
    assert len(body["embeddings"]) == 1
    assert body["usage"]["sentences"] == 1
    expected = registry.get("bow-spanish").embed(["hola mundo"]).vectors[0]
    np.testing.assert_allclose(body["embeddings"][0], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", READY_MODELS)
def test_normalize_gives_unit_vectors_in_the_same_direction(client: FlaskClient, name: str) -> None:
    raw = client.post(EMBED.format(name), json={"sentences": SENTENCES}).get_json()
    unit = client.post(EMBED.format(name), json={"sentences": SENTENCES, "normalize": True})
    assert unit.status_code == 200
    vectors = np.array(unit.get_json()["embeddings"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    original = np.array(raw["embeddings"])
    scaled = original / np.linalg.norm(original, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, scaled, atol=1e-5)
    assert np.linalg.norm(original[0]) != pytest.approx(1.0)


def test_return_tokens_and_usage_counts_for_the_gensim_tokenizer(client: FlaskClient) -> None:
    long_sentence = " ".join(["hola"] * 25)  # bow-spanish takes 20 tokens
    answer = client.post(
        EMBED.format("bow-spanish"),
        json={"sentences": ["Hola, mundo zzqxw!", long_sentence], "return_tokens": True},
    )
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["tokens"] == [["hola", "mundo", "zzqxw"], ["hola"] * 20]
    assert body["usage"] == {"sentences": 2, "tokens": 3 + 20, "oov_tokens": 1, "truncated": 1}


def test_usage_counts_for_the_vocabulary_tokenizer(client: FlaskClient) -> None:
    answer = client.post(
        EMBED.format("lstm-multilingual"),
        json={"sentences": ["Hola, mundo zzqxw!"], "return_tokens": True},
    )
    body = answer.get_json()
    assert body["tokens"] == [["hola", ",", "mundo", "zzqxw", "!"]]
    assert body["usage"] == {"sentences": 1, "tokens": 5, "oov_tokens": 1, "truncated": 0}


def test_tokens_are_left_out_unless_asked(client: FlaskClient) -> None:
    body = client.post(EMBED.format("bow-spanish"), json={"sentences": ["hola"]}).get_json()
    assert "tokens" not in body
    asked = {"sentences": ["hola"], "return_tokens": False}
    assert "tokens" not in client.post(EMBED.format("bow-spanish"), json=asked).get_json()


def test_truncate_false_refuses_a_long_sentence_naming_its_index_and_the_limit(
    client: FlaskClient,
) -> None:
    sentences = ["hola mundo", " ".join(["hola"] * 21)]
    answer = client.post(
        EMBED.format("bow-spanish"), json={"sentences": sentences, "truncate": False}
    )
    body = assert_problem(answer, 422, "validation-error")
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["path"] == "sentences/1"
    assert "sentence 1" in error["message"]
    assert "limit of 20" in error["message"]


def test_truncate_false_accepts_a_sentence_at_the_limit(client: FlaskClient) -> None:
    sentence = " ".join(["hola"] * 20)
    answer = client.post(
        EMBED.format("bow-spanish"), json={"sentences": [sentence], "truncate": False}
    )
    assert answer.status_code == 200
    assert answer.get_json()["usage"]["truncated"] == 0


def test_embed_sends_numeric_timing_headers(client: FlaskClient) -> None:
    answer = client.post(EMBED.format("lstm-multilingual"), json={"sentences": SENTENCES})
    assert answer.status_code == 200
    for header in TIMING_HEADERS:
        assert float(answer.headers[header]) >= 0, header
    total = float(answer.headers["X-Total-Time"])
    assert total >= float(answer.headers["X-Inference-Time"])


def test_other_routes_send_the_total_time_only(client: FlaskClient) -> None:
    answer = client.get("/api/v1/models")
    assert float(answer.headers["X-Total-Time"]) >= 0
    assert "X-Inference-Time" not in answer.headers


# -- request ids ------------------------------------------------------------------------------


def test_a_valid_request_id_is_echoed(client: FlaskClient) -> None:
    given = "client-42.retry:1_A"
    answer = client.post(
        EMBED.format("bow-spanish"), json={"sentences": ["hola"]}, headers={"X-Request-ID": given}
    )
    assert answer.headers["X-Request-ID"] == given


@pytest.mark.parametrize(
    "given", [None, "", "has spaces", "x" * 129, 'quote"d', "semi;colon", "ñandú"]
)
def test_a_missing_or_unsafe_request_id_is_replaced(client: FlaskClient, given: str | None) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    answer = client.get("/api/v1/models", headers=headers)
    made = answer.headers["X-Request-ID"]
    assert made and made != given
    assert len(made) == 32 and int(made, 16) >= 0


def test_generated_request_ids_differ(client: FlaskClient) -> None:
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


def test_the_longest_safe_request_id_is_kept(client: FlaskClient) -> None:
    given = "a" * 128
    assert client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given


def test_a_problem_carries_the_request_id(client: FlaskClient) -> None:
    answer = client.post(
        EMBED.format("no-such-model"), json={"sentences": ["x"]}, headers={"X-Request-ID": "r-1"}
    )
    body = assert_problem(answer, 404, "model-not-found")
    assert body["request_id"] == "r-1"


# -- listing and details ----------------------------------------------------------------------


def test_list_shows_every_model_with_the_failed_ones_reason(client: FlaskClient) -> None:
    answer = client.get("/api/v1/models")
    assert answer.status_code == 200
    models = {m["name"]: m for m in answer.get_json()["models"]}
    assert set(models) == {*READY_MODELS, BROKEN, BAD_PADDING}
    for model in models.values():
        assert set(model) == {
            "name",
            "version",
            "format",
            "status",
            "dimensions",
            "max_tokens",
            "error",
        }
    for name in READY_MODELS:
        assert models[name]["status"] == "ready"
        assert models[name]["error"] is None
        assert models[name]["dimensions"] == DIMENSIONS[name]
    assert models["bow-spanish"]["format"] == "tf1-checkpoint-v1"
    assert models["bow-spanish"]["max_tokens"] == 20
    assert models["lstm-multilingual"]["format"] == "tf1-checkpoint-v2"
    assert models["text-encoder"]["format"] == "saved-model"
    broken = models[BROKEN]
    assert broken["status"] == "failed"
    assert "tensorflow_model" in broken["error"]
    assert broken["dimensions"] is None


@pytest.fixture(scope="module")
def unloaded_app(api_settings: Callable[..., Settings]) -> Iterator[Flask]:
    """An app whose registry serves bow-spanish only and has not loaded it yet."""
    registry = ModelRegistry(api_settings(model_names="bow-spanish"))
    yield create_app(registry.settings, registry=registry)
    registry.close()


def test_list_shows_disabled_and_loading_models(unloaded_app: Flask) -> None:
    listed = unloaded_app.test_client().get("/api/v1/models")
    models = {m["name"]: m for m in listed.get_json()["models"]}
    assert models["bow-spanish"]["status"] == "loading"
    for name in ("lstm-multilingual", "text-encoder", BROKEN):
        assert models[name]["status"] == "disabled"
        assert "MODEL_NAMES" in models[name]["error"]


def test_a_loading_model_is_503_with_retry_after(unloaded_app: Flask) -> None:
    client = unloaded_app.test_client()
    answer = client.post(EMBED.format("bow-spanish"), json={"sentences": ["hola"]})
    body = assert_problem(answer, 503, "model-not-ready")
    assert "loading" in body["detail"]
    assert answer.headers["Retry-After"] == "5"
    assert_problem(client.get("/readyz"), 503, "not-ready")


def test_a_disabled_model_is_503_with_its_reason(unloaded_app: Flask) -> None:
    answer = unloaded_app.test_client().post(EMBED.format("text-encoder"), json={"title": "x"})
    body = assert_problem(answer, 503, "model-not-ready")
    assert "disabled" in body["detail"] and "MODEL_NAMES" in body["detail"]


def test_details_of_a_ready_model(
    client: FlaskClient, api_models_dir: Path, registry: ModelRegistry
) -> None:
    answer = client.get("/api/v1/models/bow-spanish")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["name"] == "bow-spanish"
    assert body["status"] == "ready"
    assert body["input"] == "ids"
    assert body["tokenizer"]["kind"] == "gensim"
    assert body["tokenizer"]["oov_token"] == "OOV"
    assert body["tokenizer"]["vocabulary_size"] == len(vocabulary(api_models_dir, "bow-spanish"))
    assert body["tokenizer"]["max_tokens"] == 20
    assert body["load_seconds"] > 0
    assert body["inference_errors"] == registry.get("bow-spanish").inference_errors == 0
    assert body["batching"]["max_batch_size"] >= 1


def test_details_of_a_text_model_and_a_vocabulary_model(client: FlaskClient) -> None:
    text = client.get("/api/v1/models/text-encoder").get_json()
    assert text["input"] == "text"
    assert text["tokenizer"] is None
    lstm = client.get("/api/v1/models/lstm-multilingual").get_json()
    assert lstm["tokenizer"]["kind"] == "vocab"
    assert lstm["tokenizer"]["fold_accents"] is True


def test_details_of_a_failed_model_say_why(client: FlaskClient) -> None:
    body = client.get(f"/api/v1/models/{BROKEN}").get_json()
    assert body["status"] == "failed"
    assert "truncated or corrupt" in body["error"]
    assert body["load_seconds"] is None
    assert body["tokenizer"] is None


def test_details_of_an_unknown_model_is_404(client: FlaskClient) -> None:
    body = assert_problem(client.get("/api/v1/models/no-such-model"), 404, "model-not-found")
    assert "no-such-model" in body["detail"]


# -- similarity -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READY_MODELS)
def test_similarity_ranks_shared_words_above_unrelated_ones(client: FlaskClient, name: str) -> None:
    source = "hola mundo, arriba y abajo"
    answer = client.post(
        f"/api/v1/models/{name}/similarity",
        json={
            "source": source,
            "sentences": [source, "arriba y abajo mundo", "canción también está lento"],
        },
    )
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["model"] == name
    itself, shared, unrelated = body["scores"]
    assert itself == pytest.approx(1.0, abs=1e-5)
    assert shared > unrelated
    assert all(-1.0 <= score <= 1.0 for score in body["scores"])


def test_similarity_is_the_cosine_of_the_engines_vectors(
    client: FlaskClient, registry: ModelRegistry
) -> None:
    sentences = ["hola mundo", "lento lento"]
    answer = client.post(
        "/api/v1/models/bow-spanish/similarity",
        json={"source": "arriba, abajo", "sentences": sentences},
    )
    vectors = registry.get("bow-spanish").embed(["arriba, abajo", *sentences]).vectors
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(answer.get_json()["scores"], unit[1:] @ unit[0], atol=1e-5)


def test_similarity_needs_a_source(client: FlaskClient) -> None:
    answer = client.post("/api/v1/models/bow-spanish/similarity", json={"sentences": ["hola"]})
    body = assert_problem(answer, 422, "validation-error")
    assert "source" in json.dumps(body["errors"])


# -- tokenize ---------------------------------------------------------------------------------


def test_tokenize_shows_tokens_ids_and_oov_flags(client: FlaskClient, api_models_dir: Path) -> None:
    answer = client.post(
        "/api/v1/models/bow-spanish/tokenize",
        json={"sentences": ["Hola mundo zzqxw", " ".join(["lento"] * 22)]},
    )
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["model"] == "bow-spanish"
    mapping = vocabulary(api_models_dir, "bow-spanish")
    first, second = body["sentences"]
    assert first == {
        "tokens": ["hola", "mundo", "zzqxw"],
        "ids": [mapping["hola"], mapping["mundo"], mapping["OOV"]],
        "oov": [False, False, True],
        "truncated": False,
    }
    assert second["tokens"] == ["lento"] * 20
    assert second["truncated"] is True


def test_tokenize_with_the_vocabulary_tokenizer_keeps_punctuation(
    client: FlaskClient, api_models_dir: Path
) -> None:
    body = client.post(
        "/api/v1/models/lstm-multilingual/tokenize", json={"sentences": ["¡Hola, mundo!"]}
    ).get_json()
    sentence = body["sentences"][0]
    mapping = vocabulary(api_models_dir, "lstm-multilingual")
    assert sentence["tokens"] == ["¡", "hola", ",", "mundo", "!"]
    assert sentence["ids"] == [mapping[token] for token in sentence["tokens"]]
    assert sentence["oov"] == [False] * 5


def test_tokenize_a_text_model_is_not_possible(client: FlaskClient) -> None:
    answer = client.post("/api/v1/models/text-encoder/tokenize", json={"sentences": ["hola"]})
    body = assert_problem(answer, 422, "not-tokenizable")
    assert "text-encoder" in body["detail"]


def test_tokenize_a_failed_model_is_503(client: FlaskClient) -> None:
    answer = client.post(f"/api/v1/models/{BROKEN}/tokenize", json={"sentences": ["hola"]})
    assert_problem(answer, 503, "model-not-ready")


# -- probes, metrics, docs --------------------------------------------------------------------


def test_healthz(client: FlaskClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok"}


def test_readyz_lists_the_failed_model_when_all_must_be_ready(client: FlaskClient) -> None:
    answer = client.get("/readyz")
    body = assert_problem(answer, 503, "not-ready")
    assert answer.headers["Retry-After"].isdigit()
    waiting = {m["name"]: m for m in body["models"]}
    assert set(waiting) == {BROKEN}
    assert waiting[BROKEN]["status"] == "failed"
    assert "truncated or corrupt" in waiting[BROKEN]["reason"]


@pytest.fixture(scope="module")
def any_ready_registry(api_settings: Callable[..., Settings]) -> Iterator[ModelRegistry]:
    """bow-spanish ready and `broken` failed, with READY_WHEN=any."""
    registry = ModelRegistry(api_settings(model_names="bow-spanish,broken", ready_when="any"))
    registry.load_all()
    yield registry
    registry.close()


def test_readyz_is_200_with_one_ready_model_when_any_will_do(
    any_ready_registry: ModelRegistry,
) -> None:
    app = create_app(any_ready_registry.settings, registry=any_ready_registry)
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "ready"
    assert body["models"]["bow-spanish"] == "ready"
    assert body["models"][BROKEN] == "failed"
    assert body["models"]["text-encoder"] == "disabled"


def test_readyz_is_503_when_any_will_do_but_none_is_ready(
    api_settings: Callable[..., Settings],
) -> None:
    settings = api_settings(model_names="broken", ready_when="any")
    registry = ModelRegistry(settings)
    registry.load_all()
    try:
        answer = create_app(settings, registry=registry).test_client().get("/readyz")
        body = assert_problem(answer, 503, "not-ready")
        assert [m["name"] for m in body["models"]] == [BROKEN]
    finally:
        registry.close()


def test_ready_when_any_reads_the_environment_variable(
    api_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTSERVE_READY_WHEN", "any")
    assert api_settings().ready_when == "any"


def _requests_total(client: FlaskClient, route: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sentserve_requests_total" and sample.labels["route"] == route:
                total += sample.value
    return total


def test_metrics_parse_and_count_requests(client: FlaskClient) -> None:
    route = "/api/v1/models/<string:name>/embed"
    before = _requests_total(client, route)
    for _ in range(3):
        client.post(EMBED.format("bow-spanish"), json={"sentences": ["hola"]})
    client.post(EMBED.format("no-such-model"), json={"sentences": ["hola"]})
    assert _requests_total(client, route) == before + 4
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain"
    assert answer.headers["Content-Type"].count("charset") == 1
    names = {f.name for f in text_string_to_metric_families(answer.get_data(as_text=True))}
    assert {"sentserve_requests", "sentserve_sentences", "sentserve_request_seconds"} <= names


def test_metrics_count_sentences_per_model(client: FlaskClient) -> None:
    def sentences() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "sentserve_sentences_total" and sample.labels["model"] == "bow-keras"
        )

    before = sentences()
    client.post(EMBED.format("bow-keras"), json={"sentences": ["a", "b", "c"]})
    assert sentences() == before + 3


def test_docs_redirect_to_swagger_ui(client: FlaskClient) -> None:
    answer = client.get("/docs")
    assert answer.status_code in (301, 302, 307, 308)
    assert answer.headers["Location"].endswith("/api/v1/")
    followed = client.get("/docs", follow_redirects=True)
    assert followed.status_code == 200
    assert "swagger-ui" in followed.get_data(as_text=True)
