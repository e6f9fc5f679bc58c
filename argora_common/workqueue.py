"""One keyed, delayed work queue per controller, as client-go's workqueue: every trigger only adds a key.

A key is waiting at most once: adding it again keeps the earlier of the two due times, so a burst of
triggers is one run. A key is never run by two workers at once: one added while it runs is run again
afterwards. What a run returns is when the key wants to run again (the resync interval after a
success, the growing retry delay after a failure; None: not again until a trigger asks). A bounded set
of workers run what is due, and only while this replica is the active one; one more worker takes only
the keys the queue was told are urgent and short (the looks at NetBox's change log), so that they are
not held up behind long passes.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Final

log = logging.getLogger("argora.queue")

# How often a worker of a standby replica looks again whether it became the active one.
STANDBY_WAIT_SECONDS: Final = 1.0

# A handler takes keys of the one type it is routed to.
type Handler = Callable[[Any], float | None]


class WorkQueue:
    """Keys of any hashable type; each type is handled by the handler routed to it (`route`)."""

    def __init__(
        self,
        name: str,
        workers: int,
        *,
        active: Callable[[], bool] = lambda: True,
        express: Callable[[Hashable], bool] = lambda _: False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a work queue needs a worker, got {workers}")
        self.name = name
        self.workers = workers
        self._active = active
        self._is_express = express
        self._handlers: dict[type, Handler] = {}
        self._due: dict[Hashable, float] = {}  # key -> monotonic time it is due
        # (due, order, key) per kind of key; an entry whose time is no longer the key's is skipped.
        self._heaps: dict[bool, list[tuple[float, int, Hashable]]] = {False: [], True: []}
        self._order = 0
        self._running: set[Hashable] = set()
        self._again: dict[Hashable, float] = {}  # added while running: due then, at the earliest
        self._dropped: set[Hashable] = set()  # forgotten while running: not put back afterwards
        self._wake = threading.Condition()
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def route(self, key_type: type, handle: Handler) -> None:
        self._handlers[key_type] = handle

    def add(self, key: Hashable, delay: float = 0.0) -> None:
        """`key` is due in `delay` seconds, or earlier if it already was."""
        at = time.monotonic() + max(0.0, delay)
        with self._wake:
            if key in self._running:
                self._dropped.discard(key)
                self._again[key] = min(self._again.get(key, math.inf), at)
                return
            self._put(key, at)

    def forget(self, key: Hashable) -> None:
        """Nothing of `key` waits any more; a run under way finishes and is not followed by another."""
        with self._wake:
            self._due.pop(key, None)
            self._again.pop(key, None)
            if key in self._running:
                self._dropped.add(key)

    def due_in(self, key: Hashable) -> float | None:
        """Seconds until `key` is due (0 when overdue); None when it is not waiting."""
        with self._wake:
            at = self._due.get(key)
        return None if at is None else max(0.0, at - time.monotonic())

    def __len__(self) -> int:
        with self._wake:
            return len(self._due)

    def start(self) -> None:
        for number, express in enumerate([False] * self.workers + [True]):
            kind = "express" if express else str(number)
            thread = threading.Thread(target=self._work, args=(express,), name=f"{self.name}-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """No run starts any more; waits up to `timeout` seconds for those under way."""
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _put(self, key: Hashable, at: float) -> None:
        if self._due.get(key, math.inf) <= at:
            return
        self._due[key] = at
        self._order += 1
        heapq.heappush(self._heaps[self._is_express(key)], (at, self._order, key))
        self._wake.notify_all()

    def _take(self, express: bool) -> Hashable | None:
        """The earliest due key this worker may run, marked as running; None once stopped. The express
        worker takes only express keys; the others take any."""
        with self._wake:
            while not self._stopped:
                heaps = [self._heaps[True]] if express else list(self._heaps.values())
                fronts = [front for heap in heaps if (front := self._front(heap)) is not None]
                at, _, key = min(fronts, default=(math.inf, 0, None))
                now = time.monotonic()
                if key is not None and at <= now and self._active():
                    del self._due[key]
                    self._running.add(key)
                    return key
                wait = STANDBY_WAIT_SECONDS if at <= now else at - now
                self._wake.wait(timeout=None if math.isinf(wait) else max(0.001, wait))
        return None

    def _front(self, heap: list[tuple[float, int, Hashable]]) -> tuple[float, int, Hashable] | None:
        """The heap's earliest entry that still holds, dropping those that no longer do."""
        while heap and self._due.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _work(self, express: bool) -> None:
        while (key := self._take(express)) is not None:
            handle = self._handlers[type(key)]
            try:
                again = handle(key)
            except Exception:
                # A bug (every handler reports its own failures): retrying on its own would repeat it for ever.
                log.exception(
                    "%s: the run of %r failed unexpectedly; it runs again when a trigger asks", self.name, key
                )
                again = None
            with self._wake:
                self._running.discard(key)
                at = self._again.pop(key, math.inf)
                if again is not None:
                    at = min(at, time.monotonic() + again)
                if key in self._dropped:
                    self._dropped.discard(key)
                elif not math.isinf(at):
                    self._put(key, at)
