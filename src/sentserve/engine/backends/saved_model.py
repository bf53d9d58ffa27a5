"""TF2 SavedModels, called eagerly through one signature: token ids in, or raw strings in
(TF-Hub style, tokenized inside the graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from sentserve.engine.backends import Signature, tensor_info
from sentserve.engine.errors import ModelLoadError, first_line
from sentserve.engine.manifest import Manifest
from sentserve.engine.tensorflow_runtime import tensorflow


class SavedModelBackend:
    format = "saved-model"

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        tf = tensorflow()
        try:
            self.loaded = tf.saved_model.load(str(folder))
        except Exception as exc:  # TF raises many types for a broken SavedModel
            raise ModelLoadError(f"saved_model.pb could not be loaded: {first_line(exc)}") from None
        signatures = dict(self.loaded.signatures)
        if manifest.signature not in signatures:
            raise ModelLoadError(
                f"signature '{manifest.signature}' not in SavedModel"
                f" (it has: {', '.join(sorted(signatures)) or 'none'})"
            )
        self.function = signatures[manifest.signature]
        inputs = self.function.structured_input_signature[1]
        if len(inputs) != 1:
            raise ModelLoadError(
                f"signature '{manifest.signature}' takes {len(inputs)} inputs; sentserve needs one"
            )
        self.input_name, spec = next(iter(inputs.items()))
        self.input_dtype = spec.dtype
        self.input_kind: Literal["ids", "text"] = self._input_kind(spec)
        self.input_length: int | None = (
            spec.shape.as_list()[1] if self.input_kind == "ids" else None
        )
        outputs = self.function.structured_outputs
        self.output_name = self._output_name(outputs, manifest)
        output_spec = outputs[self.output_name]
        if not output_spec.dtype.is_floating or output_spec.shape.rank != 2:
            raise ModelLoadError(
                f"output '{self.output_name}' is {output_spec.dtype.name} of rank"
                f" {output_spec.shape.rank}; expected a rank-2 float tensor"
            )
        self.embedding_rows = self._embedding_rows()
        self.signature = Signature(
            inputs={self.input_name: tensor_info(self.input_name, spec.dtype, spec.shape)},
            outputs={
                self.output_name: tensor_info(
                    self.output_name, output_spec.dtype, output_spec.shape
                )
            },
        )
        static = output_spec.shape.as_list()[1]
        self.dimensions = (
            int(static) if static is not None else int(self.embed(self._probe()).shape[1])
        )

    @staticmethod
    def _input_kind(spec: Any) -> Literal["ids", "text"]:
        if spec.dtype.name == "string" and spec.shape.rank == 1:
            return "text"
        if (spec.dtype.is_integer or spec.dtype.is_floating) and spec.shape.rank == 2:
            return "ids"
        raise ModelLoadError(
            f"input is {spec.dtype.name} of rank {spec.shape.rank}; sentserve takes a rank-1 string"
            " tensor (text) or a rank-2 integer tensor (token ids)"
        )

    @staticmethod
    def _output_name(outputs: dict[str, Any], manifest: Manifest) -> str:
        if "output" in manifest.model_fields_set:
            if manifest.output not in outputs:
                raise ModelLoadError(
                    f"output '{manifest.output}' not in signature (it has: {', '.join(outputs)})"
                )
            return manifest.output
        if len(outputs) != 1:
            raise ModelLoadError(
                f"signature has {len(outputs)} outputs ({', '.join(outputs)}); name one as"
                " `output` in the manifest"
            )
        return next(iter(outputs))

    def _embedding_rows(self) -> int | None:
        variables = self.function.variables  # what the signature captures
        tables = [v for v in variables if "embedding" in v.name and v.shape.rank == 2]
        return int(tables[0].shape[0]) if len(tables) == 1 else None

    def _probe(self) -> np.ndarray:
        if self.input_kind == "text":
            return np.array(["probe"], dtype=object)
        return np.zeros((1, self.input_length or 1), dtype=np.int64)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        tf = tensorflow()
        tensor = tf.constant(batch, dtype=self.input_dtype)
        result = self.function(**{self.input_name: tensor})[self.output_name]
        return np.asarray(result.numpy(), dtype=np.float32)

    def close(self) -> None:
        self.loaded = None
