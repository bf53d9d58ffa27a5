"""Prometheus metrics, correct across gunicorn workers (prometheus_client multiprocess mode).

`sentserve serve` sets PROMETHEUS_MULTIPROC_DIR before anything imports prometheus_client;
without it (tests, `run`) the metrics live in this process only.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

REQUESTS = Counter(
    "sentserve_requests", "HTTP requests answered", ["route", "model", "status", "client"]
)
REQUEST_SECONDS = Histogram(
    "sentserve_request_seconds",
    "Time from request to answer",
    ["route", "model"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "sentserve_in_flight_requests", "Requests being answered now", multiprocess_mode="livesum"
)
QUEUE_SECONDS = Histogram(
    "sentserve_queue_seconds",
    "Time a request waited for its batch",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TOKENIZE_SECONDS = Histogram(
    "sentserve_tokenization_seconds",
    "Time to tokenize one request",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "sentserve_inference_seconds",
    "Time of one batch inference call",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SENTENCES = Histogram(
    "sentserve_batch_sentences", "Sentences per inference call", ["model"], buckets=BATCH_BUCKETS
)
QUEUE_DEPTH = Gauge(
    "sentserve_queue_depth", "Sentences waiting for a batch", ["model"], multiprocess_mode="livesum"
)
MODEL_READY = Gauge(
    "sentserve_model_ready",
    "1 for the model's current status (loading, ready, failed or disabled), 0 for the others",
    ["model", "status"],
    multiprocess_mode="livemax",
)
SENTENCES = Counter("sentserve_sentences", "Sentences embedded", ["model"])
TOKENS = Counter("sentserve_tokens", "Tokens fed to the model", ["model"])
OOV_TOKENS = Counter("sentserve_oov_tokens", "Tokens unknown to the vocabulary", ["model"])


def batch_observer(model: str) -> Callable[[int, float, int], None]:
    """The batcher's hook: one call per inference batch, when the queue depth changes most."""
    sizes = BATCH_SENTENCES.labels(model)
    seconds = INFERENCE_SECONDS.labels(model)
    depth = QUEUE_DEPTH.labels(model)

    def observe(size: int, inference_s: float, queued: int) -> None:
        sizes.observe(size)
        seconds.observe(inference_s)
        depth.set(queued)

    return observe


def record_model_status(model: str, status: str) -> None:
    for known in ("loading", "ready", "failed", "disabled"):
        MODEL_READY.labels(model, known).set(1 if known == status else 0)


RATE_LIMIT_STORAGE_ERRORS = Counter(
    "sentserve_rate_limit_storage_errors",
    "Requests whose rate limit could not be checked (storage down); served when failing open",
)
