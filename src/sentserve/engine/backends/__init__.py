"""One small interface over every model format; a new format is one new file here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as TF Serving's metadata describes it: name, dtype, shape (-1 = any)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    inputs: dict[str, TensorInfo] = field(default_factory=dict)
    outputs: dict[str, TensorInfo] = field(default_factory=dict)
    method_name: str = "tensorflow/serving/predict"


class Backend(Protocol):
    """A loaded model: `embed` maps a padded id matrix [n, length] (or n strings) to float32 [n, d].

    `embed` is called from the model's batching thread and may also be called from others:
    implementations are thread-safe.
    """

    format: str
    input_kind: Literal["ids", "text"]
    input_length: int | None  # fixed id length, or None when any length is accepted
    dimensions: int
    embedding_rows: int | None  # rows of the embedding table, when it can be read
    signature: Signature

    def embed(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def shape_of(dims: list[int | None] | None) -> tuple[int, ...]:
    """A static shape with unknown dimensions as -1, as TF Serving prints them."""
    return tuple(-1 if dim is None else int(dim) for dim in dims or [])
