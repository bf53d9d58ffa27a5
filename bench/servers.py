"""Start, probe and always stop the servers under test (sentserve and the naive baseline).

Each server runs in its own process group, so stopping it also stops every gunicorn worker,
whatever happened in the benchmark (failure, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from corpus import BENCH_DIR, OUT_DIR

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 180.0
READY_STREAK = 10  # consecutive 200s on fresh connections: every worker has loaded, not just one
STOP_TIMEOUT_S = 40.0


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    worker_peaks_mb: list[float] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sentserve_command(port: int, workers: int, threads: int) -> list[str]:
    return [
        str(BIN / "sentserve"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]


def sentserve_env(models_dir: Path, models: list[str]) -> dict[str, str]:
    return {
        **os.environ,
        "SENTSERVE_MODELS_DIR": str(models_dir),
        "SENTSERVE_MODEL_NAMES": ",".join(models),
        "SENTSERVE_LOG_LEVEL": "WARNING",
        "SENTSERVE_CONSOLE_LOG": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(OUT_DIR / "prometheus"),
    }


def naive_command(port: int, workers: int, threads: int) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--timeout",
        "60",
        "--log-level",
        "warning",
        "--chdir",
        str(BENCH_DIR),
        "naive_server:create_app()",
    ]


def naive_env(models_dir: Path, models: list[str]) -> dict[str, str]:
    return {
        **os.environ,
        "BENCH_MODELS_DIR": str(models_dir),
        "BENCH_MODEL_NAMES": ",".join(models),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@contextmanager
def running(name: str, command: list[str], env: dict[str, str], port: int) -> Iterator[Server]:
    """The server, started in its own process group (cwd bench/out, so no developer `.env` is
    read) and ready; stopped on the way out however the block ends."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    log = OUT_DIR / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=OUT_DIR,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, process, port, log)
    try:
        wait_ready(server)
        yield server
    finally:
        try:
            stop(server.process)
        except KeyboardInterrupt:  # a second Ctrl-C while stopping: no more grace
            _signal_group(process.pid, signal.SIGKILL)
            raise


def _ready_once(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(server: Server, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll /readyz until READY_STREAK answers in a row are 200: each worker loads its own
    models and answers its own probes, so one 200 only proves one worker ready."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < READY_STREAK:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited ({server.process.returncode}): {tail(server)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s: {tail(server)}")
        if _ready_once(server.url("/readyz")):
            streak += 1
        else:
            streak = 0
            time.sleep(0.25)


def tail(server: Server, lines: int = 15) -> str:
    text = server.log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(empty log)"


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group (gunicorn finishes accepted requests), SIGKILL if slow."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_S)
    _signal_group(process.pid, signal.SIGKILL)  # stray workers, if the master died first
    if process.poll() is None:
        process.wait(5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def children(pid: int) -> list[int]:
    """Direct children of `pid` (gunicorn's workers, for its master), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, ...
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def peak_rss_mb(pid: int) -> float:
    """VmHWM, the process's peak resident set, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far (TF's pools included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_cpu_s(server: Server) -> float:
    """CPU used so far by every worker of the server: sampled before and after a run, the
    difference is what that load cost the server, whatever else the machine was doing."""
    total = 0.0
    for pid in children(server.process.pid):
        with suppress(OSError):
            total += cpu_seconds(pid)
    return total


def worker_peaks_mb(server: Server) -> list[float]:
    peaks = []
    for pid in children(server.process.pid):
        try:
            peaks.append(peak_rss_mb(pid))
        except OSError:
            continue
    return peaks
