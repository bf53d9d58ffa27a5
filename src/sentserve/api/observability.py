"""Per request: an id (taken from X-Request-ID or made), one log line, metrics, timing headers.

Sentence text never reaches these lines; only counts do.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from sentserve import metrics
from sentserve.api.state import server_state

log = logging.getLogger("sentserve.requests")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _start() -> None:
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
    g.started = time.perf_counter()
    metrics.IN_FLIGHT.inc()


def _finish(response: Response) -> Response:
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule else "unmatched"
    # The model named in the path, or in the body (OpenAI); only served names, so an
    # unknown name cannot grow the metrics' label set.
    name = g.get("model") or (request.view_args or {}).get("name")
    model = name if name in server_state().registry.models else None
    client = g.get("client", "anonymous")
    response.headers["X-Request-ID"] = g.get("request_id", "")
    for header, seconds in g.get("timings", {}).items():
        response.headers[header] = f"{seconds * 1000:.3f}"
    response.headers["X-Total-Time"] = f"{elapsed * 1000:.3f}"
    metrics.REQUESTS.labels(route, model or "", str(response.status_code), client).inc()
    metrics.REQUEST_SECONDS.labels(route, model or "").observe(elapsed)
    log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "request_id": g.get("request_id"),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "model": model,
            "sentences": g.get("sentences"),
            "duration_ms": round(elapsed * 1000, 3),
            "client": client,
        },
    )
    return response


def _leave(_: BaseException | None) -> None:
    if "started" in g:
        metrics.IN_FLIGHT.dec()


def install_observability(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_leave)
