"""Every error class leaves as application/problem+json, and the next request still works."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sentserve.engine.registry import ModelRegistry
from tests.api.contract import BAD_PADDING, BROKEN, assert_problem

EMBED = "/api/v1/models/bow-spanish/embed"
JSON_ROUTES = [
    "/api/v1/models/bow-spanish/embed",
    "/api/v1/models/bow-spanish/similarity",
    "/api/v1/models/bow-spanish/tokenize",
]
VALID_BODIES = {
    JSON_ROUTES[0]: {"sentences": ["hola"]},
    JSON_ROUTES[1]: {"source": "hola", "sentences": ["mundo"]},
    JSON_ROUTES[2]: {"sentences": ["hola"]},
}


@pytest.fixture(scope="module")
def limited(make_app: Callable[..., Flask]) -> FlaskClient:
    """Small limits: 2 KiB bodies, 3 sentences of at most 50 characters."""
    return make_app(max_body_bytes=2048, max_sentences=3, max_sentence_chars=50).test_client()


def assert_works(client: FlaskClient) -> None:
    answer = client.post(EMBED, json={"sentences": ["hola mundo"]})
    assert answer.status_code == 200
    assert len(answer.get_json()["embeddings"][0]) == 300


# -- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/nope", "/api/v1/nope", "/api/v1/models/bow-spanish/embed/extra", "/api/v2/models", "/"],
)
def test_an_unknown_route_is_404(client: FlaskClient, path: str) -> None:
    assert_problem(client.get(path), 404, "not-found")
    assert_problem(client.post(path, json={"sentences": ["x"]}), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/api/v1/models/bow-spanish/embed", "POST"),
        ("put", "/api/v1/models/bow-spanish/embed", "POST"),
        ("delete", "/api/v1/models", "GET"),
        ("post", "/api/v1/models/bow-spanish", "GET"),
        ("delete", "/api/v1/model/bow-spanish/predict", "POST"),
        ("put", "/healthz", "GET"),
        ("post", "/metrics", "GET"),
    ],
)
def test_a_wrong_method_is_405_with_allow(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    answer = getattr(client, method)(path)
    assert_problem(answer, 405, "method-not-allowed")
    methods = {m.strip() for m in answer.headers["Allow"].split(",")}
    assert allowed in methods
    assert method.upper() not in methods


# -- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("data", ['{"sentences": [', "{'sentences': []}", "not json", ""])
def test_malformed_json_is_400(client: FlaskClient, path: str, data: str) -> None:
    answer = client.post(path, data=data, content_type="application/json")
    body = assert_problem(answer, 400, "malformed-json")
    assert "JSON" in body["detail"]


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_415(client: FlaskClient, path: str, content_type: str) -> None:
    data = json.dumps(VALID_BODIES[path])
    answer = client.post(path, data=data, content_type=content_type)
    assert_problem(answer, 415, "unsupported-media-type")


def test_a_json_body_without_content_type_is_415(client: FlaskClient) -> None:
    assert_problem(client.post(EMBED, data=b'{"sentences": ["hola"]}'), 415)


@pytest.mark.parametrize(
    "path", [*JSON_ROUTES, "/api/v1/model/bow-spanish/predict", "/api/v1/nope"]
)
def test_a_body_over_the_limit_is_413(limited: FlaskClient, path: str) -> None:
    body = {"sentences": ["hola"] * 3, "source": "hola", "title": "hola", "pad": "x" * 3000}
    answer = limited.post(path, json=body)
    if path.endswith("/nope"):
        assert_problem(answer, 404)  # no route reads the body: nothing is too large
    else:
        assert_problem(answer, 413, "payload-too-large")


def test_a_form_over_the_limit_is_413(limited: FlaskClient) -> None:
    answer = limited.post("/api/v1/model/bow-spanish/predict", data={"title": "x" * 3000})
    assert_problem(answer, 413, "payload-too-large")


def test_a_body_under_the_limit_is_served(limited: FlaskClient) -> None:
    answer = limited.post(EMBED, json={"sentences": ["hola mundo " * 4] * 3})
    assert answer.status_code == 200


# -- validation (422) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"sentences": []}, "sentences", "fewer than 1 items"),
        ({"sentences": ["ok", 5]}, "sentences/1", "must be of type string"),
        ({"sentences": ["ok", None]}, "sentences/1", "must be of type string"),
        ({"sentences": "hola"}, "sentences", "must be of type array"),
        ({"title": 5}, "title|sentences/0", "must be of type string"),
        ({"sentences": ["ok"], "normalize": "yes"}, "normalize", "must be of type boolean"),
        ({"sentences": ["ok"], "truncate": 0}, "truncate", "must be of type boolean"),
        ({}, "|sentences", "sentences"),
        ({"normalize": True}, "|sentences", "sentences"),
    ],
)
def test_embed_validation_is_422_naming_the_field(
    client: FlaskClient, body: dict[str, object], path: str, message: str
) -> None:
    """`path` lists the accepted paths, split by |: a classic `title` is the new body's first
    sentence, and a missing field is reported at the body ("") or at the field."""
    problem = assert_problem(client.post(EMBED, json=body), 422, "validation-error")
    assert len(problem["errors"]) == 1
    assert problem["errors"][0]["path"] in path.split("|")
    assert message in problem["errors"][0]["message"]


@pytest.mark.parametrize("body", ['["hola"]', '"hola"', "42", "null", "true"])
@pytest.mark.parametrize("path", JSON_ROUTES)
def test_a_body_that_is_not_an_object_is_422(client: FlaskClient, path: str, body: str) -> None:
    answer = client.post(path, data=body, content_type="application/json")
    problem = assert_problem(answer, 422, "validation-error")
    assert problem["errors"] == [{"path": "", "message": "must be of type object"}]


def test_every_failing_field_is_listed(client: FlaskClient) -> None:
    body = {"sentences": [1, "ok", 2], "normalize": "no"}
    problem = assert_problem(client.post(EMBED, json=body), 422, "validation-error")
    assert [e["path"] for e in problem["errors"]] == ["normalize", "sentences/0", "sentences/2"]
    assert problem["detail"] == "3 fields failed"


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_too_many_sentences_is_422(limited: FlaskClient, path: str) -> None:
    body = {**VALID_BODIES[path], "sentences": ["hola"] * 4}
    problem = assert_problem(limited.post(path, json=body), 422, "validation-error")
    assert problem["errors"] == [{"path": "sentences", "message": "more than 3 items"}]


def test_three_sentences_are_allowed(limited: FlaskClient) -> None:
    assert limited.post(EMBED, json={"sentences": ["hola"] * 3}).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (JSON_ROUTES[0], {"sentences": ["ok", "x" * 51]}, "sentences/1"),
        (JSON_ROUTES[0], {"title": "x" * 51}, "title|sentences/0"),
        (JSON_ROUTES[1], {"source": "x" * 51, "sentences": ["ok"]}, "source"),
        (JSON_ROUTES[2], {"sentences": ["x" * 51]}, "sentences/0"),
    ],
)
def test_a_sentence_over_the_character_limit_is_422(
    limited: FlaskClient, path: str, body: dict[str, object], field: str
) -> None:
    problem = assert_problem(limited.post(path, json=body), 422, "validation-error")
    (error,) = problem["errors"]
    assert error["path"] in field.split("|")
    assert error["message"] == "longer than 50 characters"


def test_a_classic_title_over_the_character_limit_is_422(limited: FlaskClient) -> None:
    answer = limited.post("/api/v1/model/bow-spanish/predict", json={"title": "x" * 51})
    problem = assert_problem(answer, 422, "validation-error")
    assert problem["errors"][0]["path"] == "title"
    assert "longer than 50 characters" in problem["errors"][0]["message"]


def test_a_sentence_at_the_character_limit_is_served(limited: FlaskClient) -> None:
    assert limited.post(EMBED, json={"sentences": ["x" * 50]}).status_code == 200


def test_validation_never_echoes_the_sentence(limited: FlaskClient) -> None:
    marker = "zzsecretmarker" * 5
    answer = limited.post(EMBED, json={"sentences": [marker]})
    assert_problem(answer, 422)
    assert marker not in answer.get_data(as_text=True)


# -- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/models/nope/embed", {"sentences": ["hola"]}),
        ("post", "/api/v1/models/nope/similarity", {"source": "a", "sentences": ["b"]}),
        ("post", "/api/v1/models/nope/tokenize", {"sentences": ["hola"]}),
        ("get", "/api/v1/models/nope", None),
        ("post", "/api/v1/model/nope/predict", {"title": "hola"}),
    ],
)
def test_an_unknown_model_is_404(
    client: FlaskClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    problem = assert_problem(getattr(client, method)(path, json=body), 404, "model-not-found")
    assert "'nope'" in problem["detail"]


def test_an_unknown_model_is_404_before_the_body_is_judged(client: FlaskClient) -> None:
    answer = client.post("/api/v1/models/nope/embed", data="{", content_type="application/json")
    assert_problem(answer, 404, "model-not-found")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/api/v1/models/{BROKEN}/embed", {"sentences": ["hola"]}),
        (f"/api/v1/models/{BROKEN}/similarity", {"source": "a", "sentences": ["b"]}),
        (f"/api/v1/model/{BROKEN}/predict", {"title": "hola"}),
    ],
)
def test_a_failed_model_is_503_with_its_reason(
    client: FlaskClient, path: str, body: dict[str, object]
) -> None:
    answer = client.post(path, json=body)
    problem = assert_problem(answer, 503, "model-not-ready")
    reason = client.get(f"/api/v1/models/{BROKEN}").get_json()["error"]
    assert reason and reason in problem["detail"]
    assert f"'{BROKEN}'" in problem["detail"]
    assert "Retry-After" not in answer.headers  # failed for good, unlike loading


def test_an_inference_error_is_500_naming_the_model_and_the_next_request_works(
    client: FlaskClient, registry: ModelRegistry
) -> None:
    errors_before = registry.get(BAD_PADDING).inference_errors
    url = f"/api/v1/models/{BAD_PADDING}/embed"
    answer = client.post(url, json={"sentences": [""]})  # padded with an id outside the table
    problem = assert_problem(answer, 500, "inference-failed")
    assert f"'{BAD_PADDING}'" in problem["detail"]
    assert "1000000000" in problem["detail"]  # TensorFlow's own first line, no frames
    assert "File " not in problem["detail"]
    # The same model and the others still answer.
    assert client.post(url, json={"sentences": ["hola mundo"]}).status_code == 200
    assert_works(client)
    details = client.get(f"/api/v1/models/{BAD_PADDING}").get_json()
    assert details["inference_errors"] == errors_before + 1
    assert details["status"] == "ready"


def test_an_inference_error_on_the_classic_route_is_500(client: FlaskClient) -> None:
    answer = client.post(f"/api/v1/model/{BAD_PADDING}/predict", json={"title": ""})
    assert_problem(answer, 500, "inference-failed")
    assert_works(client)


def test_each_error_leaves_the_app_serving(client: FlaskClient, limited: FlaskClient) -> None:
    failures = [
        client.get("/nope"),
        client.get(EMBED),
        client.post(EMBED, data="{", content_type="application/json"),
        client.post(EMBED, data="x", content_type="text/plain"),
        client.post(EMBED, json={"sentences": []}),
        client.post("/api/v1/models/nope/embed", json={"sentences": ["x"]}),
        client.post(f"/api/v1/models/{BROKEN}/embed", json={"sentences": ["x"]}),
        client.post(f"/api/v1/models/{BAD_PADDING}/embed", json={"sentences": [""]}),
        limited.post(EMBED, json={"sentences": ["x" * 3000]}),
    ]
    assert [f.status_code for f in failures] == [404, 405, 400, 415, 422, 404, 503, 500, 413]
    assert_works(client)
    assert_works(limited)


def test_readyz_is_503_when_no_model_is_enabled(tmp_path) -> None:
    from sentserve.api.app import create_app
    from sentserve.settings import load_settings

    empty = tmp_path / "models"
    empty.mkdir()
    app = create_app(load_settings(models_dir=empty, profile="testing", console_log=False))
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json["type"] == "urn:sentserve:problem:not-ready"
    assert "no model is enabled" in answer.json["detail"]
