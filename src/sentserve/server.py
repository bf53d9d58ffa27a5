"""`sentserve serve`: the app under gunicorn's threaded workers.

Each worker builds its own app after the fork (TensorFlow is never imported by the master:
TF's thread pools do not survive a fork), starts accepting connections only once its
models are loaded and warmed up, and on SIGTERM finishes every accepted request and queued
batch.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from sentserve.settings import Settings

METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "threads": settings.threads,
        "worker_class": "sentserve.server.DrainingThreadWorker",
        "timeout": settings.timeout_s,
        "graceful_timeout": settings.graceful_timeout_s,
        "keepalive": settings.keepalive_s,
        "limit_request_line": 8190,
        "accesslog": None,  # sentserve logs one line per request itself
        "errorlog": "-",
        "loglevel": "warning" if settings.log_level in {"WARNING", "ERROR", "CRITICAL"} else "info",
        "preload_app": False,
        "proc_name": "sentserve",
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
    }


class DrainingThreadWorker(ThreadWorker):
    """gthread, except that SIGTERM loses no connection it has accepted.

    Plain gthread leaves its loop at once on SIGTERM and drops connections it accepted but
    had not read yet (clients see a reset). Here SIGTERM starts a drain instead: take what
    is already waiting on the listeners, close them (new clients are refused, not reset),
    answer every open connection with `Connection: close`, then leave the loop.
    It also starts serving only once its models are loaded (see `load_wsgi`).
    """

    sockets: list[Any]
    _drain_deadline: float | None = None

    def load_wsgi(self) -> None:
        """Accept connections only once this worker's models are loaded and warmed up.

        With several workers, a worker still loading would answer 503 to the clients that
        reach it while /readyz, answered by another worker, says 200. Until every worker is
        up, connections wait in the master's listen backlog instead. The models load in a
        background thread, so this loop keeps gunicorn's heartbeat alive however long it takes.
        """
        super().load_wsgi()
        registry = self.wsgi.extensions["sentserve"].registry
        while not registry.wait_loaded(timeout=1.0) and self._drain_deadline is None:
            self.notify()  # SIGTERM while loading: stop waiting, the drain then exits at once

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._drain_deadline is None:
            self._drain_deadline = time.monotonic() + self.cfg.graceful_timeout

    def notify(self) -> None:
        """Called by gthread's loop on every turn, in the loop's own thread."""
        super().notify()
        if self._drain_deadline is None:
            return
        if self.sockets:
            for listener in self.sockets:
                self._accept_waiting(listener)
                self.poller.unregister(listener)
                listener.close()
            self.sockets = []
            self.cfg.set("keepalive", 0)  # each connection closes after its answer
        if self.nr_conns == 0 or time.monotonic() > self._drain_deadline:
            self.alive = False

    def _accept_waiting(self, listener: Any) -> None:
        server = listener.getsockname()
        while True:
            before = self.nr_conns
            self.accept(server, listener)  # non-blocking; swallows EAGAIN
            if self.nr_conns == before:
                return


def _worker_exit(server: Any, worker: Any) -> None:
    """gunicorn has answered every accepted request; finish queued batches, free sessions."""
    app = getattr(worker, "wsgi", None)
    if app is not None and "sentserve" in getattr(app, "extensions", {}):
        app.extensions["sentserve"].registry.close()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class SentserveServer(BaseApplication):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from sentserve.api.app import create_app  # in the worker, after the fork

        return create_app(self.settings, load_in_background=True, workers=self.settings.workers)


def prepare_metrics_dir() -> Path:
    """Multiprocess metrics need a directory set before prometheus_client is imported. A
    previous run's counters are cleared from it: only prometheus_client's *.db files, since
    an operator's PROMETHEUS_MULTIPROC_DIR may hold other things."""
    configured = os.environ.get(METRICS_DIR_VARIABLE)
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="sentserve-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[METRICS_DIR_VARIABLE] = str(path)
    return path


def serve_forever(settings: Settings) -> None:
    prepare_metrics_dir()
    SentserveServer(settings).run()
