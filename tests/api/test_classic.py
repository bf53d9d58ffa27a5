"""The classic contract, exactly: `/api/v1/model/<name>/predict` as existing clients call it."""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sentserve.engine.registry import ModelRegistry
from tests.api.contract import BROKEN, assert_problem

PREDICT = "/api/v1/model/{}/predict"
TITLE = "Arriba, abajo lento lento!"
TOKENS = ["arriba", "abajo", "lento", "lento"]


def prediction(answer: TestResponse) -> dict[str, object]:
    """The classic envelope, checked key by key; returns the inner object."""
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    body = answer.get_json()
    assert set(body) == {"ModelPrediction"}
    inner: dict[str, object] = body["ModelPrediction"]
    assert set(inner) == {"tokenizedTitle", "modelName", "modelPrediction"}
    return inner


def test_the_classic_integration_test_passes(client: FlaskClient, registry: ModelRegistry) -> None:
    inner = prediction(client.post(PREDICT.format("bow-spanish"), json={"title": TITLE}))
    assert inner["tokenizedTitle"] == TOKENS
    assert inner["modelName"] == "bow-spanish"
    vector = inner["modelPrediction"]
    assert isinstance(vector, list) and len(vector) == 300
    assert all(isinstance(value, float) for value in vector)
    expected = registry.get("bow-spanish").embed([TITLE]).vectors[0]
    np.testing.assert_allclose(vector, expected, rtol=0, atol=1e-6)


def test_form_and_query_string_give_the_same_answer(client: FlaskClient) -> None:
    url = PREDICT.format("bow-spanish")
    from_json = prediction(client.post(url, json={"title": TITLE}))
    from_form = prediction(client.post(url, data={"title": TITLE}))
    from_query = prediction(client.post(f"{url}?{urlencode({'title': TITLE})}"))
    assert from_form == from_json
    assert from_query == from_json


def test_multipart_form_works_too(client: FlaskClient) -> None:
    url = PREDICT.format("bow-spanish")
    answer = client.post(url, data={"title": TITLE}, content_type="multipart/form-data")
    assert prediction(answer)["tokenizedTitle"] == TOKENS


def test_model_name_is_the_real_one(client: FlaskClient, registry: ModelRegistry) -> None:
    inner = prediction(client.post(PREDICT.format("lstm-multilingual"), json={"title": TITLE}))
    assert inner["modelName"] == "lstm-multilingual"
    assert inner["tokenizedTitle"] == ["arriba", ",", "abajo", "lento", "lento", "!"]
    expected = registry.get("lstm-multilingual").embed([TITLE]).vectors[0]
    np.testing.assert_allclose(inner["modelPrediction"], expected, rtol=0, atol=1e-6)


def test_length_keeps_that_many_tokens(client: FlaskClient, registry: ModelRegistry) -> None:
    for length in (2, "2"):  # JSON number, or text as a form sends it
        body = {"title": TITLE, "length": length}
        inner = prediction(client.post(PREDICT.format("bow-spanish"), json=body))
        assert inner["tokenizedTitle"] == ["arriba", "abajo"]
    expected = registry.get("bow-spanish").embed([TITLE], max_tokens=2).vectors[0]
    np.testing.assert_allclose(inner["modelPrediction"], expected, rtol=0, atol=1e-6)
    full = registry.get("bow-spanish").embed([TITLE]).vectors[0]
    assert not np.allclose(expected, full)


def test_length_above_the_title_keeps_every_token(client: FlaskClient) -> None:
    query = urlencode({"title": TITLE, "length": 2000})  # the classic API allowed up to 2000
    inner = prediction(client.post(f"{PREDICT.format('bow-spanish')}?{query}"))
    assert inner["tokenizedTitle"] == TOKENS


@pytest.mark.parametrize("length", [0, -3, "many"])
def test_a_bad_length_is_422(client: FlaskClient, length: object) -> None:
    answer = client.post(PREDICT.format("bow-spanish"), json={"title": TITLE, "length": length})
    body = assert_problem(answer, 422, "validation-error")
    assert [e["path"] for e in body["errors"]] == ["length"]


def test_dropout_keep_probabilities_of_one_are_accepted(client: FlaskClient) -> None:
    url = PREDICT.format("bow-spanish")
    plain = prediction(client.post(url, json={"title": TITLE}))
    for body in (
        {"title": TITLE, "title_dropout": 1.0, "dense_dropout": 1.0},
        {"title": TITLE, "title_dropout": "1.0", "dense_dropout": 1},
    ):
        assert prediction(client.post(url, json=body)) == plain
    assert prediction(client.post(url, data={"title": TITLE, "dense_dropout": "1"})) == plain


@pytest.mark.parametrize("field", ["title_dropout", "dense_dropout"])
def test_a_dropout_below_one_is_422(client: FlaskClient, field: str) -> None:
    answer = client.post(PREDICT.format("bow-spanish"), json={"title": TITLE, field: 0.5})
    body = assert_problem(answer, 422, "validation-error")
    assert [e["path"] for e in body["errors"]] == [field]
    assert "1.0" in body["errors"][0]["message"]


def test_every_bad_field_is_reported_at_once(client: FlaskClient) -> None:
    body = {"title_dropout": 0.5, "dense_dropout": 0.2}
    answer = client.post(PREDICT.format("bow-spanish"), json=body)
    problem = assert_problem(answer, 422, "validation-error")
    assert {e["path"] for e in problem["errors"]} == {"title", "title_dropout", "dense_dropout"}


@pytest.mark.parametrize(
    "send",
    [
        {"json": {}},
        {"json": {"length": 3}},
        {"data": {}},
        {},
    ],
    ids=["empty-json", "no-title-json", "empty-form", "no-body"],
)
def test_a_missing_title_is_422(client: FlaskClient, send: dict[str, object]) -> None:
    answer = client.post(PREDICT.format("bow-spanish"), **send)
    body = assert_problem(answer, 422, "validation-error")
    assert [e["path"] for e in body["errors"]] == ["title"]


@pytest.mark.parametrize("title", [["a", "list"], None, {"a": 1}, 7])
def test_a_title_that_is_not_text_is_422(client: FlaskClient, title: object) -> None:
    answer = client.post(PREDICT.format("bow-spanish"), json={"title": title})
    body = assert_problem(answer, 422, "validation-error")
    assert [e["path"] for e in body["errors"]] == ["title"]


@pytest.mark.parametrize("body", ['["x"]', '"x"', "5", "null"])
def test_a_json_body_that_is_not_an_object_is_422(client: FlaskClient, body: str) -> None:
    answer = client.post(PREDICT.format("bow-spanish"), data=body, content_type="application/json")
    problem = assert_problem(answer, 422, "validation-error")
    assert problem["errors"] == [{"path": "", "message": "must be of type object"}]


def test_malformed_json_is_400(client: FlaskClient) -> None:
    answer = client.post(
        PREDICT.format("bow-spanish"), data='{"title": "x",', content_type="application/json"
    )
    assert_problem(answer, 400, "malformed-json")


def test_an_empty_json_body_leaves_the_query_string_to_speak(client: FlaskClient) -> None:
    url = f"{PREDICT.format('bow-spanish')}?{urlencode({'title': TITLE})}"
    answer = client.post(url, data="", content_type="application/json")
    assert prediction(answer)["tokenizedTitle"] == TOKENS


def test_get_is_the_classic_health_check(client: FlaskClient) -> None:
    answer = client.get(PREDICT.format("bow-spanish"))
    assert answer.status_code == 200
    assert answer.get_json() == "Model is operational: bow-spanish"
    assert client.get(PREDICT.format("text-encoder")).get_json() == (
        "Model is operational: text-encoder"
    )


def test_get_on_an_unknown_model_is_404(client: FlaskClient) -> None:
    body = assert_problem(client.get(PREDICT.format("no-such-model")), 404)
    assert "no-such-model" in body["detail"]


def test_get_on_a_failed_model_is_404_with_its_reason(client: FlaskClient) -> None:
    body = assert_problem(client.get(PREDICT.format(BROKEN)), 404)
    assert "failed" in body["detail"] and "truncated or corrupt" in body["detail"]


def test_post_on_an_unknown_model_is_404(client: FlaskClient) -> None:
    answer = client.post(PREDICT.format("no-such-model"), json={"title": TITLE})
    assert_problem(answer, 404, "model-not-found")


def test_post_on_a_failed_model_is_503(client: FlaskClient) -> None:
    answer = client.post(PREDICT.format(BROKEN), json={"title": TITLE})
    body = assert_problem(answer, 503, "model-not-ready")
    assert "truncated or corrupt" in body["detail"]


def test_the_plural_native_path_is_not_the_classic_one(client: FlaskClient) -> None:
    assert_problem(client.post("/api/v1/models/bow-spanish/predict", json={"title": TITLE}), 404)
