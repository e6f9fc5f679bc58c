"""Growing retry delays after failed passes, per resource, shared by the controllers.

The n-th failure in a row waits `base * 2**(n-1)` seconds, at most `max`; a success forgets the
resource. Whatever asked for the failed pass (a change of the resource, NetBox's change log, the resync)
counts against the same entry, so an outage is retried less and less often however the passes are started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from argora_common.settings import Settings

# 2.0**64 times any sane base is far past any cap; a larger exponent would only risk an OverflowError
# after a few days of failures.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class _Entry:
    failures: int
    not_before: float  # on the clock of the Backoff


class Backoff[K: Hashable]:
    """Consecutive failures and the earliest next attempt per key; safe to use from several threads.

    Only resources whose last pass failed have an entry: `reset` on success or deletion keeps the
    table as small as the set of failing resources."""

    def __init__(self, base_seconds: float, max_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < base_seconds <= max_seconds:
            raise ValueError(f"need 0 < base <= max, got base {base_seconds} and max {max_seconds}")
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[K, _Entry] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff[K]:
        return cls(settings.retry_base_seconds, settings.retry_max_seconds)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1 for the first)."""
        exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
        return min(self.base_seconds * 2.0**exponent, self.max_seconds)

    def failed(self, key: K) -> float:
        """Count a failed pass of `key`; returns the delay before its next attempt."""
        with self._lock:
            previous = self._entries.get(key)
            failures = (previous.failures if previous else 0) + 1
            delay = self.delay(failures)
            self._entries[key] = _Entry(failures, self._clock() + delay)
        return delay

    def reset(self, key: K) -> None:
        """`key` succeeded or is gone: its next failure starts again at the base delay."""
        with self._lock:
            self._entries.pop(key, None)

    def failures(self, key: K) -> int:
        with self._lock:
            entry = self._entries.get(key)
        return entry.failures if entry else 0

    def due(self, key: K) -> bool:
        """Whether an attempt of `key` may run now: no failure counted, or its delay has passed."""
        with self._lock:
            entry = self._entries.get(key)
        return entry is None or self._clock() >= entry.not_before

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
