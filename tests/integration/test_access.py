"""API keys, rate limits shared through a real Redis, CORS and security headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from prometheus_client import REGISTRY

from sentserve.api.app import create_app
from sentserve.api_keys import revoke_key
from sentserve.cli import main
from sentserve.engine.registry import ModelRegistry
from sentserve.settings import SettingsError
from tests.integration.servers import redis_server, stop

EMBED = "/api/v1/models/bow-spanish/embed"
ONE = {"sentences": ["hola mundo"]}


@pytest.fixture(scope="module")
def registry(demo_dir: Path, make_settings: Any) -> Iterator[ModelRegistry]:
    """One loaded model shared by every app here: these tests are about the HTTP edge."""
    shared = ModelRegistry(make_settings(models_dir=demo_dir, model_names=["bow-spanish"]))
    shared.load_all()
    yield shared
    shared.close()


@pytest.fixture
def app_with(registry: ModelRegistry, make_settings: Any, demo_dir: Path) -> Any:
    def build(**overrides: Any) -> Flask:
        settings = make_settings(models_dir=demo_dir, model_names=["bow-spanish"], **overrides)
        return create_app(settings, registry=registry)

    return build


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, str, str]:
    """A keys file made by the CLI: alice (default limit) and bob (his own 3/minute)."""
    path = tmp_path / "keys"
    runner = CliRunner()
    alice = runner.invoke(main, ["keys", "add", "alice", "--file", str(path)])
    bob = runner.invoke(
        main, ["keys", "add", "bob", "--rate-limit", "3/minute", "--file", str(path)]
    )
    assert alice.exit_code == 0 and bob.exit_code == 0
    return path, alice.stdout.strip(), bob.stdout.strip()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- keys -------------------------------------------------------------------------------------


def test_keys_file_holds_hashes_never_keys(keys_file: tuple[Path, str, str]) -> None:
    path, alice, bob = keys_file
    text = path.read_text()
    assert alice not in text and bob not in text
    assert [line.split(":")[0] for line in text.splitlines()] == ["alice", "bob"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_key_accepted_as_bearer_or_header(app_with: Any, keys_file: tuple[Path, str, str]) -> None:
    path, alice, _ = keys_file
    client = app_with(api_keys_file=path).test_client()
    assert (
        client.post(EMBED, json=ONE, headers={"Authorization": f"Bearer {alice}"}).status_code
        == 200
    )
    assert client.post(EMBED, json=ONE, headers={"X-API-Key": alice}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}],
)
def test_missing_or_wrong_key_is_401_before_anything_else(
    app_with: Any, keys_file: tuple[Path, str, str], headers: dict[str, str]
) -> None:
    client = app_with(api_keys_file=keys_file[0], max_body_bytes=1024).test_client()
    # Too large and malformed: a refused request is not read, so the answer is still 401.
    answer = client.post(EMBED, data=b"{" * 4096, headers=headers, content_type="application/json")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.mimetype == "application/problem+json"
    assert answer.json["type"] == "urn:sentserve:problem:unauthorized"


def test_revoked_key_stops_working_without_restart(
    app_with: Any, keys_file: tuple[Path, str, str]
) -> None:
    path, alice, _ = keys_file
    client = app_with(api_keys_file=path).test_client()
    assert client.post(EMBED, json=ONE, headers={"X-API-Key": alice}).status_code == 200
    assert revoke_key(path, "alice")
    time.sleep(1.1)  # the file is re-checked at most once a second
    assert client.post(EMBED, json=ONE, headers={"X-API-Key": alice}).status_code == 401


def test_plain_keys_setting(app_with: Any) -> None:
    client = app_with(api_keys="k1,k2").test_client()
    assert client.post(EMBED, json=ONE, headers={"X-API-Key": "k2"}).status_code == 200
    assert client.post(EMBED, json=ONE, headers={"X-API-Key": "k3"}).status_code == 401


def test_probes_open_metrics_and_docs_open_by_default_keyed_by_setting(app_with: Any) -> None:
    open_app = app_with(api_keys="k1").test_client()
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/swagger.json", "/api/v1/"):
        assert open_app.get(path).status_code == 200, path
    keyed = app_with(api_keys="k1", protect_metrics=True, protect_docs=True).test_client()
    for path in ("/metrics", "/api/v1/swagger.json", "/api/v1/"):
        assert keyed.get(path).status_code == 401, path
        assert keyed.get(path, headers={"X-API-Key": "k1"}).status_code == 200, path
    assert keyed.get("/healthz").status_code == 200


def test_key_name_in_log_and_metrics_never_the_key(
    app_with: Any, keys_file: tuple[Path, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    path, alice, _ = keys_file
    client = app_with(api_keys_file=path).test_client()
    before = _metric(
        "sentserve_requests_total",
        route="/api/v1/models/<string:name>/embed",
        model="bow-spanish",
        status="200",
        client="alice",
    )
    logger = logging.getLogger("sentserve")
    logger.addHandler(caplog.handler)
    try:
        assert client.post(EMBED, json=ONE, headers={"X-API-Key": alice}).status_code == 200
    finally:
        logger.removeHandler(caplog.handler)
    lines = [r for r in caplog.records if r.name == "sentserve.requests"]
    assert lines and lines[-1].client == "alice"  # type: ignore[attr-defined]
    assert alice not in caplog.text
    after = _metric(
        "sentserve_requests_total",
        route="/api/v1/models/<string:name>/embed",
        model="bow-spanish",
        status="200",
        client="alice",
    )
    assert after == before + 1


# -- rate limits ------------------------------------------------------------------------------


def test_twice_the_limit_gets_429s_never_500s(app_with: Any) -> None:
    client = app_with(rate_limit="10/minute").test_client()
    statuses = [client.post(EMBED, json=ONE).status_code for _ in range(20)]
    assert statuses.count(200) == 10 and statuses.count(429) == 10
    refused = client.post(EMBED, json=ONE)
    assert refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["RateLimit-Limit"] == "10"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert 0 <= int(refused.headers["RateLimit-Reset"]) <= 60


def test_probes_are_never_limited(app_with: Any) -> None:
    client = app_with(rate_limit="1/minute").test_client()
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))


def test_per_key_override_from_keys_file(app_with: Any, keys_file: tuple[Path, str, str]) -> None:
    path, alice, bob = keys_file
    client = app_with(api_keys_file=path, rate_limit="100/minute").test_client()
    bobs = [client.post(EMBED, json=ONE, headers={"X-API-Key": bob}).status_code for _ in range(5)]
    assert bobs == [200, 200, 200, 429, 429]
    assert client.post(EMBED, json=ONE, headers={"X-API-Key": alice}).status_code == 200


def test_weighted_by_sentence_count(app_with: Any) -> None:
    client = app_with(rate_limit="10/minute", rate_limit_per_sentence=True).test_client()
    assert client.post(EMBED, json={"sentences": ["a"] * 8}).status_code == 200
    assert client.post(EMBED, json={"sentences": ["a"] * 3}).status_code == 429  # 8 + 3 > 10


def test_two_instances_share_one_limit_through_redis(app_with: Any) -> None:
    with redis_server() as (url, _):
        first = app_with(rate_limit="6/minute", redis_url=url).test_client()
        second = app_with(rate_limit="6/minute", redis_url=url).test_client()
        statuses = [c.post(EMBED, json=ONE).status_code for _ in range(5) for c in (first, second)]
    assert statuses.count(200) == 6 and statuses.count(429) == 4


def test_redis_down_fails_open_by_default(app_with: Any) -> None:
    with redis_server() as (url, process):
        client = app_with(rate_limit="100/minute", redis_url=url).test_client()
        assert client.post(EMBED, json=ONE).status_code == 200
        stop(process)
        before = _metric("sentserve_rate_limit_storage_errors_total")
        statuses = [client.post(EMBED, json=ONE).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert _metric("sentserve_rate_limit_storage_errors_total") >= before + 3


def test_redis_down_fails_closed_by_setting(app_with: Any) -> None:
    with redis_server() as (url, process):
        client = app_with(rate_limit="100/minute", redis_url=url, rate_limit_fail_closed=True)
        client = client.test_client()
        assert client.post(EMBED, json=ONE).status_code == 200
        stop(process)
        answer = client.post(EMBED, json=ONE)
    assert answer.status_code == 503
    assert answer.json["type"] == "urn:sentserve:problem:rate-limit-unavailable"
    assert answer.headers["Retry-After"]


# -- CORS and headers -------------------------------------------------------------------------


def test_cors_only_for_listed_origins(app_with: Any) -> None:
    client = app_with(cors_origins="https://app.example", api_keys="k1").test_client()
    preflight = client.options(
        EMBED,
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200  # preflights carry no key and are not refused
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = client.post(
        EMBED, json=ONE, headers={"Origin": "https://evil.example", "X-API-Key": "k1"}
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_off_by_default(app_with: Any) -> None:
    answer = app_with().test_client().post(EMBED, json=ONE, headers={"Origin": "https://a.example"})
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_embedding_answers_are_not_sniffed_or_cached(app_with: Any) -> None:
    answer = app_with().test_client().post(EMBED, json=ONE)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_keys_own_limit_applies_without_a_global_limit(
    app_with: Any, keys_file: tuple[Path, str, str]
) -> None:
    path, alice, bob = keys_file
    client = app_with(api_keys_file=path).test_client()
    bobs = [client.post(EMBED, json=ONE, headers={"X-API-Key": bob}).status_code for _ in range(4)]
    assert bobs == [200, 200, 200, 429]
    alices = [client.post(EMBED, json=ONE, headers={"X-API-Key": alice}) for _ in range(5)]
    assert all(a.status_code == 200 for a in alices)  # no limit of her own, none global
    assert "RateLimit-Limit" not in alices[-1].headers


def test_a_bad_keys_file_stops_start_up_with_one_line(make_settings: Any, tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"carol:{'ab' * 32}:lots\n")
    with pytest.raises(SettingsError, match="rate limit 'lots'"):
        make_settings(api_keys_file=path)


def test_a_broken_edit_keeps_the_keys_last_read(
    app_with: Any, keys_file: tuple[Path, str, str]
) -> None:
    path, alice, _ = keys_file
    client = app_with(api_keys_file=path).test_client()
    assert client.post(EMBED, json=ONE, headers={"X-API-Key": alice}).status_code == 200
    path.write_text(path.read_text() + "this line is broken\n")
    time.sleep(1.1)
    assert client.post(EMBED, json=ONE, headers={"X-API-Key": alice}).status_code == 200


def test_keys_add_refuses_a_bad_rate_limit_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    result = CliRunner().invoke(
        main, ["keys", "add", "dave", "--rate-limit", "lots", "--file", str(path)]
    )
    assert result.exit_code != 0
    assert "rate limit 'lots'" in result.output
    assert not path.exists()
