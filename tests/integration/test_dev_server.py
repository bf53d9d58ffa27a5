"""`my-server-manage run` for real, in the development profile (reloader and debugger on): the
mode the classic project crashed in. Black box: a subprocess on a free port, used over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 90.0
TITLE = "Arriba, abajo lento lento!"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session_members(session: int) -> list[int]:
    """Live processes of a session (start_new_session=True makes the leader's pid its id)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, _ppid, _group, sid = stat.rsplit(")", 1)[1].split()[:4]
        if int(sid) == session and state != "Z":
            members.append(int(entry.name))
    return members


def write_env(path: Path, **variables: object) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
    return path


@contextmanager
def server(command: list[str], port: int, workdir: Path) -> Iterator[tuple[str, int]]:
    """Start `command` in its own session, wait for /readyz, yield (base URL, session id);
    afterwards stop the whole group and check that no process of it is left."""
    output = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SENTSERVE_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=workdir,  # no stray .env of the developer's is read
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process, output)
        yield base_url, process.pid
    finally:
        left = stop_group(process)
    assert not left, f"processes {left} of the server outlived SIGTERM"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the port still answers"


def wait_ready(base_url: str, process: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = output.read_text(errors="replace")[-4000:]
            pytest.fail(f"server exited with {process.returncode}:\n{tail}")
        try:
            if requests.get(f"{base_url}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet
            pass
        time.sleep(0.3)
    tail = output.read_text(errors="replace")[-4000:]
    pytest.fail(f"{base_url}/readyz not 200 after {READY_TIMEOUT_S} s:\n{tail}")


def stop_group(process: subprocess.Popen[bytes]) -> list[int]:
    """SIGTERM to the group (the reloader and its serving child) and wait for every member.
    Returns those still alive after 20 s, which are then killed: nothing is left behind."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        process.poll()  # reap the leader
        if not session_members(process.pid):
            return []
        time.sleep(0.2)
    left = session_members(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return left


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
