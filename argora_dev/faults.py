"""What the fault suite (`make faults`, tests/faults) needs besides Toxiproxy: an HTTP fault layer in
front of NetBox, the count of what a fault cost, and the table of figures the suite prints.

Toxiproxy works on TCP: latency, resets, hangs and cuts. An HTTP status (500, 502, 429 with
Retry-After) needs a layer that speaks HTTP: `FaultyNetBox` passes every request on to the real NetBox
and, while a fault is set, answers some of them itself. The data a controller reads always comes from
the real NetBox; only the error answers are made here.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from argora_common.serving import ServerThread
from argora_dev.process import free_port

# Hop-by-hop headers, and what the forwarding itself changes (length, encoding), are not passed on. The Host
# header is: NetBox builds its `next` page links from it, and links to NetBox itself would take every page
# after the first around the fault layer.
_NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass(frozen=True)
class HttpFault:
    """Which requests get an error answer instead of NetBox's: those of `methods` whose path matches
    `path`, with a `share` of them picked at random; `pages_only` limits it to list reads (a `limit`
    parameter), i.e. some pages of a paginated read. A 429 comes with `Retry-After: retry_after`. The
    first `after` matching requests pass through: a fault that starts in the middle of a pass."""

    statuses: tuple[int, ...] = (500, 502, 429)
    share: float = 0.3
    methods: frozenset[str] = frozenset({"GET"})
    path: str = r"^/api/"
    pages_only: bool = True
    retry_after: int = 1
    after: int = 0

    def applies(self, method: str, target: str) -> bool:
        parts = urlsplit(target)
        if method not in self.methods or not re.search(self.path, parts.path):
            return False
        return not self.pages_only or "limit" in parse_qs(parts.query)


@dataclass(frozen=True)
class Exchange:
    """One request through the layer: when (monotonic), what, and what the controller got back."""

    at: float
    method: str
    target: str
    status: int
    faulted: bool


class FaultyNetBox:
    """An HTTP server on loopback in front of the real NetBox (`upstream`, e.g. http://127.0.0.1:8000)."""

    def __init__(self, upstream: str, seed: int = 15) -> None:
        self.upstream = upstream.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._fault: HttpFault | None = None
        self._matched = 0  # requests the fault applied to since it was set
        self._hook: Callable[[str, str], None] | None = None
        self._random = random.Random(seed)  # the same picks on every run
        self._lock = threading.Lock()
        self._local = threading.local()
        self._serving = ServerThread("faulty-netbox")
        self.url = ""

    def start(self) -> FaultyNetBox:
        layer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as NetBox's own server does

            def log_message(self, format: str, *args: Any) -> None:
                """The exchanges are kept in `FaultyNetBox.exchanges`; nothing goes to stderr."""

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, content = layer._answer(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            # http.server finds its handlers by these names.
            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _any  # noqa: N815

        port = free_port()
        self._serving.start(ThreadingHTTPServer(("127.0.0.1", port), Handler))
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._serving.stop()

    def set_fault(self, fault: HttpFault | None) -> None:
        """From now on answer as `fault` says; None: pass everything through again."""
        with self._lock:
            self._fault = fault
            self._matched = 0

    def set_hook(self, hook: Callable[[str, str], None] | None) -> None:
        """From now on call `hook(method, target)` as each request arrives, before it is answered or
        passed on: to change NetBox at the exact moment a controller sends a given request. None: no hook."""
        with self._lock:
            self._hook = hook

    def count(
        self,
        since: float = 0.0,
        until: float = float("inf"),
        *,
        methods: Iterable[str] = (),
        faulted: bool | None = None,
    ) -> int:
        """Requests between `since` and `until` (monotonic), of `methods` (all when empty), faulted or not."""
        wanted = set(methods)
        with self._lock:
            return sum(
                1
                for e in self.exchanges
                if since <= e.at <= until
                and (not wanted or e.method in wanted)
                and (faulted is None or e.faulted == faulted)
            )

    def _pick(self, method: str, target: str) -> int | None:
        with self._lock:
            fault = self._fault
            if fault is None or not fault.applies(method, target):
                return None
            self._matched += 1
            if self._matched <= fault.after or self._random.random() >= fault.share:
                return None
            return self._random.choice(fault.statuses)

    def _record(self, method: str, target: str, status: int, faulted: bool) -> None:
        with self._lock:
            self.exchanges.append(Exchange(time.monotonic(), method, target, status, faulted))

    def _answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            hook = self._hook
        if hook is not None:
            hook(method, target)
        status = self._pick(method, target)
        if status is not None:
            self._record(method, target, status, faulted=True)
            extra = {"Retry-After": str(self._fault.retry_after if self._fault else 1)} if status == 429 else {}
            return status, {"Content-Type": "text/html", **extra}, f"<h1>{status} (fault layer)</h1>".encode()
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED | {"accept-encoding"}}
        try:
            response = session.request(
                method, self.upstream + target, headers=forwarded, data=body, timeout=300, allow_redirects=False
            )
        except requests.RequestException:
            self._record(method, target, 502, faulted=False)
            return 502, {"Content-Type": "text/plain"}, b"NetBox did not answer the fault layer"
        self._record(method, target, response.status_code, faulted=False)
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_FORWARDED}
        return response.status_code, kept, response.content


@dataclass
class Tally:
    """What a controller's objects look like after a fault, against what they should be.

    `expected`: the names that should exist; `before`: name → uid of those that existed before the fault
    (an object deleted and made again has a new uid: it was lost meanwhile); `after`: the objects now;
    `identity`: what makes two objects the same thing (a NetBox device id): more than one object per
    identity are duplicates."""

    expected: set[str]
    before: Mapping[str, str]
    after: Mapping[str, Mapping[str, Any]]
    identity: Callable[[Mapping[str, Any]], str]

    @property
    def present(self) -> int:
        return len(self.expected & self.after.keys())

    @property
    def lost(self) -> int:
        missing = self.expected - self.after.keys()
        replaced = {name for name, uid in self.before.items() if name in self.after and uid_of(self.after[name]) != uid}
        gone = {name for name in self.before if name not in self.after}
        return len(missing | replaced | gone)

    @property
    def duplicated(self) -> int:
        seen: dict[str, int] = {}
        for obj in self.after.values():
            key = self.identity(obj)
            seen[key] = seen.get(key, 0) + 1
        return sum(count - 1 for count in seen.values() if count > 1)


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["uid"])


def uids(objects: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {name: uid_of(obj) for name, obj in objects.items()}


@dataclass(frozen=True)
class FaultRow:
    """One line of the table `make faults` prints."""

    scenario: str
    controller: str
    expected: int
    present: int
    lost: int
    duplicated: int
    converge_seconds: float | None  # from the end of the fault until the objects and the status are right
    writes_during_fault: int
    note: str = ""

    @classmethod
    def of(
        cls, scenario: str, controller: str, tally: Tally, converge_seconds: float | None, writes: int, note: str = ""
    ) -> FaultRow:
        return cls(
            scenario, controller, len(tally.expected), tally.present, tally.lost, tally.duplicated,
            converge_seconds, writes, note,
        )  # fmt: skip


@dataclass
class FaultTable:
    rows: list[FaultRow] = field(default_factory=list)

    def add(self, row: FaultRow) -> None:
        self.rows.append(row)

    def markdown(self) -> str:
        head = (
            "| scenario | controller | expected | present | lost | duplicated | converged after the fault"
            " | writes during the fault | note |\n|---|---|---|---|---|---|---|---|---|\n"
        )
        lines = [
            f"| {r.scenario} | {r.controller} | {r.expected} | {r.present} | {r.lost} | {r.duplicated}"
            f" | {'-' if r.converge_seconds is None else f'{r.converge_seconds:.1f} s'} | {r.writes_during_fault}"
            f" | {r.note} |"
            for r in sorted(self.rows, key=lambda r: (r.scenario, r.controller))
        ]
        return head + "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown())


# One table per test run: the scenarios add their rows, pytest's terminal summary prints it.
TABLE = FaultTable()
