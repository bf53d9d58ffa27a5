"""Who may call, how often, from which browser origins. Everything here is off by default.

Order matters and follows registration: the request id is set first (so a 401 carries it),
then the API key is checked (nothing else of a refused request is read, not even its body),
then Flask-Limiter counts the request against the key (or the client address).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, request
from flask_cors import CORS
from flask_limiter import HeaderNames, Limiter
from flask_limiter.util import get_remote_address
from limits.errors import StorageError
from werkzeug.middleware.proxy_fix import ProxyFix

from sentserve import metrics
from sentserve.api.problems import Problem
from sentserve.api_keys import KeyStore
from sentserve.settings import Settings

log = logging.getLogger(__name__)
ALWAYS_OPEN = {"operations.healthz", "operations.readyz"}
METRICS = {"operations.metrics"}
DOCS = {"api_v1.doc", "api_v1.root", "api_v1.specs", "restx_doc.static", "operations.docs"}
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-Queue-Time",
    "X-Tokenization-Time",
    "X-Inference-Time",
    "X-Total-Time",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
]


def install_access_control(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    if settings.keys_enabled:
        _require_keys(app, settings)
    if settings.rate_limit or settings.keys_enabled:  # a key may carry its own limit
        _limit_rates(app, settings)
    if settings.cors_origins:
        CORS(
            app,
            origins=settings.cors_origins,
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    app.after_request(_security_headers)


def _open_endpoints(settings: Settings) -> set[str]:
    return (
        ALWAYS_OPEN
        | (set() if settings.protect_metrics else METRICS)
        | (set() if settings.protect_docs else DOCS)
    )


def _require_keys(app: Flask, settings: Settings) -> None:
    store = KeyStore(settings.api_keys_file, [k.get_secret_value() for k in settings.api_keys])
    open_endpoints = _open_endpoints(settings)

    def authenticate() -> None:
        if request.method == "OPTIONS" or request.endpoint in open_endpoints:
            return  # CORS preflights carry no credentials by design
        key = request.headers.get("X-API-Key") or _bearer_token()
        entry = store.identify(key) if key else None
        if entry is None:
            detail = "wrong API key" if key else "an API key is required"
            raise Problem(
                401,
                "unauthorized",
                f"{detail}: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="sentserve"'},
            )
        g.client = entry.name
        g.client_rate_limit = entry.rate_limit

    app.before_request(authenticate)


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _limit_rates(app: Flask, settings: Settings) -> None:
    exempt = ALWAYS_OPEN | METRICS | DOCS
    default_limit = settings.rate_limit or ""
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    # Storage errors surface as limits' StorageError (a 503 when failing closed), and a dead
    # Redis must not hold a request for long.
    options: dict[str, Any] = {"wrap_exceptions": True}
    if redis_url:
        options |= {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    limiter = Limiter(
        key_func=_client_key,
        default_limits=[lambda: g.get("client_rate_limit") or default_limit],
        default_limits_cost=_sentence_cost if settings.rate_limit_per_sentence else 1,
        storage_uri=redis_url or "memory://",
        storage_options=options,
        strategy="fixed-window",
        key_prefix="sentserve",
        headers_enabled=True,
        header_name_mapping={
            HeaderNames.LIMIT: "RateLimit-Limit",
            HeaderNames.REMAINING: "RateLimit-Remaining",
            HeaderNames.RESET: "RateLimit-Reset",
            HeaderNames.RETRY_AFTER: "Retry-After",
        },
        swallow_errors=not settings.rate_limit_fail_closed,
    )
    limiter.request_filter(
        lambda: (
            request.method == "OPTIONS"
            or request.endpoint in exempt
            or not (g.get("client_rate_limit") or default_limit)
        )  # no limit for this client
    )
    app.after_request(_draft_rate_limit_headers)  # registered first, so it runs after the limiter's
    limiter.init_app(app)
    logging.getLogger("flask-limiter").addFilter(StorageOutageFilter())


def _draft_rate_limit_headers(response: Response) -> Response:
    """Flask-Limiter sends RateLimit-Reset as an epoch time and Retry-After on every answer;
    the IETF RateLimit draft wants seconds until reset, and Retry-After only where retrying
    later is the advice (429, 503)."""
    reset = response.headers.get("RateLimit-Reset")
    if reset is not None:
        response.headers["RateLimit-Reset"] = str(max(0, int(float(reset) - time.time())))
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def _client_key() -> str:
    client = g.get("client")
    return f"key:{client}" if client else f"address:{get_remote_address()}"


def _sentence_cost() -> int:
    """One unit per sentence, so a 256-sentence request costs what 256 single ones do."""
    body = request.get_json(force=True, silent=True)  # TF Serving bodies come untyped
    if not isinstance(body, dict):
        return 1
    for field in ("sentences", "input", "instances", "inputs"):
        items = body.get(field)
        if isinstance(items, list):
            return max(1, len(items))
    return 1


class StorageOutageFilter(logging.Filter):
    """Failing open, Flask-Limiter logs a traceback per request while Redis is down: count
    each in a metric and let one warning a minute through."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, StorageError):
            return True
        if record.getMessage().startswith("Failed to update rate limit headers"):
            return False  # the same outage, already counted for this request
        metrics.RATE_LIMIT_STORAGE_ERRORS.inc()
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        record.msg = f"rate limit storage unreachable, serving without limits: {error}"
        record.args, record.exc_info, record.exc_text = None, None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.endpoint != "restx_doc.static":  # answers are per request; assets may cache
        response.headers.setdefault("Cache-Control", "no-store")
    return response
