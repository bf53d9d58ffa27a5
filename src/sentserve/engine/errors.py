"""Engine errors. Each carries what a caller needs to answer a client; none knows about HTTP."""

from __future__ import annotations

# TensorFlow's graph errors open with lines that say where, not what ("Graph execution error:",
# "Detected at node ...", "Node: ...", indented stack frames); the cause comes after them.
_TF_FRAMING = ("Graph execution error:", "Detected at node", "Node: ", "Original stack trace")


def first_line(error: BaseException) -> str:
    """The first line of an error's message that says what went wrong, for one-line reasons."""
    text = str(getattr(error, "message", None) or error)
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        if not line[0].isspace() and not line.startswith(_TF_FRAMING):
            return line.strip()
    return lines[0].strip() if lines else type(error).__name__


class EngineError(Exception):
    """Base class: `str(error)` is a message safe to show a client."""


class ModelNotFound(EngineError):
    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' does not exist")
        self.name = name


class ModelNotReady(EngineError):
    """The model exists but is loading, failed or disabled; `reason` says which and why."""

    def __init__(self, name: str, status: str, reason: str | None) -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"model '{name}' is {status}{detail}")
        self.name, self.status, self.reason = name, status, reason


class ModelLoadError(EngineError):
    """A model cannot serve; the message is the human reason shown in listings."""


class SentenceTooLong(EngineError):
    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(
            f"sentence {index} has {tokens} tokens, more than the model's limit of {limit}"
            " (send truncate=true to cut it)"
        )
        self.index, self.tokens, self.limit = index, tokens, limit


class QueueFull(EngineError):
    """Backpressure: the model's queue cannot take the request now; retry after a moment."""

    def __init__(self, name: str, queued: int, limit: int, retry_after_s: int = 1) -> None:
        super().__init__(
            f"model '{name}' has {queued} sentences queued (limit {limit}); retry shortly"
        )
        self.name, self.retry_after_s = name, retry_after_s


class ModelTimeout(EngineError):
    """The model did not answer in time (TIMEOUT_S); the request is given up, not the model."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"model '{name}' did not answer within {seconds:g} s; retry shortly")
        self.name = name


class InferenceFailed(EngineError):
    """TensorFlow raised while running one batch; only that batch's requests see this."""

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"model '{name}' failed to run this batch: {first_line(cause)}")
        self.name = name


class InvalidInput(EngineError):
    """Input the model cannot take (wrong kind, ragged ids, id out of range)."""
