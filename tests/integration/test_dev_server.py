"""`my-server-manage run` for real, in the development profile (reloader and debugger on): the
mode the classic project crashed in. Black box: a subprocess on a free port, used over HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.integration.servers import BIN, free_port, running, session_members, stop

TITLE = "Arriba, abajo lento lento!"


def write_env(path: Path, **variables: object) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
    return path


@contextmanager
def server(command: list[str], port: int, workdir: Path) -> Iterator[tuple[str, int]]:
    """The server ready at its URL; afterwards no process of its session may be left and
    the port must be free."""
    with running(command, {}, port, workdir) as (base_url, process):
        yield base_url, process.pid
        left = stop(process)
    assert not left, f"processes {left} of the server outlived SIGTERM"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the port still answers"


def assert_serves(base_url: str) -> None:
    """The native route and the classic contract, over real HTTP."""
    embed = requests.post(
        f"{base_url}/api/v1/models/bow-spanish/embed",
        json={"sentences": ["hola mundo", "arriba"], "normalize": True},
        timeout=30,
    )
    assert embed.status_code == 200, embed.text
    body = embed.json()
    assert body["model"] == "bow-spanish"
    assert [len(vector) for vector in body["embeddings"]] == [300, 300]
    assert float(embed.headers["X-Inference-Time"]) >= 0

    classic = requests.post(
        f"{base_url}/api/v1/model/bow-spanish/predict", json={"title": TITLE}, timeout=30
    )
    assert classic.status_code == 200, classic.text
    prediction = classic.json()["ModelPrediction"]
    assert prediction["tokenizedTitle"] == ["arriba", "abajo", "lento", "lento"]
    assert prediction["modelName"] == "bow-spanish"
    assert len(prediction["modelPrediction"]) == 300
    health = requests.get(f"{base_url}/api/v1/model/bow-spanish/predict", timeout=30)
    assert health.json() == "Model is operational: bow-spanish"


def test_the_development_server_serves_with_reloader_and_debugger(
    demo_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    env_file = write_env(
        tmp_path / "dev.env",
        SENTSERVE_PROFILE="development",
        SENTSERVE_MODELS_DIR=demo_dir,
        SENTSERVE_WARMUP_BATCHES=0,
    )
    command = [str(BIN / "my-server-manage"), "run", "--port", str(port)]
    command += ["--env-file", str(env_file)]
    with server(command, port, tmp_path) as (base_url, session):
        # The reloader's parent watches files while its child serves: two processes.
        assert len(session_members(session)) >= 2
        assert_serves(base_url)
        listing = requests.get(f"{base_url}/api/v1/models", timeout=30).json()["models"]
        assert {m["name"]: m["status"] for m in listing} == {
            "bow-keras": "ready",
            "bow-spanish": "ready",
            "lstm-multilingual": "ready",
            "text-encoder": "ready",
        }
        # The debugger is on (it serves its own assets)...
        debugger = requests.get(
            f"{base_url}/?__debugger__=yes&cmd=resource&f=style.css", timeout=30
        )
        assert debugger.status_code == 200 and "text/css" in debugger.headers["Content-Type"]
        # ...yet errors still leave as problem+json, never its HTML traceback page.
        for answer in (
            requests.post(
                f"{base_url}/api/v1/models/bow-spanish/embed",
                data="{",
                headers={"Content-Type": "application/json"},
                timeout=30,
            ),
            requests.get(f"{base_url}/nope", timeout=30),
        ):
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert "Traceback" not in answer.text and "<html" not in answer.text.lower()
            assert answer.json()["status"] in (400, 404)


def test_dotenv_run_serves_as_the_classic_readme_showed(demo_dir: Path, tmp_path: Path) -> None:
    """`dotenv -f FILE run my-server-manage run`: python-dotenv's CLI puts FILE's variables in
    the environment; the server reads them there (even its port)."""
    port = free_port()
    env_file = write_env(
        tmp_path / "other.env",
        SENTSERVE_PROFILE="development",
        SENTSERVE_MODELS_DIR=demo_dir,
        SENTSERVE_MODEL_NAMES="bow-spanish",
        SENTSERVE_WARMUP_BATCHES=0,
        SENTSERVE_PORT=port,
    )
    command = [str(BIN / "dotenv"), "-f", str(env_file), "run"]
    command += [str(BIN / "my-server-manage"), "run"]
    with server(command, port, tmp_path) as (base_url, _):
        assert_serves(base_url)
        listing = requests.get(f"{base_url}/api/v1/models", timeout=30).json()["models"]
        statuses = {m["name"]: m["status"] for m in listing}
        assert statuses["bow-spanish"] == "ready"
        assert statuses["lstm-multilingual"] == "disabled"  # MODEL_NAMES came through too
