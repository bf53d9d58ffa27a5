"""TF1 checkpoints: `tensorflow_model.meta` plus a V1 single file or V2 `.index`/`.data-*`.

Each model gets its own `tf.Graph` and `Session`, so any number of them live in one process
while eager execution stays on for everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from sentserve.engine.backends import Signature, tensor_info
from sentserve.engine.errors import ModelLoadError, first_line
from sentserve.engine.manifest import CLASSIC_FEEDS, Manifest
from sentserve.engine.tensorflow_runtime import session_config, tensorflow

PREFIX = "tensorflow_model"
_GATHER_OPS = {"GatherV2", "Gather", "ResourceGather"}
_VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp"}


def checkpoint_files(folder: Path) -> tuple[str, list[str]] | None:
    """('v1'|'v2', the files holding the weights), or None when no checkpoint is there."""
    if (folder / f"{PREFIX}.index").is_file():
        return "v2", sorted(p.name for p in folder.glob(f"{PREFIX}.data-*"))
    if (folder / PREFIX).is_file():
        return "v1", [PREFIX]
    return None


class CheckpointBackend:
    input_kind: Literal["ids", "text"] = "ids"

    def __init__(self, folder: Path, manifest: Manifest, intra: int, inter: int) -> None:
        tf = tensorflow()
        found = checkpoint_files(folder)
        if found is None:
            raise ModelLoadError(f"no {PREFIX} checkpoint (V1 file or V2 .index) in {folder.name}")
        version, weight_files = found
        if version == "v2" and not weight_files:
            raise ModelLoadError(f"{PREFIX}.index has no {PREFIX}.data-* file beside it")
        self.format = f"tf1-checkpoint-{version}"
        self.graph = tf.Graph()
        with self.graph.as_default():
            try:
                saver = tf.compat.v1.train.import_meta_graph(
                    str(folder / f"{PREFIX}.meta"), clear_devices=True
                )
            except Exception as exc:  # protobuf and TF raise several unrelated types here
                raise ModelLoadError(f"{PREFIX}.meta is not a readable meta graph: {exc}") from None
            if saver is None:
                raise ModelLoadError(f"{PREFIX}.meta holds no variables to restore")
            self.input = self._tensor(manifest.input)
            self.output = self._tensor(manifest.output)
            self.feeds = self._feeds(manifest.feeds)
            self.session = tf.compat.v1.Session(
                graph=self.graph, config=session_config(intra, inter)
            )
            try:
                saver.restore(self.session, str(folder / PREFIX))
            except Exception as exc:
                self.session.close()
                raise ModelLoadError(
                    f"{', '.join(weight_files)} is truncated or corrupt ({first_line(exc)})"
                ) from None
        self.graph.finalize()  # read-only from here: safe to run from many threads
        try:
            self._check_tensors()
            self.input_dtype = self.input.dtype.as_numpy_dtype
            self.input_length: int | None = self.input.shape.as_list()[1]
            self.embedding_rows = self._embedding_rows()
            self.dimensions = self._dimensions()
        except Exception:
            self.session.close()  # a model that fails validation must not keep its weights
            raise
        self.signature = Signature(
            inputs={"input": tensor_info(self.input.name, self.input.dtype, self.input.shape)},
            outputs={
                "embedding": tensor_info(self.output.name, self.output.dtype, self.output.shape)
            },
        )

    def _tensor(self, name: str) -> Any:
        try:
            return self.graph.get_tensor_by_name(name)
        except (KeyError, ValueError):
            raise ModelLoadError(f"tensor '{name}' not in graph") from None

    def _feeds(self, configured: dict[str, float | int | bool] | None) -> dict[Any, Any]:
        if configured is not None:
            return {self._tensor(name): value for name, value in configured.items()}
        names = {op.name for op in self.graph.get_operations()}
        return {
            self._tensor(name): value
            for name, value in CLASSIC_FEEDS.items()
            if name.split(":")[0] in names
        }

    def _check_tensors(self) -> None:
        dtype, rank = self.input.dtype, self.input.shape.rank
        if not (dtype.is_integer or dtype.is_floating) or rank != 2:
            raise ModelLoadError(
                f"input '{self.input.name}' is {dtype.name} of rank {rank};"
                " expected a rank-2 integer or float tensor of token ids"
            )
        dtype, rank = self.output.dtype, self.output.shape.rank
        if not dtype.is_floating or rank != 2:
            raise ModelLoadError(
                f"output '{self.output.name}' is {dtype.name} of rank {rank};"
                " expected a rank-2 float tensor [batch, dimensions]"
            )

    def _dimensions(self) -> int:
        static = self.output.shape.as_list()[1]
        if static is not None:
            return int(static)
        probe = np.zeros((1, self.input_length or 1), dtype=np.int64)
        return int(self.embed(probe).shape[1])

    def _embedding_rows(self) -> int | None:
        """Rows of the table the input ids index, when exactly one variable is gathered from."""
        rows: set[int] = set()
        for op in self.graph.get_operations():
            if op.type not in _GATHER_OPS:
                continue
            source = op.inputs[0].op
            while source.type in {"Identity", "ReadVariableOp"} and source.inputs:
                source = source.inputs[0].op
            if source.type in _VARIABLE_OPS:
                shape = source.get_attr("shape")
                if shape.dim:
                    rows.add(int(shape.dim[0].size))
        return rows.pop() if len(rows) == 1 else None

    def embed(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input: batch.astype(self.input_dtype, copy=False), **self.feeds}
        result = self.session.run(self.output, feed_dict=feed)
        return np.asarray(result, dtype=np.float32)

    def close(self) -> None:
        self.session.close()
