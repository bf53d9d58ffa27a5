"""MicroBatcher: merging, splitting back, limits, waiting, backpressure, failures, shutdown.

Unit tests run a plain numpy function whose vector for a row identifies that row; the last
tests push concurrent requests through a real TensorFlow model.
"""

from __future__ import annotations

import json
import random
import threading
import time

import numpy as np
import pytest

from sentserve.engine.batcher import MicroBatcher, length_groups
from sentserve.engine.errors import InvalidInput, ModelNotReady, QueueFull
from sentserve.engine.registry import ModelRegistry

TIMEOUT = 10  # seconds any single result may take before a test fails instead of hanging


def identify(rows):
    """[first id, length] per row: a vector says exactly which row it came from."""
    return np.array([[row[0] if len(row) else -1, len(row)] for row in rows], dtype=np.float32)


class Runner:
    """A run function that records each batch and can hold the first one until released."""

    def __init__(self, hold_first=False, fail_on=None):
        self.batches = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail_on = fail_on

    def __call__(self, rows):
        self.batches.append([list(row) for row in rows])
        self.started.set()
        assert self.release.wait(TIMEOUT)
        if self.fail_on is not None and any(self.fail_on in row for row in rows):
            raise ValueError(f"cannot embed id {self.fail_on}")
        return identify(rows)


@pytest.fixture
def make_batcher():
    made = []

    def make(run, **options):
        sizes = []
        options.setdefault("max_wait_ms", 2.0)
        batcher = MicroBatcher(
            "test", run, on_batch=lambda n, s, queued: sizes.append(n), **options
        )
        batcher.sizes = sizes
        made.append((batcher, run))
        return batcher

    yield make
    for batcher, run in made:
        if isinstance(run, Runner):
            run.release.set()
        batcher.close(timeout=TIMEOUT)


def wait_until(condition, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def submit_while_held(batcher, runner, requests):
    """Block the runner on a first one-row batch, queue `requests`, then release it."""
    first = batcher.submit([[-100]])
    assert runner.started.wait(TIMEOUT)
    tickets = [batcher.submit(rows) for rows in requests]
    runner.release.set()
    first.result(TIMEOUT)
    return tickets


def rows_for(request, size):
    return [[request * 1000 + j] for j in range(size)]


# --------------------------------------------------------------------------- merging


def test_requests_queued_behind_a_batch_are_merged(make_batcher):
    runner = Runner(hold_first=True)
    batcher = make_batcher(runner, max_batch_size=64)
    first = batcher.submit([[1]])
    assert runner.started.wait(TIMEOUT)
    results = {}

    def client(index):
        results[index] = batcher.submit(rows_for(index, 1)).result(TIMEOUT)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(1, 11)]
    for thread in threads:
        thread.start()
    wait_until(lambda: batcher.queued == 10)
    runner.release.set()
    for thread in threads:
        thread.join(TIMEOUT)
    first.result(TIMEOUT)
    assert batcher.sizes == [1, 10]
    assert sorted(row[0] for row in runner.batches[1]) == [i * 1000 for i in range(1, 11)]
    for index, vectors in results.items():
        np.testing.assert_array_equal(vectors, [[index * 1000, 1]])


def test_results_are_split_back_exactly_and_in_order(make_batcher):
    runner = Runner(hold_first=True)
    batcher = make_batcher(runner, max_batch_size=64)
    sizes = [3, 1, 7, 2, 5]
    tickets = submit_while_held(batcher, runner, [rows_for(i, n) for i, n in enumerate(sizes)])
    for index, (ticket, size) in enumerate(zip(tickets, sizes, strict=True)):
        vectors = ticket.result(TIMEOUT)
        assert vectors.shape == (size, 2)
        np.testing.assert_array_equal(vectors[:, 0], [index * 1000 + j for j in range(size)])
    assert batcher.sizes == [1, sum(sizes)]
    assert batcher.queued == 0


def test_max_batch_size_is_never_exceeded(make_batcher):
    runner = Runner(hold_first=True)
    batcher = make_batcher(runner, max_batch_size=8)
    generator = random.Random(7)
    sizes = [generator.randint(1, 8) for _ in range(30)]
    tickets = submit_while_held(batcher, runner, [rows_for(i, n) for i, n in enumerate(sizes)])
    for index, (ticket, size) in enumerate(zip(tickets, sizes, strict=True)):
        np.testing.assert_array_equal(
            ticket.result(TIMEOUT)[:, 0], [index * 1000 + j for j in range(size)]
        )
    assert max(batcher.sizes) <= 8
    assert sum(batcher.sizes) == 1 + sum(sizes)
    assert len(batcher.sizes) < 1 + len(sizes)  # some requests did share a batch


def test_request_bigger_than_max_batch_size_is_split_and_reassembled(make_batcher):
    runner = Runner()
    batcher = make_batcher(runner, max_batch_size=8)
    ticket = batcher.submit(rows_for(0, 25))
    vectors = ticket.result(TIMEOUT)
    np.testing.assert_array_equal(vectors[:, 0], list(range(25)))
    assert batcher.sizes == [8, 8, 8, 1]
    assert [batch[0][0] for batch in runner.batches] == [0, 8, 16, 24]


def test_chunks_of_a_big_request_share_batches_with_others(make_batcher):
    runner = Runner(hold_first=True)
    batcher = make_batcher(runner, max_batch_size=8)
    big, small = submit_while_held(batcher, runner, [rows_for(1, 12), rows_for(2, 3)])
    np.testing.assert_array_equal(big.result(TIMEOUT)[:, 0], [1000 + j for j in range(12)])
    np.testing.assert_array_equal(small.result(TIMEOUT)[:, 0], [2000, 2001, 2002])
    assert batcher.sizes == [1, 8, 7]  # 4 rows of the big request, then the small one


def test_empty_request_completes_at_once(make_batcher):
    runner = Runner()
    batcher = make_batcher(runner)
    assert batcher.submit([]).result(TIMEOUT).shape[0] == 0
    assert runner.batches == []


# --------------------------------------------------------------------------- waiting


def test_no_wait_when_idle(make_batcher):
    batcher = make_batcher(Runner(), max_wait_ms=500)
    for _ in range(5):  # the first request, and each one after the model went idle again
        started = time.monotonic()
        ticket = batcher.submit([[1]])
        ticket.result(TIMEOUT)
        assert time.monotonic() - started < 0.25
        assert ticket.queue_s < 0.25


def test_under_load_a_lone_follower_waits_at_most_max_wait(make_batcher):
    runner = Runner(hold_first=True)
    batcher = make_batcher(runner, max_wait_ms=100)
    (follower,) = submit_while_held(batcher, runner, [[[7]]])
    vectors = follower.result(TIMEOUT)
    waited = time.monotonic() - follower.enqueued
    np.testing.assert_array_equal(vectors, [[7, 1]])
    assert follower.queue_s >= 0.09  # it queued behind a batch: it waited for company...
    assert waited < 0.1 + 0.4  # ...but no longer than max_wait (plus scheduling slack)
    assert batcher.sizes == [1, 1]


def test_a_full_batch_does_not_wait(make_batcher):
    runner = Runner(hold_first=True)
    batcher = make_batcher(runner, max_batch_size=2, max_wait_ms=5000)
    (follower,) = submit_while_held(batcher, runner, [[[1]]])
    time.sleep(0.05)
    started = time.monotonic()
    batcher.submit([[2]]).result(TIMEOUT)  # fills the follower's batch: both go now
    assert time.monotonic() - started < 1.0
    follower.result(0)
    assert batcher.sizes == [1, 2]


# --------------------------------------------------------------------------- backpressure


def test_queue_full_is_raised_at_once(make_batcher):
    runner = Runner(hold_first=True)
    batcher = make_batcher(runner, max_queued_sentences=4)
    first = batcher.submit([[1]])
    assert runner.started.wait(TIMEOUT)  # running: no longer queued
    queued = batcher.submit(rows_for(1, 4))
    assert batcher.queued == 4
    started = time.monotonic()
    with pytest.raises(QueueFull) as raised:
        batcher.submit([[2]])
    assert time.monotonic() - started < 0.1
    assert "model 'test' has 4 sentences queued (limit 4)" in str(raised.value)
    assert raised.value.retry_after_s >= 1
    runner.release.set()
    first.result(TIMEOUT)
    assert queued.result(TIMEOUT).shape == (4, 2)
    assert batcher.submit([[3]]).result(TIMEOUT).shape == (1, 2)  # room again


def test_request_larger_than_the_queue_can_ever_hold_is_invalid_not_retryable(make_batcher):
    batcher = make_batcher(Runner(), max_queued_sentences=4, max_batch_size=2)
    with pytest.raises(InvalidInput, match="can never fit"):
        batcher.submit(rows_for(0, 5))
    assert batcher.queued == 0


# --------------------------------------------------------------------------- failures


def test_failing_batch_fails_only_its_own_tickets(make_batcher):
    runner = Runner(hold_first=True, fail_on=666)
    batcher = make_batcher(runner, max_batch_size=2)
    bad, good = submit_while_held(batcher, runner, [[[5], [666]], [[6], [7]]])
    with pytest.raises(ValueError, match="cannot embed id 666"):
        bad.result(TIMEOUT)
    np.testing.assert_array_equal(good.result(TIMEOUT)[:, 0], [6, 7])
    assert batcher.sizes == [1, 2]  # the failed batch is not reported as done
    assert batcher.submit([[8]]).result(TIMEOUT)[0, 0] == 8  # the runner lives on


def test_failure_in_one_chunk_fails_the_whole_request(make_batcher):
    runner = Runner(fail_on=666)
    batcher = make_batcher(runner, max_batch_size=2)
    ticket = batcher.submit([[1], [2], [666], [4]])
    with pytest.raises(ValueError):
        ticket.result(TIMEOUT)


# --------------------------------------------------------------------------- shutdown


def test_close_drains_queued_work(make_batcher):
    runner = Runner(hold_first=True)
    batcher = make_batcher(runner, max_batch_size=4)
    first = batcher.submit([[1]])
    assert runner.started.wait(TIMEOUT)
    tickets = [batcher.submit(rows_for(i, 3)) for i in range(1, 6)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    wait_until(lambda: batcher._closed)
    with pytest.raises(ModelNotReady, match="shutting down"):
        batcher.submit([[9]])
    runner.release.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    first.result(0)
    for index, ticket in enumerate(tickets, start=1):
        np.testing.assert_array_equal(ticket.result(0)[:, 0], [index * 1000 + j for j in range(3)])


def test_close_when_idle_stops_the_thread(make_batcher):
    batcher = make_batcher(Runner())
    batcher.close(timeout=TIMEOUT)
    assert not batcher._thread.is_alive()


# --------------------------------------------------------------------------- length groups


def test_length_groups_keep_similar_lengths_in_one_call():
    rows = [[1], [1] * 5, [1, 1], [1] * 3, [], [1] * 8, [1] * 4]
    assert length_groups(rows) == [[0, 4, 2, 3, 6, 1, 5]]
    assert length_groups([]) == []


def test_length_groups_split_off_a_few_long_rows():
    rows = [[1] * 5] * 60 + [[1] * 120] * 4
    assert length_groups(rows) == [list(range(60)), [60, 61, 62, 63]]


def test_length_groups_never_cost_more_than_one_call():
    rng = np.random.default_rng(7)
    for _ in range(50):
        rows = [[1] * int(n) for n in rng.integers(0, 80, size=int(rng.integers(1, 65)))]
        groups = length_groups(rows, call_cost_rows=16)
        assert sorted(i for group in groups for i in group) == list(range(len(rows)))

        assert sum(_call_cost(rows, g) for g in groups) <= _call_cost(rows, range(len(rows)))


def _call_cost(rows, group):
    return (len(group) + 16) * max(max(len(rows[i]), 1) for i in group)


def test_group_by_length_runs_each_group_and_restores_order(make_batcher):
    runner = Runner()
    batcher = make_batcher(runner, group_by_length=True)
    rows = [[10] * 200, [20], [30] * 2, [40] * 200, [50]]
    vectors = batcher.submit(rows).result(TIMEOUT)
    np.testing.assert_array_equal(vectors, [[10, 200], [20, 1], [30, 2], [40, 200], [50, 1]])
    assert sorted(len(batch) for batch in runner.batches) == [2, 3]  # the long pair split off
    assert {len(row) for row in runner.batches[0]} | {len(row) for row in runner.batches[1]} == {
        1,
        2,
        200,
    }
    assert batcher.sizes == [5]  # one batch for the hook, however many runs


# --------------------------------------------------------------------------- a real model


@pytest.fixture(scope="module")
def lstm(make_settings):
    registry = ModelRegistry(make_settings(model_names=["lstm-multilingual"]))
    registry.load_all()
    yield registry.ready("lstm-multilingual")
    registry.close()


def test_concurrent_requests_equal_sentences_embedded_alone(lstm, demo_dir, monkeypatch):
    assert lstm.batcher.group_by_length
    mapping = json.loads((demo_dir / "lstm-multilingual" / "word_mapping.json").read_text())
    words = [word for word in mapping if word.isalpha()]
    generator = random.Random(42)
    sentences = [
        " ".join(generator.choice(words) for _ in range(generator.randint(1, 40)))
        for _ in range(16 * 10)
    ]
    alone = np.stack([lstm.embed([sentence]).vectors[0] for sentence in sentences])

    sizes = []
    monkeypatch.setattr(lstm.batcher, "_on_batch", lambda n, s, queued: sizes.append(n))
    together = np.full_like(alone, np.nan)
    errors = []
    barrier = threading.Barrier(16)

    def client(first):
        try:
            mine = list(range(first, len(sentences), 16))
            barrier.wait(TIMEOUT)
            while mine:
                take, mine = mine[: 1 + len(mine) % 3], mine[1 + len(mine) % 3 :]
                vectors = lstm.embed([sentences[i] for i in take]).vectors
                together[take] = vectors
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert max(sizes) > 1  # requests really were merged
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-6)


def test_real_model_refuses_what_its_queue_can_never_hold(lstm, monkeypatch):
    monkeypatch.setattr(lstm.batcher, "max_queued", 2)
    with pytest.raises(InvalidInput):
        lstm.embed(["hola mundo"] * 3)
    assert lstm.embed(["hola mundo"] * 2).vectors.shape == (2, 64)


def test_hook_reports_the_queue_depth_left_behind_each_batch():
    runner = Runner(hold_first=True)
    seen = []
    batcher = MicroBatcher(
        "depth", runner, max_batch_size=4, on_batch=lambda n, s, queued: seen.append((n, queued))
    )
    try:
        first = batcher.submit([[1]])
        assert runner.started.wait(TIMEOUT)
        waiting = [batcher.submit([[2]] * 3) for _ in range(3)]  # 9 sentences behind it
        wait_until(lambda: batcher.queued == 9)
        runner.release.set()
        for ticket in [first, *waiting]:
            ticket.result(TIMEOUT)
        # Batches of at most 4 take whole requests of 3: 1, then 3, 3, 3 -> 6, 3, 0 queued.
        assert seen == [(1, 9), (3, 6), (3, 3), (3, 0)]
    finally:
        batcher.close(timeout=TIMEOUT)


def test_a_failing_hook_does_not_stop_the_runner(make_batcher):
    def broken_hook(n, s, queued):
        raise RuntimeError("metrics are down")

    batcher = MicroBatcher("hooked", Runner(), on_batch=broken_hook)
    try:
        for _ in range(3):
            np.testing.assert_array_equal(batcher.submit([[7, 7]]).result(TIMEOUT), [[7, 2]])
    finally:
        batcher.close(timeout=TIMEOUT)


def test_a_model_giving_the_wrong_number_of_vectors_fails_only_that_batch(make_batcher):
    calls = []

    def one_short(rows):
        calls.append(len(rows))
        vectors = identify(rows)
        return vectors[:-1] if len(calls) == 1 else vectors

    batcher = make_batcher(one_short)
    with pytest.raises(ValueError, match=r"shape \(1, 2\) for 2 sentences"):
        batcher.submit([[1], [2]]).result(TIMEOUT)
    np.testing.assert_array_equal(batcher.submit([[3]]).result(TIMEOUT), [[3, 1]])


def test_one_bad_request_in_a_shared_batch_fails_alone(make_batcher):
    runner = Runner(hold_first=True, fail_on=666)
    batcher = make_batcher(runner, max_batch_size=8)
    first = batcher.submit([[1]])
    assert runner.started.wait(TIMEOUT)
    good, bad, other = (batcher.submit(rows) for rows in ([[2]], [[666]], [[3], [4]]))
    runner.release.set()
    first.result(TIMEOUT)
    with pytest.raises(ValueError, match="cannot embed id 666"):
        bad.result(TIMEOUT)
    np.testing.assert_array_equal(good.result(TIMEOUT)[:, 0], [2])
    np.testing.assert_array_equal(other.result(TIMEOUT)[:, 0], [3, 4])
    assert [len(batch) for batch in runner.batches] == [1, 4, 1, 1, 2]  # shared, then alone
