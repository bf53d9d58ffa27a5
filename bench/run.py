"""`make bench`: how close sentserve comes to the model's own limit, and how far the naive
baseline stays from it -- all measured in the same run, on the same machine, printed as one table.

1. build the large demo models once (bench/out/models-large);
2. the limit: raw in-process session.run throughput at batch 1/8/32/64 (bench/raw_model.py);
3. sentserve under gunicorn, driven by wrk with three loads per model;
4. peak RSS of each gunicorn worker;
5. the naive baseline (bench/naive_server.py) under the same gunicorn and the same loads;
6. the table, the spec's targets, and bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from corpus import BENCH_DIR, MODELS_DIR, OUT_DIR, ROOT, build_models, model_sentences
from loadgen import LOADS, Load, WrkResult, run_wrk, write_bodies, wrk_binary
from report import Results, table, verdicts
from sentserve.settings import Settings
from servers import (
    Server,
    free_port,
    naive_command,
    naive_env,
    running,
    sentserve_command,
    sentserve_env,
    worker_peaks_mb,
    workers_cpu_s,
)

DEFAULT_MODELS = "bow-spanish,lstm-multilingual"
WARMUP_SECONDS = 2
SENTENCE_SET = 200
BODIES_PER_FILE = 200
ServerFactory = Callable[[int, int, int], list[str]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings.model_fields
    parser = argparse.ArgumentParser(description="sentserve benchmark: one table, see README.md")
    parser.add_argument("--seconds", type=float, default=10, help="per wrk run (default 10)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma list of models")
    parser.add_argument("--workers", type=int, default=defaults["workers"].default)
    parser.add_argument("--threads", type=int, default=defaults["threads"].default)
    parser.add_argument("--skip-naive", action="store_true", help="only sentserve")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the limit --------------------------------------------------------------------------------


def measure_raw(model: str, seconds: float) -> dict[str, Any]:
    """raw_model.py in its own process; its last stdout line is the JSON result."""
    command = [
        sys.executable,
        str(BENCH_DIR / "raw_model.py"),
        model,
        "--models-dir",
        str(MODELS_DIR),
        "--seconds",
        str(seconds),
        "--sentences",
        str(SENTENCE_SET),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"raw_model.py {model} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the servers ------------------------------------------------------------------------------


def body_files(models: list[str]) -> dict[tuple[str, int], Path]:
    """Per model and sentences-per-request, a file of distinct JSON bodies for post.lua."""
    files = {}
    for model in models:
        sentences = model_sentences(model, SENTENCE_SET)
        for per_request in sorted({load.sentences for load in LOADS}):
            path = OUT_DIR / "bodies" / f"{model}-{per_request}.jsonl"
            files[(model, per_request)] = write_bodies(
                path, sentences, per_request, BODIES_PER_FILE
            )
    return files


def drive(server: Server, model: str, load: Load, bodies: Path, seconds: float) -> WrkResult:
    """A warm-up run (not reported: connections, TF's first batches of each shape) then the
    measured run."""
    url = server.url(f"/api/v1/models/{model}/embed")
    warm = run_wrk(url, bodies, load.clients, WARMUP_SECONDS)
    if warm.errors:
        progress(f"  warm-up of {server.name} {model} {load.key}: {warm.errors} errors")
    cpu_before = workers_cpu_s(server)
    result = run_wrk(url, bodies, load.clients, seconds)
    result = replace(result, server_cpu_s=workers_cpu_s(server) - cpu_before)
    progress(
        f"  {server.name:9} {model:18} {load.label:34} {result.requests_per_s:9.1f} req/s"
        f"  p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms  errors {result.errors}"
        f"  CPU: server {result.server_cpu_s:.1f} s, wrk {result.wrk_cpu_s:.1f} s"
    )
    return result


def bench_server(
    name: str,
    factory: ServerFactory,
    env: dict[str, str],
    args: argparse.Namespace,
    bodies: dict[tuple[str, int], Path],
    results: Results,
) -> None:
    port = free_port()
    progress(f"starting {name} on 127.0.0.1:{port} ({args.workers} workers x {args.threads})")
    started = time.monotonic()
    with running(name, factory(port, args.workers, args.threads), env, port) as server:
        progress(f"  ready after {time.monotonic() - started:.1f} s")
        for model in args.models:
            for load in LOADS:
                path = bodies[(model, load.sentences)]
                results.loads[(name, model, load.key)] = drive(
                    server, model, load, path, args.seconds
                )
        results.peaks_mb[name] = worker_peaks_mb(server)


# -- the record -------------------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def tensorflow_version() -> str:
    for package in ("tensorflow-cpu", "tensorflow"):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def command_line() -> str:
    python = Path(sys.executable)
    shown = os.path.relpath(python, ROOT) if python.is_relative_to(ROOT) else str(python)
    return shlex.join([shown, *sys.argv])


def header(args: argparse.Namespace) -> list[str]:
    wrk_version = subprocess.run(
        [wrk_binary(), "-v"], capture_output=True, text=True, check=False
    ).stdout.split(" [")[0]
    overrides = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("SENTSERVE_"))
    return [
        "# Benchmark results",
        "",
        f"- command: `{command_line()}` (run from the repository root)",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: nproc {len(os.sched_getaffinity(0))}, CPU {cpu_model()},"
        f" Python {platform.python_version()}",
        f"- TensorFlow {tensorflow_version()}, {wrk_version.strip()}",
        f"- gunicorn gthread, {args.workers} workers x {args.threads} threads (both servers);"
        f" {args.seconds:g} s per wrk run after a {WARMUP_SECONDS} s warm-up",
        f"- SENTSERVE_* variables in the environment: {', '.join(overrides) or 'none'}",
        "",
    ]


def write_results(args: argparse.Namespace, results: Results) -> str:
    lines = header(args) + [table(results), "", "Targets (issue 4):", ""]
    lines += [v.line() for v in verdicts(results)]
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return text


# -- main -------------------------------------------------------------------------------------


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, through every `finally`: the servers stop. Once only, so
    a second SIGTERM cannot interrupt that clean-up."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> Results:
    wrk_binary()
    build_models()
    servers = ["sentserve"] if args.skip_naive else ["sentserve", "naive"]
    results = Results(models=args.models, servers=servers)
    for model in args.models:
        progress(f"raw limit of {model} ({args.seconds / 2:g} s per batch size)")
        results.raw[model] = measure_raw(model, args.seconds / 2)
    bodies = body_files(args.models)
    bench_server(
        "sentserve",
        sentserve_command,
        sentserve_env(MODELS_DIR, args.models),
        args,
        bodies,
        results,
    )
    if not args.skip_naive:
        bench_server(
            "naive", naive_command, naive_env(MODELS_DIR, args.models), args, bodies, results
        )
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    try:
        results = run(args)
    except KeyboardInterrupt:
        progress("interrupted: servers stopped")
        return 130
    except (RuntimeError, subprocess.SubprocessError) as exc:
        progress(f"benchmark failed: {exc}")
        return 1
    text = write_results(args, results)
    print(text)
    progress(f"written to {args.output} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
