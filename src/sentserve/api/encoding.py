"""Answers encoded by orjson straight from float32 arrays: flask.jsonify(array.tolist())
costs more than the model itself for a batch of vectors."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from flask import Response

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload, option=_OPTIONS), status, headers, mimetype="application/json"
    )


def unit_length(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; an all-zero row stays zero rather than becoming NaN."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
