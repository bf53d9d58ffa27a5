"""The limit: raw in-process embedding throughput of one model, no batcher and no HTTP.

Runs as its own process (bench/run.py starts it) so TensorFlow's thread pools take the whole
machine, as a server worker alone would, and the parent stays light. The model is loaded with
sentserve's own engine, the sentences are tokenized and padded beforehand, and only
`backend.embed(padded_ids)` -- the session.run -- is timed. Prints one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from corpus import MODELS_DIR, model_sentences
from sentserve.engine.model import ServedModel
from sentserve.engine.registry import ModelRegistry
from sentserve.settings import Settings

BATCH_SIZES = (1, 8, 32, 64)
WARMUP_SECONDS = 0.5
WARMUP_CALLS = 3


def load_model(models_dir: Path, name: str) -> tuple[ModelRegistry, ServedModel]:
    """The model exactly as a sentserve worker loads it (alone in this process: TF's intra-op
    threads default to every core)."""
    settings = Settings(
        models_dir=models_dir,
        model_names=[name],
        warmup_batches=0,
        log_level="WARNING",
        console_log=False,
    )
    registry = ModelRegistry(settings, workers=1)
    registry.load_all()
    return registry, registry.ready(name)


def padded_batches(model: ServedModel, sentences: list[str], batch_size: int) -> list[np.ndarray]:
    """Consecutive slices of the tokenized sentences, padded as the server pads a batch: to the
    model's fixed length, else to the longest row of the batch."""
    assert model.backend is not None
    rows = [e.input_ids for e in model.encode(sentences, truncate=True)]
    rows = rows * max(1, -(-batch_size // len(rows)))  # enough rows for one batch
    batches = []
    for start in range(0, len(rows) - batch_size + 1, batch_size):
        chunk = rows[start : start + batch_size]
        width = model.backend.input_length or max(1, max(len(r) for r in chunk))
        batch = np.full((batch_size, width), model.manifest.pad_id, dtype=np.int64)
        for index, row in enumerate(chunk):
            batch[index, : len(row)] = row
        batches.append(batch)
    return batches


def time_batches(
    model: ServedModel, batches: list[np.ndarray], seconds: float
) -> tuple[list[float], float]:
    """Wall seconds per embed call, cycling through the batches for `seconds` after a warm-up,
    and the process CPU seconds they used (every TF thread): CPU time is what a busy machine
    distorts least."""
    assert model.backend is not None
    embed = model.backend.embed
    warm_until = time.perf_counter() + WARMUP_SECONDS
    calls = 0
    while calls < WARMUP_CALLS or time.perf_counter() < warm_until:
        embed(batches[calls % len(batches)])
        calls += 1
    durations: list[float] = []
    cpu_started = time.process_time()
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        started = time.perf_counter()
        embed(batches[len(durations) % len(batches)])
        durations.append(time.perf_counter() - started)
    return durations, time.process_time() - cpu_started


def measure(model: ServedModel, sentences: list[str], seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in BATCH_SIZES:
        durations, cpu_s = time_batches(model, padded_batches(model, sentences, size), seconds)
        sentences_done = size * len(durations)
        results[str(size)] = {
            "calls": len(durations),
            "sentences_per_s": sentences_done / sum(durations),
            "p50_ms": statistics.median(durations) * 1000,
            "cpu_ms_per_sentence": cpu_s * 1000 / sentences_done,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per batch size")
    parser.add_argument("--sentences", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    registry, model = load_model(args.models_dir, args.model)
    try:
        sentences = model_sentences(args.model, args.sentences, args.models_dir)
        batches = measure(model, sentences, args.seconds)
        intra, inter = registry.intra, registry.inter
    finally:
        registry.close()
    print(json.dumps({"model": args.model, "intra": intra, "inter": inter, "batches": batches}))


if __name__ == "__main__":
    main()
