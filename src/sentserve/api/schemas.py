"""Every request and answer body, declared once as a flask-restx model.

The same declarations produce the Swagger document and validate requests
(`Schemas.validated_body` runs their JSON schema): no second hand-written check of the same
fields. Answers are documented by these models but encoded with orjson, never marshalled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fastjsonschema
from flask import request
from flask_restx import Api, Model, Namespace, fields
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from sentserve.api.problems import validation_problem
from sentserve.settings import Settings

STATUSES = ["loading", "ready", "failed", "disabled"]
# Swagger 2.0 allows no `example` on a path parameter; Swagger UI reads this extension instead.
NAME_EXAMPLE = {"x-example": "bow-spanish"}
F = TypeVar("F", bound=Callable[..., Any])


class _Nullable(fields.Raw):
    """Swagger 2.0 has no null type; `x-nullable`, its usual extension, says an answer may
    hold null here (a failed model has no format, dimensions or tokenizer)."""

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "x-nullable": True}


class NullableString(_Nullable, fields.String):
    pass


class NullableInteger(_Nullable, fields.Integer):
    pass


class NullableFloat(_Nullable, fields.Float):
    pass


class NullableRaw(_Nullable, fields.Raw):
    pass


@dataclass
class Schemas:
    """The app's body declarations, and validators built from the request ones."""

    embed_request: Model
    embed_answer: Model
    similarity_request: Model
    similarity_answer: Model
    tokenize_request: Model
    tokenize_answer: Model
    model_summary: Model
    model_list: Model
    model_details: Model
    problem: Model
    classic_answer: Model
    # Per request body: a compiled check for every request (fastjsonschema, ~5 us for 32
    # sentences) and, only when it fails, jsonschema to list every failing field (~300 us).
    checks: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    validators: dict[str, Draft4Validator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for model in (self.embed_request, self.similarity_request, self.tokenize_request):
            definitions = {name: m.__schema__ for name, m in _nested_models(model).items()}
            schema = {**model.__schema__, "definitions": definitions}
            self.checks[model.name] = fastjsonschema.compile(schema)
            self.validators[model.name] = Draft4Validator(schema)

    def validated_body(
        self, model: Model, classic: Callable[[Any], Any] | None = None
    ) -> dict[str, Any]:
        """The JSON body checked against its declaration: 415 when not JSON, 400 when
        malformed, 422 listing every field that fails. `classic` first rewrites an older body
        shape into the declared one, so both meet the same single validation."""
        body = request.get_json()
        if classic is not None:
            body = classic(body)
        try:
            self.checks[model.name](body)
        except fastjsonschema.JsonSchemaException as failure:
            errors = sorted(
                self.validators[model.name].iter_errors(body), key=lambda e: list(e.absolute_path)
            )
            raise validation_problem(
                [
                    {"path": "/".join(str(p) for p in e.absolute_path), "message": _message(e)}
                    for e in errors
                ]
                or [{"path": "", "message": str(failure)[:200]}]
            ) from None
        defaults = {name: f.default for name, f in model.items() if f.default is not None}
        return {**defaults, **body}


def declare_schemas(api: Api, settings: Settings) -> Schemas:
    """Register every body on `api`; limits (maxItems, maxLength) come from settings."""

    def sentence(description: str, example: str, required: bool = False) -> fields.String:
        return fields.String(
            description=description,
            max_length=settings.max_sentence_chars,
            example=example,
            required=required,
        )

    def sentence_list(example: list[str], required: bool = True) -> fields.List:
        return fields.List(
            sentence("One sentence", example[0]),
            required=required,
            min_items=1,
            max_items=settings.max_sentences,
            description=f"1 to {settings.max_sentences} sentences",
            example=example,
        )

    examples = ["hola mundo", "arriba, abajo, lento lento"]
    usage = api.model(
        "Usage",
        {
            "sentences": fields.Integer(example=2),
            "tokens": fields.Integer(description="Token ids fed to the model", example=6),
            "oov_tokens": fields.Integer(description="Words unknown to the vocabulary", example=0),
            "truncated": fields.Integer(description="Sentences cut to max_tokens", example=0),
        },
    )
    model_summary = api.model(
        "ModelSummary",
        {
            "name": fields.String(example="bow-spanish"),
            "version": fields.Integer(example=1),
            "format": NullableString(example="tf1-checkpoint-v1"),
            "status": fields.String(enum=STATUSES, example="ready"),
            "dimensions": NullableInteger(example=300),
            "max_tokens": NullableInteger(example=20),
            "error": NullableString(description="Why the model is not ready", example=None),
        },
    )
    field_error = api.model(
        "FieldError",
        {
            "path": fields.String(example="sentences/0"),
            "message": fields.String(example="longer than 10000 characters"),
        },
    )
    return Schemas(
        embed_request=api.model(
            "EmbedRequest",
            {
                "sentences": sentence_list(examples),
                "normalize": fields.Boolean(default=False, description="Unit-length vectors"),
                "truncate": fields.Boolean(
                    default=True, description="Cut long sentences to max_tokens; false: 422"
                ),
                "return_tokens": fields.Boolean(default=False, description="Add the tokens"),
            },
        ),
        embed_answer=api.model(
            "EmbedAnswer",
            {
                "model": fields.String(example="bow-spanish"),
                "version": fields.Integer(example=1),
                "dimensions": fields.Integer(example=3),
                "embeddings": fields.List(
                    fields.List(fields.Float), example=[[0.12, -0.4, 0.9], [0.3, 0.1, -0.2]]
                ),
                "usage": fields.Nested(usage),
                "tokens": fields.List(
                    fields.List(fields.String),
                    description="Only with return_tokens",
                    example=[["hola", "mundo"], ["arriba", ",", "abajo"]],
                ),
            },
        ),
        similarity_request=api.model(
            "SimilarityRequest",
            {
                "source": sentence("The sentence to compare with", "hola mundo", required=True),
                "sentences": sentence_list(["hola a todo el mundo", "lento lento"]),
            },
        ),
        similarity_answer=api.model(
            "SimilarityAnswer",
            {
                "model": fields.String(example="bow-spanish"),
                "scores": fields.List(fields.Float, example=[0.91, 0.05]),
            },
        ),
        tokenize_request=api.model("TokenizeRequest", {"sentences": sentence_list(examples)}),
        tokenize_answer=api.model(
            "TokenizeAnswer",
            {
                "model": fields.String(example="bow-spanish"),
                "sentences": fields.List(
                    fields.Nested(
                        api.model(
                            "TokenizedSentence",
                            {
                                "tokens": fields.List(fields.String, example=["hola", "mundo"]),
                                "ids": fields.List(
                                    NullableInteger,
                                    description="null where an unknown word was dropped",
                                    example=[311, 52],
                                ),
                                "oov": fields.List(fields.Boolean, example=[False, False]),
                                "truncated": fields.Boolean(example=False),
                            },
                        )
                    )
                ),
            },
        ),
        model_summary=model_summary,
        model_list=api.model("ModelList", {"models": fields.List(fields.Nested(model_summary))}),
        model_details=api.inherit(
            "ModelDetails",
            model_summary,
            {
                "input": NullableString(enum=["ids", "text"], example="ids"),
                "tokenizer": NullableRaw(
                    example={"kind": "gensim", "vocabulary_size": 5016, "oov_token": "OOV"}
                ),
                "load_seconds": NullableFloat(example=1.2),
                "inference_errors": fields.Integer(example=0),
                "warnings": fields.List(fields.String),
                "batching": NullableRaw(
                    example={"max_batch_size": 64, "max_wait_ms": 2.0, "queued": 0}
                ),
            },
        ),
        problem=api.model(
            "Problem",
            {
                "type": fields.String(example="urn:sentserve:problem:validation-error"),
                "title": fields.String(example="Unprocessable Content"),
                "status": fields.Integer(example=422),
                "detail": fields.String(example="1 field failed"),
                "errors": fields.List(fields.Nested(field_error)),
                "request_id": fields.String(example="3f2a9c0e5b7d4e1f"),
            },
        ),
        classic_answer=api.model(
            "ClassicAnswer",
            {
                "ModelPrediction": fields.Nested(
                    api.model(
                        "ClassicPrediction",
                        {
                            "tokenizedTitle": fields.List(
                                fields.String, example=["arriba", "abajo", "lento", "lento"]
                            ),
                            "modelName": fields.String(example="bow-spanish"),
                            "modelPrediction": fields.List(fields.Float, example=[0.1, -0.3]),
                        },
                    )
                )
            },
        ),
    )


PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON",
    401: "Missing or wrong API key",
    404: "No such model",
    413: "Body larger than the limit",
    415: "Body is not JSON",
    422: "A field failed validation",
    429: "Too many requests: the model's queue or the rate limit is full",
    500: "The model failed on this batch",
    503: "The model is loading or failed",
}


def problem_responses(ns: Namespace, problem: Model, *codes: int) -> Callable[[F], F]:
    """Document each error answer of a route with the Problem body; 401 on every route, since
    API keys may be turned on for any of them."""

    def decorate(function: F) -> F:
        for code in sorted({401, *codes}):
            function = ns.response(code, PROBLEM_DESCRIPTIONS[code], problem)(function)
        return function

    return decorate


def _nested_models(model: Model) -> dict[str, Model]:
    """The model and every model it nests, by name, for resolving `$ref`s."""
    found: dict[str, Model] = {model.name: model}
    for declared in model.values():
        inner = getattr(declared, "container", declared)
        nested = getattr(inner, "nested", None)
        if isinstance(nested, Model):
            found.update(_nested_models(nested))
    return found


def _message(error: ValidationError) -> str:
    """Short messages: jsonschema's defaults repeat the whole offending value."""
    value = error.validator_value
    match error.validator:
        case "maxLength":
            return f"longer than {value} characters"
        case "maxItems":
            return f"more than {value} items"
        case "minItems":
            return f"fewer than {value} items"
        case "type":
            return f"must be of type {value}"
        case "enum":
            return f"must be one of {value}"
    return error.message[:200]
