"""The passes of one kind of resource run from the controller's work queue (argora_common.workqueue):
the bodies the watch brought, a pass queued when a resource's inputs change, and after each pass its next
(the resync, or the retry of a failed one); NetBox's changes queue a delta pass with what they named."""

from __future__ import annotations

import threading
from collections.abc import Callable

from argora_common.changes import ChangeSet
from argora_common.passes import Body, Key, Log, PassRunner, key_of
from argora_common.workqueue import WorkQueue


def deleted_or_deleting(event_type: str | None, body: Body) -> bool:
    return event_type == "DELETED" or bool(body["metadata"].get("deletionTimestamp"))


class QueuedPasses[Facts, Planned, Result]:
    """The passes over one kind of resource, run from the controller's work queue. The watch's events
    bring the bodies (a pass plans from the latest); one whose inputs changed (`fingerprint`) is queued at
    once, reading NetBox afresh, and every pass queues the next."""

    def __init__(
        self,
        runner: PassRunner[Facts, Planned, Result],
        queue: WorkQueue,
        fingerprint: Callable[[Body], object],
        logger: Log,
        *,
        gone: Callable[[str | None, Body], bool] = deleted_or_deleting,
    ) -> None:
        self.runner = runner
        self.queue = queue
        self.fingerprint = fingerprint
        self.logger = logger
        self.gone = gone  # whether a watch event says the resource is no longer ours to pass over
        self._bodies: dict[Key, Body] = {}
        self._fingerprints: dict[Key, object] = {}
        self._fresh: set[Key] = set()  # asked for by a change of the resource: the pass reads NetBox whole
        self._changes: dict[Key, ChangeSet] = {}  # what NetBox's changes named since the last pass
        self._lock = threading.Lock()
        queue.route(tuple, self.run)

    def observe(self, event_type: str | None, body: Body) -> Body | None:
        """Every watch event of the kind; returns the last body of a resource that is gone."""
        key = key_of(body)
        if self.gone(event_type, body):
            return self.forget(key)
        fingerprint = self.fingerprint(body)
        with self._lock:
            self._bodies[key] = body
            changed = self._fingerprints.get(key) != fingerprint
            self._fingerprints[key] = fingerprint
        if changed:
            self.request(key)
        return None

    def request(self, key: Key, delay: float = 0.0, changes: ChangeSet | None = None) -> None:
        """A pass of `key` within `delay` seconds that reads NetBox afresh, or only what `changes` name on
        top of its last reads; nothing when the resource is not known."""
        with self._lock:
            if key not in self._bodies:
                return
            if changes is None:
                self._fresh.add(key)
                self._changes.pop(key, None)
            elif key not in self._fresh:
                self._changes[key] = self._changes[key] | changes if key in self._changes else changes
        self.queue.add(key, delay)

    def known(self) -> list[Key]:
        with self._lock:
            return list(self._bodies)

    def body(self, key: Key) -> Body | None:
        with self._lock:
            return self._bodies.get(key)

    def forget(self, key: Key) -> Body | None:
        """The resource is gone: no pass waits for it; returns its last body."""
        with self._lock:
            body = self._bodies.pop(key, None)
            self._fingerprints.pop(key, None)
            self._fresh.discard(key)
            self._changes.pop(key, None)
        self.queue.forget(key)
        self.runner.forget(key)
        return body

    def run(self, key: Key) -> float | None:
        """The queue's handler: one pass, and when the next is due."""
        with self._lock:
            body = self._bodies.get(key)
            fresh = key in self._fresh
            self._fresh.discard(key)
            changes = self._changes.pop(key, None)
        if body is None:
            return None
        return self.run_pass(body, resync=not fresh and changes is None, changes=changes)

    def run_pass(self, body: Body, *, resync: bool, changes: ChangeSet | None) -> float:
        return self.runner.next_in(self.runner.run(body, self.logger, resync=resync, changes=changes))
