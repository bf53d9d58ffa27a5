"""Errors as `application/problem+json` (RFC 9457), for every route and every failure.

A problem's `type` is a stable URN (`urn:sentserve:problem:<slug>`): clients branch on it,
humans read `title` and `detail`. Validation problems add `errors` (field path + message).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson
from flask import Response, g, has_request_context, request
from limits.errors import StorageError
from werkzeug.exceptions import HTTPException

from sentserve.engine.errors import (
    EngineError,
    InferenceFailed,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ModelTimeout,
    QueueFull,
    SentenceTooLong,
)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:sentserve:problem:"

# Werkzeug's status codes mapped to our slugs; 400 is what Flask raises on malformed JSON.
_HTTP_SLUGS = {
    400: "malformed-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
}


@dataclass
class Problem(Exception):
    status: int
    slug: str
    detail: str
    errors: list[dict[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase

    def summary(self) -> str:
        """One line for dialects whose errors are a single message: the field errors, or
        the detail when there are none."""
        if not self.errors:
            return self.detail
        return "; ".join(
            f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in self.errors
        )

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        if has_request_context() and "request_id" in g:
            body["request_id"] = g.request_id
        return body


def validation_problem(errors: list[dict[str, str]]) -> Problem:
    count = len(errors)
    return Problem(422, "validation-error", f"{count} field{'s' * (count != 1)} failed", errors)


def engine_problem(error: EngineError) -> Problem:
    """The status and type each engine error means for a client."""
    match error:
        case ModelNotFound():
            return Problem(404, "model-not-found", str(error))
        case ModelNotReady():
            retry = {"Retry-After": "5"} if error.status == "loading" else {}
            return Problem(503, "model-not-ready", str(error), headers=retry)
        case SentenceTooLong():
            path = f"sentences/{error.index}"
            return validation_problem([{"path": path, "message": str(error)}])
        case QueueFull():
            return Problem(
                429,
                "model-overloaded",
                str(error),
                headers={"Retry-After": str(error.retry_after_s)},
            )
        case InferenceFailed():
            return Problem(500, "inference-failed", str(error))
        case ModelTimeout():
            return Problem(503, "model-timeout", str(error), headers={"Retry-After": "1"})
        case InvalidInput():
            return validation_problem([{"path": "", "message": str(error)}])
    return Problem(500, "engine-error", str(error))


def http_problem(error: HTTPException) -> Problem:
    status = error.code or 500
    slug = _HTTP_SLUGS.get(status, "http-error")
    detail = error.description or HTTPStatus(status).phrase
    if status == 400 and "JSON" in detail:
        slug = "malformed-json"
    headers = {}
    if status == 405 and error.response is None:
        allowed = getattr(error, "valid_methods", None)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    data = getattr(error, "data", None)  # flask-restx's abort() puts field errors here
    if isinstance(data, dict) and isinstance(data.get("errors"), dict):
        errors = [{"path": str(k), "message": str(v)} for k, v in data["errors"].items()]
        return validation_problem(errors)
    return Problem(status, slug, str(detail), headers=headers)


def to_problem(error: BaseException) -> Problem:
    if isinstance(error, Problem):
        return error
    if isinstance(error, EngineError):
        return engine_problem(error)
    if isinstance(error, HTTPException):
        return http_problem(error)
    if isinstance(error, StorageError):  # rate limits failing closed while Redis is down
        log.warning("rate limit storage unreachable: %s", error)
        detail = "rate limits cannot be checked right now; retry shortly"
        return Problem(503, "rate-limit-unavailable", detail, headers={"Retry-After": "5"})
    log.exception("unhandled error", exc_info=error)
    return Problem(500, "internal-error", "the server failed to answer this request; it is logged")


Renderer = Callable[[Problem], Response]
# Blueprint name -> how that dialect shapes errors (OpenAI, TF Serving). Default: problem+json.
_DIALECTS: dict[str, Renderer] = {}


def register_dialect(blueprint: str, renderer: Renderer) -> None:
    """Errors raised on `blueprint`'s routes (401 and 429 included) use `renderer`."""
    _DIALECTS[blueprint] = renderer


def problem_response(error: BaseException) -> Response:
    problem = to_problem(error)
    dialect = _DIALECTS.get(request.blueprint or "") if has_request_context() else None
    if dialect is not None:
        response = dialect(problem)
    else:
        body = orjson.dumps(problem.body())
        response = Response(body, status=problem.status, mimetype=PROBLEM_JSON)
    response.headers.update(problem.headers)
    return response
