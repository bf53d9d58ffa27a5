"""One small interface over every model format; a new format is one new file here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

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


def tensor_info(name: str, dtype: Any, shape: Any) -> TensorInfo:
    """A tensor as TF Serving's metadata prints it: TensorFlow's DataType name (float32 is
    DT_FLOAT) and the static shape with unknown dimensions as -1."""
    from tensorflow.core.framework import types_pb2

    dims = shape.as_list() if shape.rank is not None else []
    return TensorInfo(
        name,
        types_pb2.DataType.Name(dtype.as_datatype_enum),
        tuple(-1 if dim is None else int(dim) for dim in dims),
    )
