"""What every API test checks the same way: the problem+json contract, the demo model names."""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse

PROBLEM_JSON = "application/problem+json"
BROKEN = "broken"
BAD_PADDING = "lstm-bad-padding"
READY_MODELS = ("bow-keras", "bow-spanish", "lstm-multilingual", "text-encoder")


def assert_problem(response: TestResponse, status: int, slug: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem: the media type, the four members, never HTML, a traceback or
    flask-restx's `{"message": ...}`. Returns the body."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == PROBLEM_JSON, text
    assert "<html" not in text.lower()
    assert "Traceback" not in text
    body = response.get_json(force=True)
    assert isinstance(body, dict)
    assert "message" not in body
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert body["type"].startswith("urn:sentserve:problem:")
    if slug is not None:
        assert body["type"].endswith(":" + slug), body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    if status == 422 and body["type"].endswith(":validation-error"):
        assert isinstance(body["errors"], list) and body["errors"]
        for error in body["errors"]:
            assert set(error) == {"path", "message"}
            assert isinstance(error["path"], str) and isinstance(error["message"], str)
            assert error["message"]
    return body
