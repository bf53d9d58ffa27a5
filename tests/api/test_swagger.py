"""The API document: valid Swagger 2.0, complete, true to the answers; Swagger UI works offline."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft4Validator
from openapi_spec_validator import OpenAPIV2SpecValidator, validate
from werkzeug.test import TestResponse

from sentserve.api.app import create_app
from sentserve.engine.registry import ModelRegistry
from sentserve.settings import Settings
from tests.api.contract import BAD_PADDING, BROKEN

Spec = dict[str, Any]
ROOT = "/api/v1"
REQUEST_MODELS = ("EmbedRequest", "SimilarityRequest", "TokenizeRequest")
# Each operation and the problem answers it must document (at least) besides 200.
OPERATIONS: dict[tuple[str, str], set[int]] = {
    ("/models", "get"): set(),
    ("/models/{name}", "get"): {404},
    ("/models/{name}/embed", "post"): {400, 404, 413, 415, 422, 429, 500, 503},
    ("/models/{name}/similarity", "post"): {400, 404, 413, 415, 422, 429, 500, 503},
    ("/models/{name}/tokenize", "post"): {400, 404, 413, 415, 422, 503},
    ("/model/{name}/predict", "post"): {404, 413, 422, 429, 500, 503},
    ("/model/{name}/predict", "get"): {404},
}


@pytest.fixture(scope="module")
def spec(client: FlaskClient) -> Spec:
    answer = client.get(f"{ROOT}/swagger.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    document: Spec = answer.get_json()
    return document


# -- the document -----------------------------------------------------------------------------


def test_the_document_is_valid_swagger_2(spec: Spec) -> None:
    assert spec["swagger"] == "2.0"
    assert spec["basePath"] == ROOT
    validate(spec, cls=OpenAPIV2SpecValidator)


def test_the_document_has_every_route(spec: Spec) -> None:
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert set(OPERATIONS) <= documented


@pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
def test_every_route_documents_its_answer_and_its_problems(
    spec: Spec, path: str, method: str
) -> None:
    responses = spec["paths"][path][method]["responses"]
    assert "200" in responses and responses["200"]["description"]
    problems = {int(code) for code in responses if code != "200"}
    assert OPERATIONS[(path, method)] <= problems  # (401 too, where API keys may apply)
    for code in problems:
        assert responses[str(code)]["schema"] == {"$ref": "#/definitions/Problem"}
        assert responses[str(code)]["description"]
    if (path, method) != ("/model/{name}/predict", "get"):  # answers a bare string
        reference = responses["200"]["schema"]["$ref"]
        assert reference.removeprefix("#/definitions/") in spec["definitions"]


def test_every_summary_reads_whole(spec: Spec) -> None:
    """flask-restx cuts a docstring's summary at its first period: a period inside code (or
    an ellipsis) would leave it with an open backtick or bracket."""
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            summary = operation.get("summary", "")
            assert summary.count("`") % 2 == 0, summary
            assert summary.count("[") == summary.count("]"), summary
            assert summary.count("{") == summary.count("}"), summary


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/models/{name}/embed", "EmbedRequest"),
        ("/models/{name}/similarity", "SimilarityRequest"),
        ("/models/{name}/tokenize", "TokenizeRequest"),
    ],
)
def test_every_json_route_documents_its_body(spec: Spec, path: str, model: str) -> None:
    bodies = [p for p in spec["paths"][path]["post"]["parameters"] if p["in"] == "body"]
    assert [b["schema"] for b in bodies] == [{"$ref": f"#/definitions/{model}"}]


def test_the_classic_route_documents_its_fields(spec: Spec) -> None:
    parameters = spec["paths"]["/model/{name}/predict"]["post"]["parameters"]
    by_name = {p["name"]: p for p in parameters}
    assert {"title", "length", "title_dropout", "dense_dropout"} <= set(by_name)
    assert by_name["title"]["required"] is True


def test_the_bodies_carry_examples(spec: Spec) -> None:
    definitions = spec["definitions"]
    for name in (*REQUEST_MODELS, "EmbedAnswer", "SimilarityAnswer", "Problem", "ModelSummary"):
        examples = [p for p in definitions[name]["properties"].values() if "example" in p]
        assert examples, name
    assert definitions["EmbedRequest"]["properties"]["sentences"]["example"]


def limits(spec: Spec) -> set[tuple[str, str, int, int]]:
    """(model, field, maxItems, maxLength) of every sentence list in the request bodies."""
    found = set()
    for model in REQUEST_MODELS:
        sentences = spec["definitions"][model]["properties"]["sentences"]
        found.add((model, "sentences", sentences["maxItems"], sentences["items"]["maxLength"]))
        assert sentences["minItems"] == 1
    return found


def test_the_limits_appear_in_the_document(spec: Spec) -> None:
    assert limits(spec) == {(model, "sentences", 256, 10_000) for model in REQUEST_MODELS}
    assert spec["definitions"]["SimilarityRequest"]["properties"]["source"]["maxLength"] == 10_000


def test_the_limits_follow_the_settings(make_app: Callable[..., Flask]) -> None:
    app = make_app(max_sentences=7, max_sentence_chars=99)
    other = app.test_client().get(f"{ROOT}/swagger.json").get_json()
    assert limits(other) == {(model, "sentences", 7, 99) for model in REQUEST_MODELS}
    assert other["definitions"]["SimilarityRequest"]["properties"]["source"]["maxLength"] == 99
    validate(other, cls=OpenAPIV2SpecValidator)


# -- answers against the document -------------------------------------------------------------


def json_schema(swagger: Any) -> Any:
    """Swagger 2.0 has no null type; `x-nullable: true` marks where null is documented."""
    if isinstance(swagger, list):
        return [json_schema(item) for item in swagger]
    if not isinstance(swagger, dict):
        return swagger
    schema = {key: json_schema(value) for key, value in swagger.items()}
    if schema.pop("x-nullable", False):
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def resolve(schema: Spec, definitions: Spec) -> Spec:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].removeprefix("#/definitions/")]
    return schema


def undocumented(value: Any, schema: Spec, definitions: Spec, where: str = "") -> list[str]:
    """Paths of keys the answer holds but the document does not declare."""
    schema = resolve(schema, definitions)
    parts = [resolve(part, definitions) for part in schema.get("allOf", [])] or [schema]
    if isinstance(value, dict) and any("properties" in part for part in parts):
        declared = {k: v for part in parts for k, v in part.get("properties", {}).items()}
        found = [f"{where}/{key}" for key in value if key not in declared]
        for key, item in value.items():
            if key in declared:
                found += undocumented(item, declared[key], definitions, f"{where}/{key}")
        return found
    if isinstance(value, list) and "items" in schema:
        return [p for item in value for p in undocumented(item, schema["items"], definitions)]
    return []


def check_answer(spec: Spec, path: str, method: str, answer: TestResponse) -> None:
    """The answer's status is documented for the operation and its body fits the schema."""
    responses = spec["paths"][path][method]["responses"]
    assert str(answer.status_code) in responses, (path, answer.status_code)
    schema = responses[str(answer.status_code)]["schema"]
    body = answer.get_json(force=True)
    definitions = json_schema(spec["definitions"])
    validator = Draft4Validator({**json_schema(schema), "definitions": definitions})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, errors
    assert not undocumented(body, schema, spec["definitions"])


def test_the_null_check_has_teeth(spec: Spec) -> None:
    """A string field documented without x-nullable refuses null."""
    definitions = json_schema(spec["definitions"])
    schema = {"$ref": "#/definitions/ModelSummary", "definitions": definitions}
    assert not Draft4Validator(schema).is_valid({"name": None})
    assert Draft4Validator(schema).is_valid({"error": None})
    problem = {"$ref": "#/definitions/Problem"}
    assert undocumented({"status": 1, "extra": 2}, problem, spec["definitions"]) == ["/extra"]
    details = {"$ref": "#/definitions/ModelDetails"}
    assert undocumented({"name": "a", "input": "ids"}, details, spec["definitions"]) == []
    listing = {"$ref": "#/definitions/ModelList"}
    assert undocumented({"models": [{"nope": 1}]}, listing, spec["definitions"]) == ["/nope"]


@pytest.mark.parametrize(
    ("method", "url", "body", "path"),
    [
        ("get", "/models", None, "/models"),
        ("get", "/models/bow-spanish", None, "/models/{name}"),
        ("get", "/models/text-encoder", None, "/models/{name}"),
        ("get", f"/models/{BROKEN}", None, "/models/{name}"),
        ("get", "/models/nope", None, "/models/{name}"),
        (
            "post",
            "/models/bow-spanish/embed",
            {"sentences": ["hola mundo", "zzqxw"], "return_tokens": True, "normalize": True},
            "/models/{name}/embed",
        ),
        ("post", "/models/text-encoder/embed", {"title": "hola"}, "/models/{name}/embed"),
        ("post", "/models/bow-spanish/embed", {"sentences": [3]}, "/models/{name}/embed"),
        ("post", f"/models/{BROKEN}/embed", {"sentences": ["x"]}, "/models/{name}/embed"),
        ("post", f"/models/{BAD_PADDING}/embed", {"sentences": [""]}, "/models/{name}/embed"),
        (
            "post",
            "/models/lstm-multilingual/similarity",
            {"source": "hola", "sentences": ["hola mundo", "adiós"]},
            "/models/{name}/similarity",
        ),
        (
            "post",
            "/models/bow-keras/tokenize",
            {"sentences": ["hola, zzqxw"]},
            "/models/{name}/tokenize",
        ),
        ("post", "/models/text-encoder/tokenize", {"sentences": ["x"]}, "/models/{name}/tokenize"),
        (
            "post",
            "/model/bow-spanish/predict",
            {"title": "Arriba, abajo lento lento!"},
            "/model/{name}/predict",
        ),
        ("post", "/model/bow-spanish/predict", {"length": 0}, "/model/{name}/predict"),
        ("get", "/model/nope/predict", None, "/model/{name}/predict"),
    ],
)
def test_answers_fit_the_documented_schemas(
    client: FlaskClient,
    spec: Spec,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    path: str,
) -> None:
    answer = getattr(client, method)(ROOT + url, json=body)
    check_answer(spec, path, method, answer)


@pytest.fixture(scope="module")
def no_oov_client(api_settings: Callable[..., Settings]) -> Iterator[FlaskClient]:
    """bow-spanish without an OOV token: unknown words are dropped, their ids are null."""
    registry = ModelRegistry(api_settings(model_names="bow-spanish", oov_token=None))
    registry.load_all()
    yield create_app(registry.settings, registry=registry).test_client()
    registry.close()


def test_dropped_words_have_null_ids_as_documented(no_oov_client: FlaskClient, spec: Spec) -> None:
    answer = no_oov_client.post(
        f"{ROOT}/models/bow-spanish/tokenize", json={"sentences": ["hola zzqxw"]}
    )
    sentence = answer.get_json()["sentences"][0]
    assert sentence["tokens"] == ["hola", "zzqxw"]
    assert sentence["ids"][1] is None and sentence["oov"] == [False, True]
    check_answer(spec, "/models/{name}/tokenize", "post", answer)


# -- Swagger UI -------------------------------------------------------------------------------


class Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


EXTERNAL = re.compile(r"(?:https?:)?//[^\s\"'<>()]+")
NAMESPACES = ("http://www.w3.org/",)


def external_urls(text: str) -> list[str]:
    return [url for url in EXTERNAL.findall(text) if not url.startswith(NAMESPACES)]


@pytest.fixture(scope="module")
def page(client: FlaskClient) -> str:
    answer = client.get(f"{ROOT}/")
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    return answer.get_data(as_text=True)


def test_swagger_ui_is_served_with_the_document(page: str) -> None:
    assert 'id="swagger-ui"' in page
    assert f'"{ROOT}/swagger.json"' in page


def test_every_asset_of_the_page_loads_from_the_app(client: FlaskClient, page: str) -> None:
    parser = Assets()
    parser.feed(page)
    scripts = [url for url in parser.urls if url.endswith(".js")]
    styles = [url for url in parser.urls if url.endswith(".css")]
    assert scripts and styles
    fonts = []
    for url in parser.urls:
        assert url.startswith("/"), url  # served by this app, not a CDN
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.get_data(), url
        if url.endswith(".css"):
            css = answer.get_data(as_text=True)
            assert not external_urls(re.sub(r"url\(\"?data:[^)]*\)", "", css)), url
            for ref in re.findall(r"url\(['\"]?([^'\")]+)['\"]?\)", css):
                if not ref.startswith("data:"):
                    fonts.append(urljoin(url, ref))
    assert fonts  # the Droid Sans files of droid-sans.css
    for url in fonts:
        assert client.get(url).status_code == 200, url


def test_the_page_references_no_external_url(page: str) -> None:
    assert not external_urls(page)
    assert "validatorUrl" not in page or 'validatorUrl: "" || null' in page


def test_the_external_url_check_has_teeth() -> None:
    assert external_urls('<script src="https://cdn.example.com/x.js">') == [
        "https://cdn.example.com/x.js"
    ]
    assert external_urls('<link href="//fonts.example.com/a.css">')
    assert not external_urls('<svg xmlns="http://www.w3.org/2000/svg">')


def test_the_document_is_generated_per_app(
    make_app: Callable[..., Flask], client: FlaskClient
) -> None:
    """Two apps, two documents: neither leaks its limits into the other."""
    narrow = make_app(max_sentences=2).test_client().get(f"{ROOT}/swagger.json").get_json()
    again = client.get(f"{ROOT}/swagger.json").get_json()
    assert narrow["definitions"]["EmbedRequest"]["properties"]["sentences"]["maxItems"] == 2
    assert again["definitions"]["EmbedRequest"]["properties"]["sentences"]["maxItems"] == 256
    assert narrow["paths"].keys() == again["paths"].keys()
