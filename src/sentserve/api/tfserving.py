"""TensorFlow Serving's REST API, so TF Serving clients work unchanged: model status, metadata
and `:predict` under `/v1/models/<name>[/versions/<version>]`.

An instance is either a list of token ids (the raw input tensor, exactly what TF Serving takes
for the classic models) or a string: our addition, tokenized as the model's manifest says and
embedded through `embed_sentences`, the path every dialect shares. Id rows may be ragged
(sentserve pads them); whole-number floats count as ids, as the classic float input took them.
Errors are TF Serving's `{"error": "message"}`, with its messages where it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from flask import Blueprint, Response, request
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sentserve.api.encoding import json_response
from sentserve.api.inference import embed_sentences, embed_token_ids
from sentserve.api.problems import Problem, register_dialect
from sentserve.api.state import server_state
from sentserve.engine.backends import Backend, TensorInfo
from sentserve.engine.errors import ModelNotReady, SentenceTooLong
from sentserve.engine.model import ModelStatus, ServedModel, version_folder

BLUEPRINT = "tfserving"
tfserving = Blueprint(BLUEPRINT, __name__)
SERVING_DEFAULT = "serving_default"

# Our model status as TF Serving's (state, error_code).
_STATES = {
    ModelStatus.READY: ("AVAILABLE", "OK"),
    ModelStatus.LOADING: ("LOADING", "OK"),
    ModelStatus.FAILED: ("END", "UNKNOWN"),
    ModelStatus.DISABLED: ("END", "FAILED_PRECONDITION"),
}


def _token_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"token ids are numbers, not {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"token ids are whole numbers, not {value}")
    return int(value)


def _instance(value: object) -> str | list[int]:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_token_id(item) for item in value]
    raise ValueError("each instance is a string (text) or a list of token ids")


Instance = Annotated[str | list[int], PlainValidator(_instance)]


@dataclass(frozen=True)
class PredictContext:
    """What a predict body is checked against: the settings' limits and the served model."""

    max_items: int
    max_chars: int
    signatures: frozenset[str]
    input_names: frozenset[str]


class PredictRequest(BaseModel):
    """`instances` (row format) or `inputs` (columnar: a list, or {input name: list})."""

    model_config = ConfigDict(extra="forbid")

    signature_name: StrictStr | None = None
    instances: list[Instance] | None = None
    inputs: list[Instance] | None = None

    @field_validator("signature_name")
    @classmethod
    def _known_signature(cls, value: str, info: ValidationInfo) -> str:
        context = info.context
        if value and isinstance(context, PredictContext) and value not in context.signatures:
            raise ValueError(f'Serving signature name: "{value}" not found in signature def')
        return value

    @field_validator("inputs", mode="before")
    @classmethod
    def _column(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value
        names = info.context.input_names if isinstance(info.context, PredictContext) else None
        if len(value) != 1:
            raise ValueError("as an object, takes exactly one key: the model's input")
        ((key, column),) = value.items()
        if names is not None and key not in names:
            raise ValueError(f"'{key}' is not an input of the model")
        return column

    @model_validator(mode="after")
    def _rows(self, info: ValidationInfo) -> PredictRequest:
        if self.instances is not None and self.inputs is not None:
            raise ValueError(
                "Not formatted correctly expecting only one of 'inputs' or 'instances' keys"
                " to exist"
            )
        if self.instances is None and self.inputs is None:
            raise ValueError("Missing 'inputs' or 'instances' key")
        key, rows = self.key, self.rows
        if not rows:
            raise ValueError(f"No values in '{key}' array")
        if len({isinstance(row, str) for row in rows}) > 1:
            raise ValueError(
                f"'{key}' mixes strings (text) and lists of token ids; send one kind per request"
            )
        context = info.context
        if isinstance(context, PredictContext):
            if len(rows) > context.max_items:
                raise ValueError(
                    f"'{key}' has {len(rows)} values; the limit is {context.max_items}"
                )
            for index, row in enumerate(rows):
                if isinstance(row, str) and len(row) > context.max_chars:
                    raise ValueError(
                        f"{key}[{index}] has {len(row)} characters; the limit is"
                        f" {context.max_chars}"
                    )
        return self

    @property
    def key(self) -> str:
        return "instances" if self.instances is not None else "inputs"

    @property
    def rows(self) -> list[str | list[int]]:
        return self.instances if self.instances is not None else self.inputs or []


@tfserving.get("/v1/models/<name>")
@tfserving.get("/v1/models/<name>/versions/<int:version>")
def status(name: str, version: int | None = None) -> Response:
    """The model's one version and its state; a failed model says why, as TF Serving does."""
    model = _served(name, version)
    state, code = _STATES[model.status]
    message = (model.reason or "") if code != "OK" else ""
    entry = {
        "version": str(_version(model)),
        "state": state,
        "status": {"error_code": code, "error_message": message},
    }
    return json_response({"model_version_status": [entry]})


@tfserving.get("/v1/models/<name>/metadata")
@tfserving.get("/v1/models/<name>/versions/<int:version>/metadata")
def metadata(name: str, version: int | None = None) -> Response:
    """The serving signature: each input and output tensor's dtype and shape."""
    model = _served(name, version)
    backend = _backend(model)
    signature = backend.signature
    definition = {
        "inputs": {key: _tensor(info) for key, info in signature.inputs.items()},
        "outputs": {key: _tensor(info) for key, info in signature.outputs.items()},
        "method_name": signature.method_name,
    }
    return json_response(
        {
            "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
            "metadata": {
                "signature_def": {"signature_def": {model.manifest.signature: definition}}
            },
        }
    )


@tfserving.post("/v1/models/<name>:predict")
@tfserving.post("/v1/models/<name>/versions/<int:version>:predict")
def predict(name: str, version: int | None = None) -> Response:
    """`{"predictions": [...]}` for `instances`, `{"outputs": [...]}` for `inputs`."""
    model = _served(name, version)
    backend = _backend(model)
    settings = server_state().settings
    inputs = backend.signature.inputs  # named by signature key or by tensor name
    context = PredictContext(
        settings.max_sentences,
        settings.max_sentence_chars,
        frozenset({SERVING_DEFAULT, model.manifest.signature}),
        frozenset({*inputs, *(info.name for info in inputs.values())}),
    )
    # TF Serving reads the body as JSON whatever its Content-Type (its docs post with `curl -d`).
    body = _validated(request.get_json(force=True), context)
    rows = body.rows
    texts = [row for row in rows if isinstance(row, str)]
    if texts:
        vectors = embed_sentences(name, texts)[1].vectors
    else:
        ids = [row for row in rows if isinstance(row, list)]
        try:
            vectors = embed_token_ids(name, ids)
        except SentenceTooLong as exc:  # its message suggests `truncate`, which TF Serving lacks
            raise Problem(
                400,
                "invalid-argument",
                f"instance {exc.index} has {exc.tokens} token ids; the model takes at most"
                f" {exc.limit}",
            ) from None
    key = "predictions" if body.instances is not None else "outputs"
    return json_response({key: vectors})


def _validated(body: Any, context: PredictContext) -> PredictRequest:
    try:
        return PredictRequest.model_validate(body, context=context)
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            messages.append(f"{where}: {message}" if where else message)
        raise Problem(400, "invalid-argument", "; ".join(messages)) from None


def _version(model: ServedModel) -> int:
    """The version served; while loading, the one about to be (the highest version folder)."""
    if model.status is ModelStatus.LOADING and model.folder.is_dir():
        return version_folder(model.folder)[1]
    return model.version


def _served(name: str, version: int | None) -> ServedModel:
    """The model asked for, or TF Serving's 404 when the name or the version is not served."""
    model = server_state().registry.models.get(name)
    if model is None or (version is not None and version != _version(model)):
        request_spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise Problem(404, "model-not-found", f"Servable not found for request: {request_spec}")
    return model


def _backend(model: ServedModel) -> Backend:
    model.require_ready()
    if model.backend is None:  # closed between the check and here
        raise ModelNotReady(model.name, "closed", None)
    return model.backend


def _tensor(info: TensorInfo) -> dict[str, Any]:
    """A tensor as TF Serving prints it (sizes are strings: protobuf's int64 in JSON)."""
    return {
        "dtype": info.dtype,
        "tensor_shape": {
            "dim": [{"size": str(size), "name": ""} for size in info.shape],
            "unknown_rank": False,
        },
        "name": info.name,
    }


def render_error(problem: Problem) -> Response:
    """TF Serving's error shape; 422 (engine input errors) is its INVALID_ARGUMENT, a 400."""
    status = 400 if problem.status == 422 else problem.status
    return json_response({"error": problem.summary()}, status)


register_dialect(BLUEPRINT, render_error)
