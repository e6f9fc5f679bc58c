"""Which of the changes NetBox logs are this process's own writes (by the request ids NetBox gave them)."""

from __future__ import annotations

import itertools
import threading
from collections import deque


class OwnWrites:
    """The request ids NetBox gave our own writes (its `X-Request-ID`), the newest `limit` of them: the
    change log names the request behind every change, so a controller can tell its own writes from
    everybody else's and never answers them with another pass.

    NetBox commits a write, and its change record, before it answers: until the answer is in, a change
    of ours can show up with an id we do not know yet. Each write therefore holds a ticket from its start
    to its answer, and `settled(ticket)` says when every write begun up to that ticket has its answer.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._limit = limit
        self._tickets = itertools.count(1)
        self._last_ticket = 0
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()

    def begin(self) -> int:
        with self._lock:
            ticket = next(self._tickets)
            self._last_ticket = ticket
            self._in_flight.add(ticket)
            return ticket

    def end(self, ticket: int, request_id: str | None) -> None:
        with self._lock:
            self._in_flight.discard(ticket)
            if request_id and request_id not in self._ids:
                self._order.append(request_id)
                self._ids.add(request_id)
                if len(self._order) > self._limit:
                    self._ids.discard(self._order.popleft())

    def last_begun(self) -> int:
        """The ticket of the newest write begun so far, or 0 while none is under way."""
        with self._lock:
            return self._last_ticket if self._in_flight else 0

    def settled(self, ticket: int) -> bool:
        with self._lock:
            return all(pending > ticket for pending in self._in_flight)

    def __contains__(self, request_id: object) -> bool:
        with self._lock:
            return request_id in self._ids
