"""Routes for operators and orchestrators, outside the API root: probes, metrics, docs."""

from __future__ import annotations

import os

from flask import Blueprint, Response, redirect
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from werkzeug.wrappers import Response as WerkzeugResponse

from sentserve.api.encoding import json_response
from sentserve.api.problems import Problem
from sentserve.api.state import server_state

operations = Blueprint("operations", __name__)


@operations.get("/healthz")
def healthz() -> Response:
    """The process answers; says nothing about models (that is /readyz)."""
    return json_response({"status": "ok"})


@operations.get("/readyz")
def readyz() -> Response:
    """200 when the models needed (all, or any with READY_WHEN=any) are ready, else 503."""
    registry = server_state().registry
    if not registry.enabled():  # an empty models folder, or every model disabled
        raise Problem(
            503,
            "not-ready",
            "no model is enabled: check MODELS_DIR and MODEL_NAMES",
            headers={"Retry-After": "5"},
        )
    waiting = registry.not_ready()
    models = {m.name: m.status.value for m in registry.models.values()}
    if waiting:
        raise Problem(
            503,
            "not-ready",
            f"{len(waiting)} model(s) not ready: {', '.join(m.name for m in waiting)}",
            headers={"Retry-After": "5"},
            extra={
                "models": [
                    {"name": m.name, "status": m.status.value, "reason": m.reason} for m in waiting
                ]
            },
        )
    return json_response({"status": "ready", "models": models})


@operations.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; summed over every gunicorn worker in multiprocess mode."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)


@operations.get("/docs")
def docs() -> WerkzeugResponse:
    return redirect("/api/v1/", code=302)
