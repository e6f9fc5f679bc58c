"""The pass skeleton every controller runs: order of the steps, retries, reports, one pass at a time."""

import logging
import threading

import kopf
import pytest

from argora_common.backoff import Backoff
from argora_common.errors import BadInputError, Decision
from argora_common.netbox import NetBoxUnavailableError
from argora_common.passes import Body, Key, KeyedLocks, PassOutcome, PassRunner
from tests.unit.memory_kube import api_error

LOG = logging.getLogger("tests.passes")
KEPT = "things are left as they are"
RESYNC = 300.0
BODY = {"metadata": {"namespace": "ns", "name": "thing"}}
KEY = ("ns", "thing")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Steps:
    """Records which steps ran; a step raises what `fail` holds for it. `read` can be held open."""

    kind = "Thing"
    kept = KEPT

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.reported: list[Decision] = []
        self.report_failure_error: Exception | None = None
        self.hold_read = False
        self.reading = threading.Event()
        self.release = threading.Event()

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def read(self, body: Body) -> str:
        self._step("read")
        if self.hold_read:
            self.reading.set()
            assert self.release.wait(10)
        return "facts"

    def plan(self, body: Body, facts: str) -> str:
        self._step("plan")
        return f"plan of {facts}"

    def converge(self, body: Body, planned: str) -> str:
        self._step("converge")
        return f"result of {planned}"

    def report(self, body: Body, facts: str, planned: str, result: str) -> str:
        self._step("report")
        return "3 created"

    def report_failure(self, body: Body, decision: Decision) -> None:
        self.calls.append("report_failure")
        self.reported.append(decision)
        if self.report_failure_error is not None:
            raise self.report_failure_error


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def steps() -> Steps:
    return Steps()


@pytest.fixture
def runner(steps: Steps, clock: Clock) -> PassRunner[str, str, str]:
    backoff: Backoff[Key] = Backoff(30, 600, clock)
    return PassRunner(steps, controller="test", backoff=backoff, resync_seconds=RESYNC)


def test_a_completed_pass_runs_every_step_reports_and_forgets_earlier_failures(
    runner: PassRunner[str, str, str], steps: Steps
) -> None:
    runner.backoff.failed(KEY)
    runner.backoff.failed(KEY)
    assert runner.run(BODY, LOG) == PassOutcome()
    assert steps.calls == ["read", "plan", "converge", "report"]
    assert runner.backoff.failures(KEY) == 0 and len(runner.backoff) == 0
    assert len(runner.locks) == 0


def test_a_netbox_outage_stops_the_pass_before_anything_is_written_and_retries_later_and_later(
    runner: PassRunner[str, str, str], steps: Steps
) -> None:
    steps.fail["read"] = NetBoxUnavailableError("GET /api/dcim/devices/: timed out")
    delays = []
    for _ in range(7):
        outcome = runner.run(BODY, LOG)
        assert outcome.decision is not None and outcome.decision.retry
        delays.append(runner.next_in(outcome))
    assert delays == [30, 60, 120, 240, 480, 600, 600]
    # Never past the read: no plan, no converge, no report of success.
    assert steps.calls == ["read", "report_failure"] * 7
    decision = steps.reported[0]
    assert (decision.reason, decision.message) == ("NetBoxUnavailable", f"GET /api/dcim/devices/: timed out; {KEPT}")


def test_an_unavailable_api_server_is_retried_without_a_report(runner: PassRunner[str, str, str], steps: Steps) -> None:
    steps.fail["converge"] = api_error(503, "etcd leader changed")
    assert runner.next_in(runner.run(BODY, LOG)) == 30
    assert steps.calls == ["read", "plan", "converge"]
    assert steps.reported == []


def test_a_bug_stops_until_the_resync_and_is_not_counted_as_a_failure_in_a_row(
    runner: PassRunner[str, str, str], steps: Steps, caplog: pytest.LogCaptureFixture
) -> None:
    runner.backoff.failed(KEY)
    steps.fail["plan"] = KeyError("spec")
    outcome = runner.run(BODY, LOG)
    assert outcome is not None and outcome.decision is not None
    assert (outcome.decision.reason, outcome.delay) == ("InternalError", RESYNC)
    assert [d.reason for d in steps.reported] == ["InternalError"]
    assert runner.backoff.failures(KEY) == 0
    again = runner.run(BODY, LOG)
    assert again.decision is not None and not again.decision.retry and "KeyError: 'spec'" in again.decision.message
    assert runner.next_in(again) == RESYNC
    assert any(record.exc_info for record in caplog.records)  # a bug gets its traceback
    # The next transient failure starts again at the base delay.
    steps.fail = {"read": NetBoxUnavailableError("down")}
    assert runner.next_in(runner.run(BODY, LOG)) == 30


def test_bad_input_that_retrying_cannot_fix_stops_until_the_resource_changes(
    runner: PassRunner[str, str, str], steps: Steps
) -> None:
    steps.fail["read"] = BadInputError("NoNetBoxCluster", "0 NetBox clusters with name 'x'", retry=False)
    outcome = runner.run(BODY, LOG)
    assert outcome.decision is not None and not outcome.decision.retry
    assert "0 NetBox clusters" in outcome.decision.message
    # The next pass comes with a change of the resource, or at the resync.
    assert runner.next_in(outcome) == RESYNC
    assert [d.reason for d in steps.reported] == ["NoNetBoxCluster"]


def test_a_report_of_a_failure_that_fails_itself_does_not_escape(
    runner: PassRunner[str, str, str], steps: Steps, caplog: pytest.LogCaptureFixture
) -> None:
    steps.fail["read"] = NetBoxUnavailableError("down")
    steps.report_failure_error = api_error(403, "forbidden")
    outcome = runner.run(BODY, LOG)
    assert outcome is not None and not outcome.ok and outcome.delay == 30
    assert "could not report it: HTTP 403" in caplog.text
    assert len(runner.locks) == 0


def test_a_second_pass_over_the_same_resource_waits_for_the_first_and_another_resource_does_not(
    runner: PassRunner[str, str, str], steps: Steps
) -> None:
    steps.hold_read = True
    outcomes: list[PassOutcome] = []
    first = threading.Thread(target=lambda: outcomes.append(runner.run(BODY, LOG)))
    second = threading.Thread(target=lambda: outcomes.append(runner.run(BODY, LOG)))
    first.start()
    try:
        assert steps.reading.wait(10)
        steps.hold_read = False
        assert runner.run({"metadata": {"namespace": "ns", "name": "other"}}, LOG) == PassOutcome()
        second.start()
        assert steps.calls.count("read") == 2  # the first and the other resource's; the second waits
    finally:
        steps.release.set()
        first.join(10)
        second.join(10)
    assert outcomes == [PassOutcome(), PassOutcome()]
    assert steps.calls.count("read") == 3
    assert len(runner.locks) == 0


def test_keyed_locks_forget_a_key_once_nobody_holds_or_waits_for_it() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    with locks.hold("a"):
        assert len(locks) == 1
        with locks.hold("b"):
            assert len(locks) == 2
    assert len(locks) == 0


def test_keyed_locks_let_a_waiter_in_after_the_holder() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []
    holding, waiting = threading.Event(), threading.Event()

    def holder() -> None:
        with locks.hold("a"):
            holding.set()
            assert waiting.wait(10)
            order.append("holder")

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(10)
    waiting.set()
    with locks.hold("a"):
        order.append("waiter")
    thread.join(10)
    assert order == ["holder", "waiter"]
    assert len(locks) == 0


def test_a_finished_deletion_forgets_the_resource(runner: PassRunner[str, str, str]) -> None:
    runner.backoff.failed(KEY)
    runner.delete(BODY, LOG, lambda: "deleted 3 objects")
    assert len(runner.backoff) == 0 and len(runner.locks) == 0


def test_a_deletion_that_failed_for_now_is_retried_later_and_later(runner: PassRunner[str, str, str]) -> None:
    def remove() -> str:
        raise api_error(503, "unavailable")

    delays = []
    for _ in range(3):
        with pytest.raises(kopf.TemporaryError) as retry:
            runner.delete(BODY, LOG, remove)
        delays.append(retry.value.delay)
    assert delays == [30, 60, 120]
    assert len(runner.locks) == 0


def test_a_deletion_hitting_a_bug_stops(runner: PassRunner[str, str, str]) -> None:
    def remove() -> str:
        raise TypeError("unhashable type: 'dict'")

    with pytest.raises(kopf.PermanentError, match="TypeError: unhashable type"):
        runner.delete(BODY, LOG, remove)
    assert runner.backoff.failures(KEY) == 0
