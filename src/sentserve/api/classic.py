"""The classic server's routes, unchanged for existing clients: `/api/v1/model/<name>/predict`.

The classic API took `title` (and `length`, `title_dropout`, `dense_dropout`) from a JSON
body, a form or the query string, so this route reads all three through one RequestParser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, request
from flask_restx import Namespace, Resource, reqparse

from sentserve.api.encoding import json_response
from sentserve.api.inference import embed_sentences
from sentserve.api.problems import Problem, validation_problem
from sentserve.api.schemas import NAME_EXAMPLE, Schemas, problem_responses
from sentserve.api.state import server_state
from sentserve.engine.errors import EngineError
from sentserve.settings import Settings

LOCATIONS = ("json", "form", "args")


# reqparse documents an argument's type from its `__schema__`, so each type carries its own.


def _bounded_text(limit: int) -> Callable[[Any], str]:
    def text(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if len(value) > limit:
            raise ValueError(f"longer than {limit} characters")
        return value

    text.__schema__ = {"type": "string", "maxLength": limit}  # type: ignore[attr-defined]
    return text


def _positive_int(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("must be an integer >= 1") from None
    if number < 1:
        raise ValueError("must be an integer >= 1")
    return number


_positive_int.__schema__ = {"type": "integer", "minimum": 1}  # type: ignore[attr-defined]


def _keep_probability(value: Any) -> float:
    """Dropout keep probabilities: sentserve serves in inference mode, so only 1.0 is honest."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if number != 1.0:
        raise ValueError("sentserve serves in inference mode (dropout off): only 1.0 is accepted")
    return number


_keep_probability.__schema__ = {"type": "number", "enum": [1.0]}  # type: ignore[attr-defined]


def predict_parser(max_chars: int) -> reqparse.RequestParser:
    parser = reqparse.RequestParser(bundle_errors=True)
    parser.add_argument(
        "title",
        type=_bounded_text(max_chars),
        required=True,
        nullable=False,
        location=LOCATIONS,
        help="title, the sentence to embed:",
    )
    parser.add_argument(
        "length",
        type=_positive_int,
        location=LOCATIONS,
        help="length, the tokens to keep (at most the model's max_tokens):",
    )
    for name in ("title_dropout", "dense_dropout"):
        parser.add_argument(
            name, type=_keep_probability, location=LOCATIONS, help=f"{name}, a keep probability:"
        )
    return parser


def check_json_body(parser: reqparse.RequestParser) -> None:
    """reqparse reads JSON leniently: malformed JSON as no body, a list value flattened into
    its items (it would embed the first), any body but an object as a crash. Refuse those as
    every other route does; the fields themselves stay the parser's to check. An empty body
    stays allowed: classic clients send the title in the query string with any content type."""
    if not request.is_json or not request.get_data(cache=True):
        return
    body = request.get_json()  # malformed: 400, as on every route
    if not isinstance(body, dict):
        raise validation_problem([{"path": "", "message": "must be of type object"}])
    lists = [arg.name for arg in parser.args if isinstance(body.get(arg.name), list)]
    if lists:
        raise validation_problem([{"path": name, "message": "must be one value"} for name in lists])


def add_classic_routes(api: Any, s: Schemas, settings: Settings) -> None:
    ns = Namespace("model", description="The classic API, kept for existing clients")
    parser = predict_parser(settings.max_sentence_chars)

    @ns.route("/<string:name>/predict")
    @ns.param("name", "Model name", **NAME_EXAMPLE)
    class Predict(Resource):
        @ns.response(200, "The model is ready", example="Model is operational: bow-spanish")
        @problem_responses(ns, s.problem, 404)
        def get(self, name: str) -> Response:
            """Health check of one model, as the classic server answered it."""
            try:
                server_state().registry.ready(name)
            except EngineError as exc:
                raise Problem(404, "model-not-operational", str(exc)) from None
            return json_response(f"Model is operational: {name}")

        @ns.expect(parser)
        @ns.response(200, "The sentence's embedding, in the classic envelope", s.classic_answer)
        @problem_responses(ns, s.problem, 404, 413, 422, 429, 500, 503)
        def post(self, name: str) -> Response:
            """Embed one `title`; the answer keeps the classic field names."""
            server_state().registry.get(name)
            check_json_body(parser)
            args = parser.parse_args()
            _, result = embed_sentences(name, [args["title"]], max_tokens=args["length"])
            prediction = {
                "tokenizedTitle": result.encoded[0].tokens,
                "modelName": name,
                "modelPrediction": result.vectors[0],
            }
            return json_response({"ModelPrediction": prediction})

    api.add_namespace(ns, path="/model")
