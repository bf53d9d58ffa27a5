"""The one logging setup: console and/or a rotating file, text or JSON lines, per settings.

Request lines carry their fields as `extra` (request_id, method, path, status, model,
sentences, duration_ms, client): JSON output gets them as keys, text output appends them.
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler

from pythonjsonlogger.orjson import OrjsonFormatter

from sentserve.settings import Settings

REQUEST_FIELDS = ("request_id", "method", "path", "status", "model", "sentences", "duration_ms")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class TextFormatter(logging.Formatter):
    """Human lines, with any `extra` fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None}
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        return line


def configure_logging(settings: Settings) -> None:
    """Replace the handlers of the `sentserve` logger; safe to call more than once."""
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = OrjsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
        )
    else:
        formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = []
    if settings.console_log:
        handlers.append(logging.StreamHandler(sys.stderr))
    if settings.log_file is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            RotatingFileHandler(
                settings.log_file,
                maxBytes=settings.log_max_bytes,
                backupCount=settings.log_backups,
                encoding="utf-8",
            )
        )
    logger = logging.getLogger("sentserve")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    if not handlers:
        logger.addHandler(logging.NullHandler())
    logger.setLevel(settings.log_level or "INFO")
    logger.propagate = False
