"""Offline embedding for `sentserve embed`: many sentences through one model, to a file."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import click
import numpy as np
import orjson

from sentserve.engine.model import ServedModel


def embed_in_slices(
    model: ServedModel, sentences: list[str], batch_size: int, progress: bool
) -> np.ndarray:
    """Embed in slices of batch_size so memory stays flat; a progress bar for files."""
    starts = range(0, len(sentences), batch_size)
    bar: AbstractContextManager[Iterable[int]] = (
        click.progressbar(starts, label=f"embedding {len(sentences)} sentences", file=sys.stderr)
        if progress
        else nullcontext(starts)
    )
    with bar as batches:
        parts = [model.embed(sentences[start : start + batch_size]).vectors for start in batches]
    return np.concatenate(parts)


def write_vectors(vectors: np.ndarray, sentences: list[str], output: Path | None) -> None:
    """`.npy` (one float32 matrix), `.jsonl` (one {"text", "embedding"} per line), or stdout."""
    if output is not None and output.suffix == ".npy":
        np.save(output, vectors.astype(np.float32))
        return
    lines = b"".join(
        orjson.dumps({"text": text, "embedding": vector}, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        for text, vector in zip(sentences, vectors, strict=True)
    )
    if output is None:
        sys.stdout.buffer.write(lines)
    else:
        output.write_bytes(lines)
