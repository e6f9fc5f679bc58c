"""The work queue every controller's triggers feed: one entry per key, one run per key at a time, the
next run when the handler says, nothing while standing by. No test depends on how fast the machine is:
each waits for what it needs with a generous limit and asserts what ran, never when."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from argora_common.workqueue import WorkQueue

LIMIT = 10.0  # seconds any expected run may take on a busy machine


class Recorder:
    """A handler that records its runs; a key in `hold` waits for `release` while running."""

    def __init__(self, again: float | None = None) -> None:
        self.runs: list[str] = []
        self.again = again
        self.hold: set[str] = set()
        self.running = threading.Event()
        self.release = threading.Event()
        self.changed = threading.Condition()
        self.at_once = 0
        self.most_at_once = 0

    def __call__(self, key: str) -> float | None:
        with self.changed:
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)
        if key in self.hold:
            self.running.set()
            assert self.release.wait(LIMIT)
        with self.changed:
            self.at_once -= 1
            self.runs.append(key)
            self.changed.notify_all()
        return self.again

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.runs) >= count, LIMIT), self.runs


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def queue(recorder: Recorder) -> Iterator[WorkQueue]:
    the_queue = WorkQueue("test", 2)
    the_queue.route(str, recorder)
    yield the_queue
    recorder.release.set()
    the_queue.stop(LIMIT)


def test_a_burst_of_adds_is_one_run(queue: WorkQueue, recorder: Recorder) -> None:
    for _ in range(5):
        queue.add("a", 0.2)
    queue.add("b")
    queue.start()
    recorder.wait_for(2)
    queue.stop(LIMIT)
    assert sorted(recorder.runs) == ["a", "b"]


def test_the_earlier_due_time_wins(queue: WorkQueue) -> None:
    queue.add("a", 100)
    queue.add("a", 5)
    queue.add("a", 50)
    due = queue.due_in("a")
    assert due is not None and due <= 5
    assert len(queue) == 1 and queue.due_in("b") is None


def test_a_key_added_while_it_runs_runs_again_afterwards_never_twice_at_once(
    queue: WorkQueue, recorder: Recorder
) -> None:
    recorder.hold.add("a")
    queue.add("a")
    queue.start()
    assert recorder.running.wait(LIMIT)
    queue.add("a")
    queue.add("a")
    recorder.hold.clear()
    recorder.release.set()
    recorder.wait_for(2)
    queue.stop(LIMIT)
    assert recorder.runs == ["a", "a"] and recorder.most_at_once == 1


def test_the_handler_says_when_the_key_runs_again() -> None:
    again = Recorder(again=3600)
    queue = WorkQueue("test", 1)
    queue.route(str, again)
    queue.add("a")
    queue.start()
    again.wait_for(1)
    queue.stop(LIMIT)
    due = queue.due_in("a")
    assert due is not None and 3000 < due <= 3600


def test_a_handler_that_says_nothing_is_not_run_again(queue: WorkQueue, recorder: Recorder) -> None:
    queue.add("a")
    queue.start()
    recorder.wait_for(1)
    queue.stop(LIMIT)
    assert queue.due_in("a") is None and len(queue) == 0


def test_a_forgotten_key_is_not_run_nor_put_back_after_the_run_under_way() -> None:
    again = Recorder(again=0)
    queue = WorkQueue("test", 1)
    queue.route(str, again)
    again.hold.add("a")
    queue.add("a")
    queue.add("b", 3600)
    queue.forget("b")
    queue.start()
    assert again.running.wait(LIMIT)
    queue.forget("a")
    again.release.set()
    again.wait_for(1)
    queue.stop(LIMIT)
    assert again.runs == ["a"] and len(queue) == 0


def test_a_standby_runs_nothing_until_it_is_active(recorder: Recorder) -> None:
    active = threading.Event()
    queue = WorkQueue("test", 1, active=active.is_set)
    queue.route(str, recorder)
    queue.add("a")
    queue.start()
    try:
        # However long it stands by, nothing runs: the key waits.
        assert not recorder.running.wait(0.3)
        assert recorder.runs == [] and queue.due_in("a") == 0
        active.set()
        recorder.wait_for(1)
    finally:
        queue.stop(LIMIT)
    assert recorder.runs == ["a"]


def test_express_keys_run_while_every_other_worker_is_busy(recorder: Recorder) -> None:
    queue = WorkQueue("test", 1, express=lambda key: str(key).startswith("look"))
    queue.route(str, recorder)
    recorder.hold.add("long pass")
    queue.add("long pass")
    queue.start()
    try:
        assert recorder.running.wait(LIMIT)
        queue.add("look at the change log")
        recorder.wait_for(1)
        assert recorder.runs == ["look at the change log"]
    finally:
        recorder.release.set()
        queue.stop(LIMIT)
    assert recorder.runs == ["look at the change log", "long pass"]


def test_a_handler_that_raises_is_logged_and_not_repeated_until_a_trigger_asks(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(key: int) -> float | None:
        raise KeyError(key)

    queue = WorkQueue("test", 1)
    queue.route(int, broken)
    queue.route(str, recorder)
    queue.add(1)
    queue.add("after", 0.1)
    with caplog.at_level("ERROR"):
        queue.start()
        recorder.wait_for(1)  # the worker went on
        queue.stop(LIMIT)
    assert queue.due_in(1) is None
    assert "failed unexpectedly" in caplog.text


def test_a_queue_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="needs a worker"):
        WorkQueue("test", 0)
