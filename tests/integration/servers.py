"""Start real sentserve processes on free local ports, and always stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

BIN = Path(sys.executable).parent


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


def wait_ready(
    base_url: str, process: subprocess.Popen[bytes], output: Path, timeout: float = 120.0
) -> None:
    """Poll /readyz until 200; fail early with the server's output if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = output.read_text(errors="replace")[-4000:]
            raise AssertionError(f"server exited with {process.returncode}:\n{tail}")
        try:
            if requests.get(f"{base_url}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or busy loading models
            pass
        time.sleep(0.3)
    tail = output.read_text(errors="replace")[-4000:]
    raise AssertionError(f"{base_url}/readyz not 200 after {timeout} s:\n{tail}")


def stop(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30
) -> list[int]:
    """Signal the whole session (workers, reloader children) and wait for every member; those
    still alive after `timeout` are killed and returned, so nothing is ever left behind."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        process.wait()
        return []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.poll()  # reap the leader
        if not session_members(process.pid):
            process.wait()
            return []
        time.sleep(0.1)
    left = session_members(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return left


@contextmanager
def running(
    args: list[str], env: Mapping[str, str], port: int, workdir: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A server process from `args`, ready at the yielded base URL, stopped afterwards. Its
    output goes to a file (a pipe nobody reads could fill and block it), shown on failure.
    It runs in `workdir` (default: a fresh folder), so no developer's .env is read."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sentserve-test-"))
    output = workdir / "server.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            args,
            cwd=workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process, output)
        yield base_url, process
    finally:
        stop(process)


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway redis-server (Debian package) on a free port, no persistence."""
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                stop(process)
                raise
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        stop(process)
