"""Dynamic micro-batching: sentences from concurrent requests share one inference call.

One runner thread per model takes queued requests until `max_batch_size` sentences are
gathered or `max_wait_ms` has passed since the first one arrived. A request that arrives
while the model is idle and alone runs at once: batching never adds latency at low load.
The queue is bounded (`max_queued_sentences`): a full queue refuses new work at once
(backpressure) rather than growing memory and timing out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sentserve.engine.errors import InvalidInput, ModelNotReady, QueueFull

log = logging.getLogger(__name__)
Row = Sequence[int] | str
RunBatch = Callable[[list[Row]], np.ndarray]
# (sentences in the batch, seconds of inference, sentences still queued): one call per batch.
BatchHook = Callable[[int, float, int], None]


@dataclass
class Ticket:
    """One submitted request; `result()` blocks until every sentence has its vector."""

    size: int
    enqueued: float = field(default_factory=time.monotonic)
    vectors: np.ndarray | None = None
    error: BaseException | None = None
    queue_s: float = 0.0
    inference_s: float = 0.0
    _remaining: int = 0
    _done: threading.Event = field(default_factory=threading.Event)

    def result(self, timeout: float | None = None) -> np.ndarray:
        if not self._done.wait(timeout):
            raise TimeoutError("the batch did not finish in time")
        if self.error is not None:
            raise self.error
        assert self.vectors is not None
        return self.vectors

    def _deliver(self, start: int, vectors: np.ndarray, queue_s: float, inference_s: float) -> None:
        if self.vectors is None:
            self.vectors = np.empty((self.size, vectors.shape[1]), dtype=np.float32)
        self.vectors[start : start + len(vectors)] = vectors
        self.queue_s = max(self.queue_s, queue_s)
        self.inference_s += inference_s
        self._remaining -= len(vectors)
        if self._remaining == 0:
            self._done.set()

    def _fail(self, error: BaseException) -> None:
        self.error = error
        self._done.set()


@dataclass
class _Chunk:
    """Up to max_batch_size rows of one ticket; a big request is split into several."""

    ticket: Ticket
    start: int
    rows: list[Row]


class MicroBatcher:
    def __init__(
        self,
        name: str,
        run: RunBatch,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        max_queued_sentences: int = 2048,
        group_by_length: bool = False,
        on_batch: BatchHook | None = None,
    ) -> None:
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.max_queued = max_queued_sentences
        self.group_by_length = group_by_length
        self._run_batch = run
        self._on_batch = on_batch
        self._chunks: deque[_Chunk] = deque()
        self._queued = 0
        self._idle_since = time.monotonic()
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queued

    def submit(self, rows: list[Row]) -> Ticket:
        """Queue rows for inference; raises QueueFull at once when the queue cannot take them."""
        ticket = Ticket(size=len(rows), _remaining=len(rows))
        if not rows:
            ticket.vectors = np.empty((0, 0), dtype=np.float32)
            ticket._done.set()
            return ticket
        with self._cond:
            if self._closed:
                raise ModelNotReady(self.name, "disabled", "the server is shutting down")
            if len(rows) > self.max_queued:
                raise InvalidInput(
                    f"{len(rows)} sentences can never fit model '{self.name}''s queue of"
                    f" {self.max_queued}; send fewer per request"
                )
            if self._queued + len(rows) > self.max_queued:
                raise QueueFull(self.name, self._queued, self.max_queued)
            for start in range(0, len(rows), self.max_batch_size):
                chunk_rows = rows[start : start + self.max_batch_size]
                self._chunks.append(_Chunk(ticket, start, chunk_rows))
            self._queued += len(rows)
            self._cond.notify()
        return ticket

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish everything already queued, stop the runner thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while (batch := self._collect()) is not None:
            try:
                self._run(batch)
            except Exception as exc:  # the runner must outlive anything: every request waits on it
                log.exception("model '%s': batch failed outside inference", self.name)
                for chunk in batch:
                    chunk.ticket._fail(exc)

    def _collect(self) -> list[_Chunk] | None:
        with self._cond:
            while not self._chunks and not self._closed:
                self._cond.wait()
            if not self._chunks:
                return None
            first = self._chunks.popleft()
            batch, size = [first], len(first.rows)
            # A request that queued behind a running batch means there is load: worth waiting
            # up to max_wait for others to fill the batch. Idle: go now. The wait runs from the
            # later of its arrival and the previous batch's end: under load the first request
            # arrived during that batch, and the clients it just answered need a moment to send
            # their next requests. Without that, two half-size groups alternate forever.
            under_load = first.ticket.enqueued < self._idle_since
            deadline = max(first.ticket.enqueued, self._idle_since) + self.max_wait_s
            while size < self.max_batch_size:
                if self._chunks:
                    if size + len(self._chunks[0].rows) > self.max_batch_size:
                        break
                    chunk = self._chunks.popleft()
                    batch.append(chunk)
                    size += len(chunk.rows)
                    continue
                remaining = deadline - time.monotonic()
                if not under_load or self._closed or remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._queued -= size
            return batch

    def _run(self, batch: list[_Chunk]) -> None:
        rows = [row for chunk in batch for row in chunk.rows]
        started = time.monotonic()
        try:
            vectors = self._infer(rows)
            if vectors.ndim != 2 or len(vectors) != len(rows):
                raise ValueError(
                    f"the model gave an array of shape {vectors.shape} for {len(rows)} sentences"
                )
        except Exception as exc:  # noqa: BLE001 - a failing batch fails only its own requests
            self._idle_since = time.monotonic()
            if len(batch) > 1:  # one bad request must not fail the others: run each alone
                for chunk in batch:
                    self._run([chunk])
                return
            batch[0].ticket._fail(exc)
            return
        # Idle from here, before any caller wakes: a client that sends its next request as soon
        # as this answer arrives must find the model idle, not queued behind a batch.
        self._idle_since = time.monotonic()
        inference_s = self._idle_since - started
        self._report(len(rows), inference_s)
        offset = 0
        for chunk in batch:
            n = len(chunk.rows)
            queue_s = started - chunk.ticket.enqueued
            chunk.ticket._deliver(chunk.start, vectors[offset : offset + n], queue_s, inference_s)
            offset += n

    def _report(self, size: int, inference_s: float) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(size, inference_s, self._queued)
        except Exception:  # a metrics hook must never stop the runner
            log.exception("batch hook of model '%s' failed", self.name)

    def _infer(self, rows: list[Row]) -> np.ndarray:
        if not self.group_by_length:
            return self._run_batch(rows)
        groups = length_groups(rows)
        if len(groups) <= 1:
            return self._run_batch(rows)
        parts = [(indices, self._run_batch([rows[i] for i in indices])) for indices in groups]
        vectors = np.empty((len(rows), parts[0][1].shape[1]), dtype=np.float32)
        for indices, part in parts:
            vectors[indices] = part
        return vectors


# Fixed cost of one inference call per time step, in rows: a call with r rows padded to
# length L costs about (r + CALL_COST_ROWS) * L. Measured on the demo LSTM, where a scan
# step costs about as much as 16 extra rows in it.
CALL_COST_ROWS = 16


def length_groups(rows: list[Row], call_cost_rows: int = CALL_COST_ROWS) -> list[list[int]]:
    """Row indices in groups of similar length, one inference call each, chosen to minimise
    padding plus per-call overhead: sentences of 5 to 25 words stay one call, while a few
    very long ones are split off so that short ones do not pay for their padding."""
    by_length: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_length.setdefault(max(len(row), 1), []).append(index)
    lengths = sorted(by_length)
    counts = [len(by_length[length]) for length in lengths]
    # best[end]: least cost of the lengths before `end`; cut[end]: where its last group starts.
    best = [0] + [0] * len(lengths)
    cut = [0] * (len(lengths) + 1)
    for end in range(1, len(lengths) + 1):
        rows_in_group, best[end] = 0, -1
        for start in range(end - 1, -1, -1):
            rows_in_group += counts[start]
            cost = best[start] + (rows_in_group + call_cost_rows) * lengths[end - 1]
            if best[end] < 0 or cost < best[end]:
                best[end], cut[end] = cost, start
    groups: list[list[int]] = []
    end = len(lengths)
    while end > 0:
        start = cut[end]
        groups.append([i for length in lengths[start:end] for i in by_length[length]])
        end = start
    return groups[::-1]
