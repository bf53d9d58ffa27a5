"""OpenAI-compatible embeddings, so existing OpenAI client code works unchanged:
`POST /v1/embeddings` and `GET /v1/models`.

Vectors are the model's own, unchanged (equal to `/api/v1/models/<name>/embed`'s), so the same
sentence gives the same vector through every dialect. OpenAI's vectors happen to be unit
length and ours are not, unless `dimensions` is given: then, as OpenAI shortens embeddings,
the first N values are kept and renormalised to unit length. Text is embedded through
`embed_sentences`, the path every dialect shares (tokenizer, batcher, limits, metrics).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from flask import Blueprint, Response, request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from sentserve.api.encoding import json_response, unit_length
from sentserve.api.inference import embed_sentences
from sentserve.api.problems import Problem, register_dialect
from sentserve.api.state import server_state
from sentserve.engine.model import ModelStatus, ServedModel, version_folder

BLUEPRINT = "openai"
openai_compat = Blueprint(BLUEPRINT, __name__)
_STARTED = int(time.time())

# OpenAI's (type, code) for each status; 422 (engine input errors) is OpenAI's 400.
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "model_not_found"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "model_not_ready"),
}


@dataclass(frozen=True)
class Limits:
    """The settings' request limits, passed to validation as its context."""

    max_items: int
    max_chars: int


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings body; unknown keys are ignored as OpenAI SDKs add new ones."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr
    input: list[str]  # a single string arrives as a one-item list
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(None, ge=1)
    user: StrictStr | None = None  # accepted and ignored

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any, info: ValidationInfo) -> list[str]:
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts:
            raise ValueError("must be a non-empty string or a non-empty list of strings")
        if any(isinstance(item, int | list) and not isinstance(item, bool) for item in texts):
            raise ValueError(
                "token-id arrays are not supported: send text, which sentserve tokenizes"
                " with the model's own tokenizer"
            )
        if not all(isinstance(item, str) for item in texts):
            raise ValueError("must be a string or a list of strings")
        if any(item == "" for item in texts):
            raise ValueError("cannot contain an empty string")
        limits = info.context
        if isinstance(limits, Limits):
            if len(texts) > limits.max_items:
                raise ValueError(f"has {len(texts)} items; the limit is {limits.max_items}")
            for index, text in enumerate(texts):
                if len(text) > limits.max_chars:
                    raise ValueError(
                        f"item {index} has {len(text)} characters; the limit is {limits.max_chars}"
                    )
        return list(texts)


@openai_compat.post("/v1/embeddings")
def embeddings() -> Response:
    """One embedding per input, in OpenAI's answer shape."""
    settings = server_state().settings
    body = _validated(
        request.get_json(), Limits(settings.max_sentences, settings.max_sentence_chars)
    )
    backend = server_state().registry.ready(body.model).backend
    if body.dimensions is not None and backend and body.dimensions > backend.dimensions:
        raise Problem(
            400,
            "invalid-request",
            f"'dimensions' is {body.dimensions}; model '{body.model}' has {backend.dimensions}",
            extra={"param": "dimensions"},
        )
    model, result = embed_sentences(body.model, body.input)
    vectors = result.vectors
    if body.dimensions is not None:
        vectors = unit_length(vectors[:, : body.dimensions])
    tokens = result.token_count
    return json_response(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": _encoded(row, body)}
                for index, row in enumerate(vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


@openai_compat.get("/v1/models")
def models() -> Response:
    """The models that can answer now; `created` is when the served files were written."""
    ready = [m for m in server_state().registry.models.values() if m.status is ModelStatus.READY]
    data = [
        {"id": m.name, "object": "model", "created": _created(m), "owned_by": "sentserve"}
        for m in ready
    ]
    return json_response({"object": "list", "data": data})


def _validated(body: Any, limits: Limits) -> EmbeddingsRequest:
    try:
        return EmbeddingsRequest.model_validate(body, context=limits)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        message = error["msg"].removeprefix("Value error, ")
        detail = f"'{param}' {message}" if param else message
        raise Problem(400, "invalid-request", detail, extra={"param": param}) from None


def _encoded(row: np.ndarray, body: EmbeddingsRequest) -> np.ndarray | str:
    """base64 is what the official client asks for by default: little-endian float32 bytes."""
    if body.encoding_format == "base64":
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    return row


def _created(model: ServedModel) -> int:
    """The served folder's modification time: the same in every worker and across restarts,
    which the process start time is not."""
    try:
        return int(version_folder(model.folder)[0].stat().st_mtime)
    except OSError:
        return _STARTED


def render_error(problem: Problem) -> Response:
    """OpenAI's error shape, which its clients turn into typed exceptions by status."""
    status = 400 if problem.status == 422 else problem.status
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _ERRORS.get(status, default)
    error = {
        "message": problem.summary(),
        "type": kind,
        "param": problem.extra.get("param"),
        "code": code,
    }
    return json_response({"error": error}, status)


register_dialect(BLUEPRINT, render_error)
