"""Drive a server with wrk and read back what it measured.

wrk (the Debian package) is a C load generator: it costs the 2-core machine far less CPU than a
Python client would, so more of the machine is left to the server being measured.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from corpus import BENCH_DIR

LUA_SCRIPT = BENCH_DIR / "post.lua"
WRK_TIMEOUT_S = 10  # a request slower than this counts as a socket timeout error
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class Load:
    """One load shape: `clients` connections, each request carrying `sentences` sentences."""

    key: str
    sentences: int
    clients: int

    @property
    def label(self) -> str:
        noun = "sentence" if self.sentences == 1 else "sentences"
        clients = "client" if self.clients == 1 else "clients"
        return f"({self.key}) {self.sentences} {noun}/req x {self.clients} {clients}"


LOADS = (Load("a", 1, 1), Load("b", 1, 32), Load("c", 32, 8))


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    wrk_cpu_s: float = math.nan  # CPU the load generator itself took from the machine
    server_cpu_s: float = math.nan  # CPU of every server worker during the run

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk_binary() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if found is None:
        raise SystemExit("wrk not found: install the Debian package (apt-get install wrk)")
    return found


def write_bodies(path: Path, sentences: list[str], per_request: int, count: int) -> Path:
    """`count` distinct JSON bodies of `per_request` sentences each, one per line, taken in
    rotation from the sentence set so every body differs."""
    lines = []
    for body in range(count):
        start = body * per_request
        chosen = [sentences[(start + i) % len(sentences)] for i in range(per_request)]
        lines.append(json.dumps({"sentences": chosen}, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_wrk(url: str, bodies: Path, clients: int, seconds: float) -> WrkResult:
    """One wrk run; raises when wrk itself fails (not when the server answers errors)."""
    command = [
        wrk_binary(),
        "-t1",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    env = {**os.environ, "BENCH_BODIES": str(bodies)}
    before = _children_cpu_s()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return replace(parse_wrk(done.stdout), wrk_cpu_s=_children_cpu_s() - before)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def _percentile(text: str, percent: str) -> float:
    found = re.search(rf"^\s*{percent}%\s+{_DURATION}\s*$", text, re.MULTILINE)
    return _ms(*found.groups()) if found else math.nan


def parse_wrk(text: str) -> WrkResult:
    """Requests/s, the p50/p99 of wrk's "Latency Distribution" block, and every error kind."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        requests=int(total.group(1)) if total else 0,
        requests_per_s=float(rate.group(1)) if rate else 0.0,
        p50_ms=_percentile(text, "50"),
        p99_ms=_percentile(text, "99"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )
