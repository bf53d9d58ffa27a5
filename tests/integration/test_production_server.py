"""`sentserve serve` for real: gunicorn with two workers, metrics across them, graceful stop."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.servers import BIN, free_port, running, stop

EMBED = "/api/v1/models/{}/embed"


@pytest.fixture(scope="module")
def production_env(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "SENTSERVE_MODELS_DIR": str(demo_dir),
        "SENTSERVE_MODEL_NAMES": "bow-spanish,lstm-multilingual",
        "SENTSERVE_PROFILE": "production",
        "SENTSERVE_LOG_LEVEL": "WARNING",
        "SENTSERVE_WARMUP_BATCHES": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics")),
    }


def _serve(port: int) -> list[str]:
    return [
        str(BIN / "sentserve"),
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--threads",
        "4",
    ]


def _requests_total(base_url: str) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sentserve_requests_total":
                key = (sample.labels["model"], sample.labels["status"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def test_two_workers_serve_and_metrics_count_across_them(production_env: dict[str, str]) -> None:
    port = free_port()
    with running(_serve(port), production_env, port) as (base_url, _):
        with requests.Session() as session:
            for _ in range(40):  # keep-alive on one connection lands on one worker...
                answer = session.post(
                    base_url + EMBED.format("bow-spanish"), json={"sentences": ["hola mundo"]}
                )
                assert answer.status_code == 200
        for _ in range(40):  # ...new connections spread over both
            answer = requests.post(
                base_url + EMBED.format("bow-spanish"), json={"sentences": ["hola"]}, timeout=10
            )
            assert answer.status_code == 200
            assert float(answer.headers["X-Inference-Time"]) >= 0
        assert _requests_total(base_url)[("bow-spanish", "200")] == 80


def test_sigterm_under_load_loses_no_accepted_request(production_env: dict[str, str]) -> None:
    port = free_port()
    outcomes: list[str] = []
    lock = threading.Lock()
    stop_sending = threading.Event()

    def client(url: str) -> None:
        while not stop_sending.is_set():
            try:
                answer = requests.post(url, json={"sentences": ["hola mundo " * 20]}, timeout=30)
                result = str(answer.status_code)
            except requests.ConnectionError as exc:
                # Refused: the listener is closed, the request was never accepted. Anything
                # else (reset, disconnected mid-answer) is an accepted request lost.
                result = "refused" if "refused" in str(exc).lower() else f"lost: {exc}"
            with lock:
                outcomes.append(result)
            if result == "refused":
                return

    with running(_serve(port), production_env, port) as (base_url, process):
        url = base_url + EMBED.format("lstm-multilingual")
        threads = [threading.Thread(target=client, args=(url,)) for _ in range(12)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        left = stop(process, signal.SIGTERM)
        stop_sending.set()
        for thread in threads:
            thread.join(60)
    answered = [o for o in outcomes if o.isdigit()]
    assert left == [] and process.returncode == 0
    assert answered and all(o == "200" for o in answered), set(outcomes)
    assert [o for o in outcomes if o.startswith("lost")] == []
