"""The one pass skeleton every controller runs: read -> plan -> converge -> report, and a delete path.

A controller supplies its steps (`PassSteps`); the skeleton owns what they share: one pass per resource
at a time, the metrics timer, the error map (`argora_common.errors`), the growing retry delay, the
failure report and one log line per pass. When the controller follows NetBox's changes
(`argora_common.changes`), the skeleton also records which NetBox objects each pass read, and a resync
may reuse the last reads while the change log says none of them changed. The first exception stops the
pass, so nothing is written after a failed read. `run` returns what happened (the metal3 resync thread
schedules with it); `run_for_kopf` turns a failure into kopf's retry (`TemporaryError`) or into a stop
until the resource changes or the next resync (`PermanentError`).
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
from argora_common.changes import ChangeFeed, Ref
from argora_common.errors import Decision, brief, classify
from argora_common.metrics import RECONCILE_SECONDS
from argora_common.settings import Settings

type Log = logging.Logger | logging.LoggerAdapter[Any]
type Key = tuple[str, str]  # (namespace, name) of the resource a pass is about
type Body = Mapping[str, Any]


class PassSteps[Facts, Planned, Result](Protocol):
    """What a controller supplies: each step gets the resource's body and what the one before made."""

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


class KeyedLocks[K: Hashable]:
    """One lock per key, forgotten when nobody holds or waits for it: the table never outgrows the
    passes under way."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[K, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: K, *, wait: bool = True) -> Iterator[bool]:
        """Yields True while holding the key's lock; False at once when `wait` is off and it is taken."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        acquired = lock.acquire(blocking=wait)
        try:
            yield acquired
        finally:
            if acquired:
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
    at: float  # monotonic time the read began


@dataclass(frozen=True)
class Tracking[Facts]:
    """How the passes of a controller that follows NetBox's changes describe their reads."""

    touched: Callable[[Facts], Iterable[Ref]]  # the NetBox objects a read returned or depends on
    # Re-reads what is not NetBox's (credentials) on top of the last NetBox reads; None: never reuse.
    refresh: Callable[[Body, Facts], Facts] | None = None


def key_of(body: Body) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


class PassRunner[Facts, Planned, Result]:
    """Runs the passes of one controller over one kind of resource."""

    def __init__(
        self,
        steps: PassSteps[Facts, Planned, Result],
        *,
        controller: str,
        kind: str,
        backoff: Backoff[Key],
        resync_seconds: float,
        kept: str,
        tracking: Tracking[Facts] | None = None,
        reuse_seconds: float = 0.0,
    ) -> None:
        self.steps = steps
        self.controller = controller
        self.kind = kind
        self.backoff = backoff
        self.resync_seconds = resync_seconds
        self.kept = kept  # what a failed pass leaves as it is, for the failure message
        self.locks: KeyedLocks[Key] = KeyedLocks()
        self.tracking = tracking
        self.reuse_seconds = reuse_seconds  # the longest a resync may go on reusing one read
        self.changes: ChangeFeed[Key] | None = None  # set when the controller follows NetBox's changes
        self._last_reads: dict[Key, LastRead[Facts]] = {}

    @classmethod
    def from_settings(
        cls,
        steps: PassSteps[Facts, Planned, Result],
        *,
        controller: str,
        kind: str,
        settings: Settings,
        kept: str,
        tracking: Tracking[Facts] | None = None,
    ) -> PassRunner[Facts, Planned, Result]:
        """The retry delays, the resync interval and the reuse of reads as the operator is configured."""
        return cls(
            steps,
            controller=controller,
            kind=kind,
            backoff=Backoff.from_settings(settings),
            resync_seconds=settings.resync_interval_seconds,
            kept=kept,
            tracking=tracking,
            reuse_seconds=settings.netbox_full_read_interval_seconds,
        )

    def run(self, body: Body, logger: Log, *, wait: bool = True, resync: bool = False) -> PassOutcome | None:
        """One pass; None when another pass over the same resource is under way and `wait` is off. A
        resync reuses the last NetBox reads when nothing they hold changed since (`reusable`)."""
        key = key_of(body)
        with self.locks.hold(key, wait=wait) as held:
            if not held:
                logger.debug("a pass over %s %s/%s is under way; this one is skipped", self.kind, *key)
                return None
            with RECONCILE_SECONDS.labels(controller=self.controller, kind=self.kind).time():
                reused = self.reusable(key, body) if resync else None
                try:
                    facts = self._read(key, body, reused)
                    planned = self.steps.plan(body, facts)
                    result = self.steps.converge(body, planned)
                    summary = self.steps.report(body, facts, planned, result)
                except Exception as error:
                    self._last_reads.pop(key, None)
                    return self._failed(key, body, error, logger)
        self.backoff.reset(key)
        reuse_note = " (NetBox unchanged since the last read, not read again)" if reused else ""
        logger.info("%s %s/%s synced%s: %s", self.kind, *key, reuse_note, summary)
        return PassOutcome()

    def reusable(self, key: Key, body: Body) -> LastRead[Facts] | None:
        """The last read of the resource, when a resync may plan from it instead of reading NetBox: the
        controller can refresh it, the resource's spec is the same, the read is younger than the reuse
        limit, and the change log is followed and says nothing the read holds changed since it began."""
        last = self._last_reads.get(key)
        if last is None or self.changes is None or self.tracking is None or self.tracking.refresh is None:
            return None
        if last.generation != body["metadata"].get("generation"):
            return None
        if time.monotonic() - last.at > self.reuse_seconds or not self.changes.quiet_since(key, last.at):
            return None
        return last

    def _read(self, key: Key, body: Body, reused: LastRead[Facts] | None) -> Facts:
        if reused is not None and self.tracking is not None and self.tracking.refresh is not None:
            return self.tracking.refresh(body, reused.facts)
        # The read it replaces goes first: at 10,000 devices one read is about 80 MB, and two at once
        # would be the operator's peak.
        self._last_reads.pop(key, None)
        began = time.monotonic()
        facts = self.steps.read(body)
        if self.changes is not None and self.tracking is not None:
            self.changes.index.record(key, self.tracking.touched(facts))
            if self.tracking.refresh is not None and self.reuse_seconds > 0:
                self._last_reads[key] = LastRead(facts, body["metadata"].get("generation"), began)
        return facts

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

    def run_for_kopf(self, body: Body, logger: Log, *, wait: bool = True, resync: bool = False) -> None:
        """A pass from a kopf handler: a failure becomes kopf's retry after the delay, or a stop."""
        outcome = self.run(body, logger, wait=wait, resync=resync)
        if outcome is None or outcome.decision is None:
            return
        if outcome.decision.retry:
            raise kopf.TemporaryError(outcome.decision.message, delay=outcome.delay)
        raise kopf.PermanentError(outcome.decision.message)

    def resync_for_kopf(self, body: Body, logger: Log) -> None:
        """The periodic pass, unless one is under way or the retry of a failed one is not due: during an
        outage the retry comes when due, a resync in between would read NetBox early."""
        if not self.backoff.due(key_of(body)):
            logger.debug("the retry of a failed pass is not due yet; this resync is skipped")
            return
        self.run_for_kopf(body, logger, wait=False, resync=True)

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
