"""The one pass skeleton every controller runs: read -> plan -> converge -> report, and a delete path.

A controller supplies its steps (`PassSteps`); the skeleton owns what they share: one pass per resource
at a time, the metrics timer, the error map (`argora_common.errors`), the growing retry delay, the
failure report and one log line per pass. When the controller follows NetBox's changes
(`argora_common.changes`), the skeleton also records which NetBox objects each pass read, and a resync
may reuse the last reads while the change log says none of them changed. The first exception stops the
pass, so nothing is written after a failed read. `run` returns what happened; `QueuedPasses` (queued.py) runs the
passes from the controller's work queue (argora_common.workqueue) and puts each resource back in it for
its next pass: at the resync interval, or after the retry delay of a failed one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import kopf

from argora_common.backoff import Backoff
from argora_common.changes import ChangeFeed, ChangeSet, NetBoxId
from argora_common.errors import Decision, brief, classify
from argora_common.kube import Kube
from argora_common.metrics import RECONCILE_SECONDS
from argora_common.netbox import NetBox
from argora_common.settings import Settings

type Log = logging.Logger | logging.LoggerAdapter[Any]
type Key = tuple[str, str]  # (namespace, name) of the resource a pass is about
type Body = Mapping[str, Any]


class PassSteps[Facts, Planned, Result](Protocol):
    """What a controller supplies: each step gets the resource's body and what the one before made."""

    kind: str  # of the resource a pass is about, for log lines and metrics
    kept: str  # what a failed pass leaves as it is, for the failure message

    def read(self, body: Body) -> Facts:
        """Everything the pass needs from NetBox and Kubernetes; writes nothing."""
        ...

    def plan(self, body: Body, facts: Facts) -> Planned:
        """Pure: what the world should look like."""
        ...

    def converge(self, body: Body, planned: Planned) -> Result:
        """Write what differs."""
        ...

    def report(self, body: Body, facts: Facts, planned: Planned, result: Result) -> str:
        """Status and Events of a completed pass; returns the summary for the log line."""
        ...

    def report_failure(self, body: Body, decision: Decision) -> None:
        """Status (or annotation) and a Warning Event of a failed pass."""
        ...


class ControllerSteps[S: Settings]:
    """What the steps of a controller hold: its settings, NetBox and the API server."""

    def __init__(self, settings: S, netbox: NetBox, kube: Kube) -> None:
        self.settings = settings
        self.netbox = netbox
        self.kube = kube


class KeyedLocks[K: Hashable]:
    """One lock per key, forgotten when nobody holds or waits for it: the table never outgrows the
    passes under way."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[K, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: K) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class StepTimes:
    """How long each step of a pass took: where the time of a pass goes (NetBox's answers are the read,
    the API server's the converge and report), in its log line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[step] = time.monotonic() - began

    def __str__(self) -> str:
        parts = ", ".join(f"{step} {seconds:.2f}" for step, seconds in self.seconds.items())
        return f"{sum(self.seconds.values()):.2f} s ({parts})"


@dataclass(frozen=True)
class PassOutcome:
    decision: Decision | None = None  # None: the pass completed
    delay: float = 0.0  # seconds until the next attempt after a failure

    @property
    def ok(self) -> bool:
        return self.decision is None


@dataclass(frozen=True)
class LastRead[Facts]:
    facts: Facts
    generation: object
    at: float  # monotonic time the read began (a delta pass's, when one built on it)
    full_at: float  # monotonic time the last full read began: reads are reused only so long after it


@dataclass(frozen=True)
class Tracking[Facts]:
    """How the passes of a controller that follows NetBox's changes describe their reads."""

    touched: Callable[[Facts], Iterable[NetBoxId]]  # the NetBox objects a read returned or depends on
    # Re-reads what is not NetBox's (credentials) on top of the last NetBox reads; None: never reuse.
    refresh: Callable[[Body, Facts], Facts] | None = None
    # The last NetBox reads with what NetBox's changes name read again (a delta pass); None from it or
    # here: read NetBox whole (a change it cannot place, or so many that a full read is cheaper).
    patch: Callable[[Body, Facts, ChangeSet], Facts | None] | None = None
    # False: a resync reads NetBox whole even while the change log says nothing changed. For passes that
    # write to NetBox: the change feed leaves out their own writes, so it cannot tell that a read is stale.
    resync_reuse: bool = True


def key_of(body: Body) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


class PassRunner[Facts, Planned, Result]:
    """Runs the passes of one controller over one kind of resource."""

    def __init__(
        self,
        steps: PassSteps[Facts, Planned, Result],
        *,
        controller: str,
        backoff: Backoff[Key],
        resync_seconds: float,
        tracking: Tracking[Facts] | None = None,
        reuse_seconds: float = 0.0,
    ) -> None:
        self.steps = steps
        self.controller = controller
        self.kind = steps.kind
        self.backoff = backoff
        self.resync_seconds = resync_seconds
        self.kept = steps.kept
        self.locks: KeyedLocks[Key] = KeyedLocks()
        self.tracking = tracking
        self.reuse_seconds = reuse_seconds  # the longest a resync may go on reusing one read
        self.changes: ChangeFeed[Key] | None = None  # set when the controller follows NetBox's changes
        self._last_reads: dict[Key, LastRead[Facts]] = {}

    @classmethod
    def from_settings(
        cls,
        steps: PassSteps[Facts, Planned, Result],
        settings: Settings,
        controller: str,
        tracking: Tracking[Facts] | None = None,
    ) -> PassRunner[Facts, Planned, Result]:
        """The retry delays, the resync interval and the reuse of reads as the operator is configured."""
        return cls(
            steps,
            controller=controller,
            backoff=Backoff.from_settings(settings),
            resync_seconds=settings.resync_interval_seconds,
            tracking=tracking,
            reuse_seconds=settings.netbox_full_read_interval_seconds,
        )

    def run(self, body: Body, logger: Log, *, resync: bool = False, changes: ChangeSet | None = None) -> PassOutcome:
        """One pass, after any other pass or delete under way over the same resource. A resync reuses the
        last NetBox reads when nothing they hold changed since; a pass for NetBox's `changes` re-reads only
        what they name, on top of the last reads, where the controller can (`Tracking.patch`)."""
        key = key_of(body)
        with self.locks.hold(key), RECONCILE_SECONDS.labels(controller=self.controller, kind=self.kind).time():
            steps = StepTimes()
            try:
                with steps.timed("read"):
                    facts, how = self._read(key, body, resync=resync, changes=changes)
                with steps.timed("plan"):
                    planned = self.steps.plan(body, facts)
                with steps.timed("converge"):
                    result = self.steps.converge(body, planned)
                with steps.timed("report"):
                    summary = self.steps.report(body, facts, planned, result)
            except Exception as error:
                self._last_reads.pop(key, None)
                return self._failed(key, body, error, logger)
        self.backoff.reset(key)
        logger.info("%s %s/%s synced%s in %s: %s", self.kind, *key, how, steps, summary)
        return PassOutcome()

    def next_in(self, outcome: PassOutcome) -> float:
        """Seconds until the resource's next pass: the resync interval after a completed one, else the
        delay the failure set."""
        return self.resync_seconds if outcome.ok else outcome.delay

    def usable_read(self, key: Key, body: Body) -> LastRead[Facts] | None:
        """The last read of the resource, when a pass may build on it instead of reading NetBox whole: the
        controller can refresh it, the resource's spec is the same, and the last full read is younger than
        the reuse limit. A pass for changes patches it with what they name: a change NetBox never told us
        of (a webhook lost) is missing from it as from the last read, until a full read; a resync reuses it
        as it is only while the change log is followed and says nothing changed (`quiet_since`), and
        otherwise reads NetBox whole, so no lost change outlives a resync."""
        last = self._last_reads.get(key)
        if last is None or self.changes is None or self.tracking is None or self.tracking.refresh is None:
            return None
        if last.generation != body["metadata"].get("generation"):
            return None
        return last if time.monotonic() - last.full_at <= self.reuse_seconds else None

    def _read(self, key: Key, body: Body, *, resync: bool, changes: ChangeSet | None) -> tuple[Facts, str]:
        """The facts of the pass, and how they were come by (for its log line)."""
        last = self.usable_read(key, body) if resync or changes is not None else None
        if last is not None and self.tracking is not None and self.tracking.refresh is not None:
            assert self.changes is not None
            if resync and self.tracking.resync_reuse and self.changes.quiet_since(key, last.at):
                return self.tracking.refresh(
                    body, last.facts
                ), " (NetBox unchanged since the last read, not read again)"
            if changes is not None and self.tracking.patch is not None:
                began = time.monotonic()
                patched = self.tracking.patch(body, last.facts, changes)
                if patched is not None:
                    self._remember(key, body, patched, began, last.full_at)
                    return self.tracking.refresh(body, patched), f" (delta: {len(changes)} NetBox changes re-read)"
        # The read it replaces goes first: at 10,000 devices one read is about 80 MB, and two at once
        # would be the operator's peak.
        self._last_reads.pop(key, None)
        began = time.monotonic()
        facts = self.steps.read(body)
        self._remember(key, body, facts, began, began)
        return facts, ""

    def _remember(self, key: Key, body: Body, facts: Facts, began: float, full_at: float) -> None:
        if self.changes is None or self.tracking is None:
            return
        self.changes.index.record(key, self.tracking.touched(facts))
        if self.tracking.refresh is not None and self.reuse_seconds > 0:
            self._last_reads[key] = LastRead(facts, body["metadata"].get("generation"), began, full_at)

    def forget(self, key: Key) -> None:
        """The resource is gone: nothing of it is kept."""
        self.backoff.reset(key)
        self._last_reads.pop(key, None)
        if self.changes is not None:
            self.changes.forget(key)

    def _failed(self, key: Key, body: Body, error: Exception, logger: Log) -> PassOutcome:
        decision = classify(error, self.kept)
        if decision.retry:
            delay = self.backoff.failed(key)
        else:
            # Retrying cannot help: the next pass comes with a change of the resource or the resync.
            self.backoff.reset(key)
            delay = self.resync_seconds
        unreported = ""
        if decision.reportable:
            try:
                self.steps.report_failure(body, decision)
            except Exception as report_error:
                unreported = f" (could not report it: {brief(report_error)})"
        # A bug gets its traceback, once per attempt; everything else one line.
        log = logger.exception if decision.is_bug else logger.warning
        log(
            "%s %s/%s not synced, %s: %s%s; next attempt in %.0fs",
            self.kind, *key, decision.reason, decision.message, unreported, delay,
        )  # fmt: skip
        return PassOutcome(decision, delay)

    def delete(self, body: Body, logger: Log, remove: Callable[[], str]) -> None:
        """The delete path: `remove` cleans up after the resource and says what it did. A failure is
        retried by kopf like a failed pass; afterwards the resource is forgotten."""
        key = key_of(body)
        with self.locks.hold(key):
            try:
                done = remove()
            except Exception as error:
                decision = classify(error, self.kept)
                logger.warning(
                    "%s %s/%s: deletion not finished, %s: %s", self.kind, *key, decision.reason, decision.message
                )
                if decision.retry:
                    raise kopf.TemporaryError(decision.message, delay=self.backoff.failed(key)) from error
                raise kopf.PermanentError(decision.message) from error
        self.backoff.reset(key)
        logger.info("%s %s/%s deleted: %s", self.kind, *key, done)
