"""Request logging per profile and settings: file written, level honoured, JSON lines parse,
one line per request with its fields, and never the sentences themselves."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sentserve.api.app import create_app
from sentserve.logs import REQUEST_FIELDS
from sentserve.settings import Settings
from tests.api.conftest import registry_of, restore_logging
from tests.api.contract import BAD_PADDING, BROKEN

EMBED = "/api/v1/models/bow-spanish/embed"
MARKER = "zqmarkerword"
LogApp = Callable[..., tuple[FlaskClient, Path]]


def read_lines(path: Path) -> list[str]:
    for handler in logging.getLogger("sentserve").handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def text_fields(line: str) -> dict[str, str]:
    """The key=value pairs the text formatter appends."""
    return dict(re.findall(r"(\w+)=(\S+)", line))


@pytest.fixture
def log_app(make_app: Callable[..., Flask], app: Flask, tmp_path: Path) -> Iterator[LogApp]:
    """`log_app(**settings)`: a client whose app logs to a fresh file, and that file. The
    session app's logging comes back afterwards (the file handler is closed)."""

    def build(**overrides: Any) -> tuple[FlaskClient, Path]:
        path = tmp_path / "logs" / "x.log"
        return make_app(log_file=path, **overrides).test_client(), path

    yield build
    restore_logging(app)


def send_requests(client: FlaskClient) -> None:
    client.post(
        EMBED,
        json={"sentences": ["hola mundo", "arriba"]},
        headers={"X-Request-ID": "log-embed"},
    )
    client.post(
        "/api/v1/model/bow-spanish/predict",
        data={"title": "lento lento"},
        headers={"X-Request-ID": "log-classic"},
    )
    client.get("/healthz", headers={"X-Request-ID": "log-health"})
    client.post(
        "/api/v1/models/nope/embed", json={"sentences": ["x"]}, headers={"X-Request-ID": "log-404"}
    )


def test_text_lines_one_per_request_with_their_fields(log_app: LogApp) -> None:
    client, path = log_app(log_level="INFO")
    send_requests(client)
    lines = read_lines(path)
    by_id = {}
    for request_id in ("log-embed", "log-classic", "log-health", "log-404"):
        matching = [line for line in lines if f"request_id={request_id} " in line]
        assert len(matching) == 1, (request_id, lines)
        by_id[request_id] = matching[0]
    embed = text_fields(by_id["log-embed"])
    assert embed["method"] == "POST"
    assert embed["path"] == EMBED
    assert embed["status"] == "200"
    assert embed["model"] == "bow-spanish"
    assert embed["sentences"] == "2"
    assert float(embed["duration_ms"]) > 0
    assert " INFO sentserve.requests: POST " in by_id["log-embed"]
    classic = text_fields(by_id["log-classic"])
    assert classic["model"] == "bow-spanish" and classic["sentences"] == "1"
    health = text_fields(by_id["log-health"])
    assert health["status"] == "200" and "model" not in health  # no model, no field
    missing = text_fields(by_id["log-404"])
    assert missing["status"] == "404" and "model" not in missing


def test_the_request_id_in_the_log_is_the_one_answered(log_app: LogApp) -> None:
    client, path = log_app(log_level="INFO")
    answer = client.get("/api/v1/models", headers={"X-Request-ID": "bad id with spaces"})
    made = answer.headers["X-Request-ID"]
    lines = [line for line in read_lines(path) if "path=/api/v1/models " in line + " "]
    assert [text_fields(line)["request_id"] for line in lines] == [made]


def test_warning_level_writes_no_request_lines(log_app: LogApp) -> None:
    client, path = log_app(log_level="WARNING")
    send_requests(client)
    client.post(f"/api/v1/models/{BAD_PADDING}/embed", json={"sentences": [""]})  # a 500
    lines = read_lines(path)
    assert not [line for line in lines if "request_id=" in line]
    assert all(" INFO " not in line and " DEBUG " not in line for line in lines)


def test_debug_level_keeps_request_lines(log_app: LogApp) -> None:
    client, path = log_app(log_level="DEBUG")
    send_requests(client)
    assert len([line for line in read_lines(path) if "request_id=log-" in line]) == 4


def test_json_lines_parse_with_every_request_field(log_app: LogApp) -> None:
    client, path = log_app(log_level="INFO", log_format="json")
    send_requests(client)
    records = [json.loads(line) for line in read_lines(path)]  # every line is JSON
    requests = {r["request_id"]: r for r in records if r.get("logger") == "sentserve.requests"}
    assert set(requests) == {"log-embed", "log-classic", "log-health", "log-404"}
    for record in requests.values():
        assert set(REQUEST_FIELDS) <= set(record)
        assert record["level"] == "INFO"
        assert isinstance(record["duration_ms"], float)
    embed = requests["log-embed"]
    assert (embed["method"], embed["path"], embed["status"]) == ("POST", EMBED, 200)
    assert (embed["model"], embed["sentences"]) == ("bow-spanish", 2)
    assert requests["log-health"]["model"] is None
    assert requests["log-404"]["status"] == 404


def test_the_production_profile_writes_json_at_info(log_app: LogApp) -> None:
    client, path = log_app(profile="production", console_log=False)
    send_requests(client)
    records = [json.loads(line) for line in read_lines(path)]
    assert {r.get("request_id") for r in records} >= {"log-embed", "log-404"}
    assert all(r["level"] != "DEBUG" for r in records)


def test_the_development_profile_writes_text(log_app: LogApp) -> None:
    client, path = log_app(profile="development", console_log=False)
    client.get("/healthz", headers={"X-Request-ID": "dev-1"})
    (line,) = [line for line in read_lines(path) if "request_id=dev-1" in line]
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_console_logging_goes_to_stderr(
    log_app: LogApp, capsys: pytest.CaptureFixture[str]
) -> None:
    client, _ = log_app(console_log=True, log_level="INFO")
    client.get("/healthz", headers={"X-Request-ID": "console-1"})
    assert "request_id=console-1" in capsys.readouterr().err


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("log_level", ["INFO", "WARNING"])
def test_sentence_text_never_reaches_the_log(
    log_app: LogApp, log_level: str, log_format: str
) -> None:
    client, path = log_app(log_level=log_level, log_format=log_format)
    words = f"hola {MARKER} mundo"
    client.post(EMBED, json={"sentences": [words, "otra"], "return_tokens": True})
    client.post(EMBED, json={"title": words})
    client.post(EMBED, json={"sentences": [words, 5]})  # 422
    client.post(EMBED, json={"sentences": [" ".join([MARKER] * 30)], "truncate": False})  # 422
    client.post(EMBED, data=f'{{"sentences": ["{MARKER}"', content_type="application/json")
    client.post("/api/v1/models/bow-spanish/similarity", json={"source": words, "sentences": ["a"]})
    client.post("/api/v1/models/lstm-multilingual/tokenize", json={"sentences": [words]})
    client.post(f"/api/v1/models/{BROKEN}/embed", json={"sentences": [words]})  # 503
    predict = "/api/v1/model/bow-spanish/predict"
    client.post(predict, json={"title": words})
    client.post(predict, data={"title": words})
    client.post(f"{predict}?{urlencode({'title': words})}")
    client.post(predict, json={"title": words, "title_dropout": 0.3})  # 422
    lines = read_lines(path)
    if log_level == "INFO":
        assert len([line for line in lines if "request_id" in line]) == 12
    assert not [line for line in lines if MARKER in line]


def test_the_log_file_rotates_by_size(log_app: LogApp) -> None:
    client, path = log_app(log_level="INFO", log_max_bytes=200, log_backups=2)
    for _ in range(6):
        client.get("/healthz")
    read_lines(path)
    assert path.exists()
    assert (path.parent / "x.log.1").exists() and (path.parent / "x.log.2").exists()
    assert not (path.parent / "x.log.3").exists()


def test_start_up_logs_one_line_per_model_with_its_status(
    api_settings: Callable[..., Settings], app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "start.log"
    settings = api_settings(model_names=f"{BROKEN},ghost", log_file=path, log_level="INFO")
    started = create_app(settings)
    try:
        lines = read_lines(path)
        broken = [line for line in lines if f"model {BROKEN}: failed" in line]
        ghost = [line for line in lines if "model ghost: failed" in line]
        assert len(broken) == 1 and len(ghost) == 1
        assert "reason=tensorflow_model is truncated or corrupt" in broken[0]
        assert "not found" in ghost[0]
        disabled = [line for line in lines if "model bow-spanish: disabled" in line]
        assert len(disabled) == 1 and "not listed in MODEL_NAMES" in disabled[0]
    finally:
        registry_of(started).close()
        restore_logging(app)
