"""The app factory: one Flask app, one model registry per process, every error as problem+json."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Flask, Request, Response
from flask.json.provider import DefaultJSONProvider
from flask_restx import Api
from flask_restx.representations import output_json
from werkzeug.exceptions import BadRequest, HTTPException

from sentserve import __version__
from sentserve.api.access import install_access_control
from sentserve.api.classic import add_classic_routes
from sentserve.api.native import add_native_routes
from sentserve.api.observability import install_observability
from sentserve.api.openai_compat import openai_compat
from sentserve.api.operations import operations
from sentserve.api.problems import PROBLEM_JSON, problem_response
from sentserve.api.schemas import declare_schemas
from sentserve.api.state import EXTENSION, ServerState
from sentserve.api.tfserving import tfserving
from sentserve.engine.registry import ModelRegistry
from sentserve.logs import configure_logging
from sentserve.settings import Settings

API_ROOT = "/api/v1"


class OrjsonProvider(DefaultJSONProvider):
    """Request bodies parsed by orjson, as answers are encoded by it (several times faster
    than the standard library on a body of many sentences)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


class ProblemRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """Say why the JSON is malformed (Flask only does so in debug mode)."""
        if e is None:  # wrong content type: Flask's own 415
            return super().on_json_loading_failed(e)
        raise BadRequest(f"malformed JSON: {e}")


class ProblemApi(Api):
    """flask-restx answers its own errors as `{"message": ...}`; ours are problem+json."""

    def handle_error(self, e: Exception) -> Response:
        return problem_response(e)


def create_app(
    settings: Settings,
    registry: ModelRegistry | None = None,
    load_in_background: bool = False,
    workers: int = 1,
) -> Flask:
    """Build the app. Without a registry, one is made and its models loaded (in a background
    thread when asked, so probes answer while TensorFlow loads). `workers` sizes TF's
    thread pools: the worker processes share the cores."""
    configure_logging(settings)
    app = Flask("sentserve", static_folder=None)
    app.request_class = ProblemRequest
    app.json = OrjsonProvider(app)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        RESTX_MASK_SWAGGER=False,
        ERROR_404_HELP=False,
        DEBUG=bool(settings.debug),
        TESTING=settings.profile == "testing",
    )
    if registry is None:
        registry = ModelRegistry(settings, workers=workers)
        registry.load_all(background=load_in_background)
    app.extensions[EXTENSION] = ServerState(settings, registry)

    blueprint = Blueprint("api_v1", __name__, url_prefix=API_ROOT)
    api = ProblemApi(
        blueprint,
        version=__version__,
        title="sentserve",
        description="Sentence embeddings from TensorFlow models: text in, vectors out.",
        doc="/",
    )
    api.representation(PROBLEM_JSON)(output_json)  # errors: listed in the document's `produces`
    schemas = declare_schemas(api, settings)
    add_native_routes(api, schemas)
    add_classic_routes(api, schemas, settings)
    app.register_blueprint(blueprint)
    app.register_blueprint(operations)
    app.register_blueprint(openai_compat)
    app.register_blueprint(tfserving)

    install_observability(app)
    install_access_control(app, settings)
    app.register_error_handler(HTTPException, problem_response)
    app.register_error_handler(Exception, problem_response)
    return app
