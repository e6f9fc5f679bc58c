"""Bulk, typed, retried read access to NetBox over pynetbox.

Every list follows pagination to the end (cursor pagination, stable while NetBox changes underneath),
trims payloads with `fields=`, and sends id filters in chunks that keep the request line under
gunicorn's 4 KB limit. NetBox silently ignores filter names it does not know and then returns the whole
table, so each endpoint (`argora_common.netbox_schema`) accepts only the filter names listed for it; the suite
proves against a real NetBox that every one of them narrows the result.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import pynetbox
import requests
from pydantic import BaseModel, SecretStr
from pynetbox.core.query import Request, RequestError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from argora_common.metrics import NETBOX_ERRORS, NETBOX_REQUESTS
from argora_common.netbox_schema import Endpoint
from argora_common.settings import Settings

# Room for the path, the other query parameters and `fields=` inside gunicorn's 4094-byte request line.
ID_FILTER_BUDGET: Final = 2800

# Objects per bulk PATCH or DELETE. NetBox saves (or deletes) the objects of a list one by one, each with
# its change record, search cache and signals: measured on 2 cores (NetBox 4.7.3, a busy machine) 0.05-0.15 s
# per object whatever the list's length, so longer lists gain nothing, and 50 keep a request far inside
# the 30 s timeout (100 IPs took 15 s, 300 took 45 s) while the per-request overhead is already small.
BULK_WRITE_CHUNK: Final = 50
# Bulk requests in flight at once. NetBox's time goes into each object's save in one worker process, so a
# single request at a time leaves its other workers (and cores) idle; a few at a time, no more, so that
# NetBox keeps workers for everybody else.
BULK_WRITES_IN_FLIGHT: Final = 3


class NetBoxError(Exception):
    """NetBox could not answer a request; the message says which and why, never the token.

    A bulk write that fails part way sets `written`: the ids of the objects NetBox confirmed written (or
    gone, for a delete) before it failed, so that the caller can report them."""

    written: frozenset[int] = frozenset()


class NetBoxUnavailableError(NetBoxError):
    """Network errors, timeouts, 429 or 5xx that outlasted every retry: worth trying again later."""


class NetBoxRejectedError(NetBoxError):
    """NetBox refused the request (4xx): retrying the same request cannot help.

    `object_errors` holds what NetBox said per object of a bulk request, by id, when it said so."""

    def __init__(self, message: str, status_code: int, object_errors: Mapping[int, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.object_errors: Mapping[int, str] = object_errors or {}


class NetBoxWriteForbiddenError(NetBoxRejectedError):
    """NetBox refused a write with 403: the token is read-only or lacks the permission."""


type FilterValue = str | int | bool | Sequence[str] | Sequence[int]


def id_chunks[V: (int, str)](ids: Iterable[V], filter_name: str, budget: int = ID_FILTER_BUDGET) -> Iterator[list[V]]:
    """Split ids (or names, addresses) so that `filter_name=<value>&…` of each chunk fits in `budget`
    bytes of query string, URL-encoded."""
    chunk: list[V] = []
    used = 0
    for value in sorted(set(ids)):
        cost = len(filter_name) + len(quote(str(value), safe="")) + 2
        if chunk and used + cost > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(value)
        used += cost
    if chunk:
        yield chunk


# ---- transport -----------------------------------------------------------------------------------


class RotatingSecret:
    """A secret given as a value or as a file that is re-read whenever it changes on disk.

    A Kubernetes Secret mounted as a file is swapped atomically on rotation, so comparing the file's
    mtime and inode before each use picks up the new value without a restart.
    """

    def __init__(self, value: SecretStr | None, file: Path | None) -> None:
        self._value = value.get_secret_value().strip() if value is not None else None
        self._file = file
        self._file_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def get(self) -> str:
        if self._file is None:
            assert self._value is not None
            return self._value
        with self._lock:
            stat = self._file.stat()
            stamp = (stat.st_mtime_ns, stat.st_ino)
            if stamp != self._file_stamp:
                self._value = self._file.read_text().strip()
                self._file_stamp = stamp
            assert self._value is not None
            return self._value


class TokenAuth(requests.auth.AuthBase):
    """Sets NetBox's Authorization header from the token, re-read from its file when that changes."""

    def __init__(self, token: SecretStr | None, token_file: Path | None) -> None:
        self._token = RotatingSecret(token, token_file)

    def current_token(self) -> str:
        return self._token.get()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = authorization_header(self.current_token())
        return request


def authorization_header(token: str) -> str:
    """v2 tokens (`nbt_<key>.<secret>`, NetBox >= 4.5) are Bearer tokens; v1 keys use `Token`."""
    return f"Bearer {token}" if token.startswith("nbt_") else f"Token {token}"


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


class _Session(requests.Session):
    """A session that never waits forever, counts every response by endpoint and remembers its writes."""

    def __init__(self, timeout: float, counter: Counter[str], own_writes: OwnWrites, in_flight: int) -> None:
        super().__init__()
        self._in_flight = threading.BoundedSemaphore(in_flight)
        self._timeout = timeout
        self._counter = counter
        self._counter_lock = threading.Lock()
        self._own_writes = own_writes
        self.clock_offset = 0.0  # NetBox's clock minus ours, from the Date of its last answer (to a second)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        endpoint = endpoint_of(str(url))
        verb = method.decode() if isinstance(method, bytes) else method
        ticket = self._own_writes.begin() if verb.upper() not in ("GET", "HEAD", "OPTIONS") else None
        response: requests.Response | None = None
        try:
            with self._in_flight:
                response = super().request(method, url, *args, **kwargs)
        except requests.RequestException:
            self._count(endpoint, verb, "error")
            raise
        finally:
            if ticket is not None:
                self._own_writes.end(ticket, response.headers.get("X-Request-ID") if response is not None else None)
        self._count(endpoint, verb, str(response.status_code))
        self._note_clock(response.headers.get("Date"))
        return response

    def _note_clock(self, date: str | None) -> None:
        try:
            server = parsedate_to_datetime(date) if date else None
        except (TypeError, ValueError):
            server = None
        if server is not None and server.tzinfo is not None:
            self.clock_offset = server.timestamp() - time.time()

    def _count(self, endpoint: str, method: str, code: str) -> None:
        with self._counter_lock:
            self._counter[endpoint] += 1
        NETBOX_REQUESTS.labels(endpoint=endpoint, method=method.upper(), code=code).inc()


def endpoint_of(url: str) -> str:
    """`https://nb/api/dcim/devices/?x=1` -> `dcim/devices` (object ids folded away for metrics)."""
    parts = [part for part in urlsplit(url).path.split("/") if part and part != "api"]
    return "/".join(part for part in parts if not part.isdigit()) or "/"


def _retryable(error: BaseException) -> bool:
    # An answer cut off or garbled on its way (a connection reset in the middle of a page) is no answer.
    if isinstance(
        error,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    ):
        return True
    if isinstance(error, RequestError):
        code: int = error.req.status_code
        return code == 429 or code >= 500
    return False


def retry_after_seconds(error: BaseException | None, now: float | None = None) -> float:
    """What a 429 or 503 asks a client to wait in its Retry-After header (seconds or an HTTP date); 0 when
    it asks nothing."""
    if not isinstance(error, RequestError) or error.req.status_code not in (429, 503):
        return 0.0
    value = str(error.req.headers.get("Retry-After") or "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        return 0.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryWait:
    """The growing delay between attempts, but never shorter than the Retry-After NetBox (or a proxy in
    front of it) asked for, within `max_seconds`: coming back earlier would only be refused again."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self._growing = wait_exponential_jitter(multiplier=0.5, max=max_seconds, jitter=0.5)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return min(max(self._growing(state), retry_after_seconds(error)), self.max_seconds)


def _describe(error: BaseException) -> str:
    if isinstance(error, RequestError):
        return f"HTTP {error.req.status_code} {error.req.reason}: {_short_body(error.req)}"
    return f"{type(error).__name__}: {error}"


def _object_errors(response: requests.Response) -> dict[int, str]:
    """Per object, why NetBox refused a bulk PATCH or DELETE. NetBox 4.7 applies the whole list in one
    transaction and answers 400 with `{"detail": "2 of 10 objects could not be updated.", "errors":
    [{"id": 24, "errors": {"name": [...]}}, ...]}`; older versions or other errors name no objects."""
    try:
        body = response.json()
    except ValueError:
        return {}
    found: dict[int, str] = {}
    entries = body.get("errors") if isinstance(body, Mapping) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("id"), int):
            found[entry["id"]] = field_errors(entry.get("errors"))
    return found


def field_errors(errors: object) -> str:
    """NetBox's validation errors (`{"oob_ip": ["The specified IP address ... is not assigned ..."]}`) as
    one line: `oob_ip: The specified IP address ...`."""
    if not isinstance(errors, Mapping):
        return str(errors)[:300]
    parts = []
    for name, messages in errors.items():
        text = " ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        parts.append(text if name in ("__all__", "non_field_errors", "detail") else f"{name}: {text}")
    return "; ".join(parts)[:300]


def etag(last_updated: str) -> str:
    """The weak ETag NetBox (>= 4.5) gives an object, from its `last_updated` as the API shows it:
    `W/"<isoformat of the UTC timestamp>"`. The API may render the time as `...Z` or in NetBox's
    TIME_ZONE; the tag is always made from the UTC value the database holds."""
    return f'W/"{datetime.fromisoformat(last_updated).astimezone(UTC).isoformat()}"'


def bulk_chunks[T](items: Sequence[T], size: int = BULK_WRITE_CHUNK) -> Iterator[list[T]]:
    """`items` in lists of at most `size`, in their order."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _short_body(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, Mapping) and "detail" in body:
        return str(body["detail"])[:200]
    if isinstance(body, Mapping):
        return field_errors(body)  # a refused write: which field and why
    return str(body)[:200]


@dataclass
class Write:
    """One bulk write under way: what it does, the versions its objects must still have (id ->
    `last_updated`), and the ids NetBox confirmed so far (written, or gone for a delete)."""

    method: str
    endpoint: Endpoint[Any]
    versions: Mapping[int, str]
    done: set[int] = field(default_factory=set)

    def if_match(self, items: Sequence[Mapping[str, Any]]) -> str | None:
        """The If-Match header for a request of `items`: NetBox checks every object of a bulk request
        against the whole list. Tags are timestamps to the microsecond: an object changed since the read
        gets a newer one than any of the list (all older than the read)."""
        tags = [etag(self.versions[item["id"]]) for item in items if item["id"] in self.versions]
        return ", ".join(tags) or None


class NetBox:
    """Access to one NetBox for one operator process: bulk reads, and writes one by one or in bulk."""

    def __init__(self, settings: Settings, *, backoff_max_seconds: float = 30.0) -> None:
        self.url = str(settings.netbox_url).rstrip("/")
        self.page_size = settings.netbox_page_size
        self.requests_sent: Counter[str] = Counter()
        self.own_writes = OwnWrites()
        self.api = pynetbox.api(self.url, token=None)
        session = _Session(
            settings.netbox_timeout_seconds, self.requests_sent, self.own_writes, settings.netbox_reads_in_flight
        )
        session.auth = TokenAuth(settings.netbox_token, settings.netbox_token_file)
        session.verify = str(settings.netbox_ca_bundle) if settings.netbox_ca_bundle else settings.netbox_verify_tls
        self.api.http_session = session
        self._session = session
        self.reads_in_flight = settings.netbox_reads_in_flight
        self._attempts = settings.netbox_retries
        self._backoff_max = backoff_max_seconds

    def server_now(self) -> datetime:
        """NetBox's time now, as its last answer's Date said (to a second): the change log is read by
        NetBox's timestamps, which need not agree with this machine's clock."""
        return datetime.fromtimestamp(time.time() + self._session.clock_offset, UTC)

    @property
    def request_count(self) -> int:
        return sum(self.requests_sent.values())

    def select[M: BaseModel](self, endpoint: Endpoint[M], **filters: FilterValue) -> list[M]:
        """Every object of `endpoint` that matches `filters`, all pages, typed."""
        unknown = set(filters) - endpoint.filters
        if unknown:
            raise ValueError(f"{endpoint.path}: filter(s) {sorted(unknown)} are not known to narrow the result")
        query = {**filters, "fields": ",".join(endpoint.fields)}

        def fetch() -> list[M]:
            # Cursor pagination pages by primary key: rows added or removed while we page can neither repeat
            # nor push another row out of the result, unlike offset pages. We require NetBox >= 4.6, which
            # has it; asked for it explicitly, pynetbox does not probe the version first (a probe that failed
            # once, NetBox restarting, would fall back to offset pages for the life of the process).
            request = Request(
                base=f"{self.api.base_url}/{endpoint.path}/",
                http_session=self.api.http_session,
                filters=query,
                limit=self.page_size,
                pagination="cursor",
            )
            return [endpoint.model.model_validate(record) for record in request.get()]

        return self._call(endpoint.path, fetch)

    def list_by_ids[M: BaseModel, V: (int, str)](
        self, endpoint: Endpoint[M], id_filter: str, ids: Iterable[V], **filters: FilterValue
    ) -> list[M]:
        """Like `select`, with `id_filter` set to each chunk of `ids` (or names, addresses), several chunks
        at once (`in_parallel`)."""
        chunks = list(id_chunks(ids, id_filter))
        pages = self.in_parallel(lambda chunk: self.select(endpoint, **{id_filter: chunk}, **filters), chunks)
        return [record for page in pages for record in page]

    def in_parallel[T, R](self, read: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`read` of every item, in order, run side by side; the requests they send are bounded by
        ARGORA_NETBOX_READS_IN_FLIGHT however many passes read at once. The first failure is raised once
        the reads under way are done."""
        if len(items) <= 1 or self.reads_in_flight <= 1:
            return [read(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.reads_in_flight, thread_name_prefix="argora-netbox") as pool:
            futures = [pool.submit(read, item) for item in items]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                future.cancel()
        return [future.result() for future in futures]

    def both[A, B](self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        """Two independent reads side by side (their requests bounded like `in_parallel`'s)."""
        if self.reads_in_flight <= 1:
            return first(), second()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="argora-netbox") as pool:
            later = pool.submit(second)
            try:
                return first(), later.result()
            finally:
                later.cancel()

    def _resource(self, endpoint: Endpoint[Any]) -> Any:
        return getattr(getattr(self.api, endpoint.app), endpoint.name.replace("-", "_"))

    def get[M: BaseModel](self, endpoint: Endpoint[M], object_id: int) -> M | None:
        """One object, read again right now (before a delete); None when it no longer exists."""

        def fetch() -> M | None:
            record = self._resource(endpoint).get(object_id)
            return None if record is None else endpoint.model.model_validate(dict(record))

        return self._call(endpoint.path, fetch)

    def create(self, endpoint: Endpoint[Any], **fields: Any) -> int:
        """POST one object and return its id. Retried like the rest: NetBox refuses a second copy of
        what must be unique (an IP address), so a retry after a lost answer cannot duplicate it. That
        refusal says nothing against the object, though: after an attempt whose answer was lost (cut off,
        timed out, 5xx) it is NetBoxUnavailableError, so that the pass is retried and its read finds what
        the lost attempt may have made."""
        attempts_failed = 0

        def write() -> int:
            nonlocal attempts_failed
            try:
                created: int = self._resource(endpoint).create(fields).id
            except Exception as error:
                attempts_failed += _retryable(error)
                raise
            return created

        try:
            return self._call(endpoint.path, write)
        except NetBoxRejectedError as error:
            if not attempts_failed or error.status_code != 400:
                raise
            raise NetBoxUnavailableError(
                f"{error}; an earlier attempt got no answer and may have made it: NetBox is read again"
            ) from error

    def update(self, endpoint: Endpoint[Any], object_id: int, **fields: Any) -> None:
        """PATCH one object (retried like a read: repeating a PATCH changes nothing more)."""

        def write() -> None:
            self._resource(endpoint).update([{"id": object_id, **fields}])

        self._call(endpoint.path, write)

    def delete(self, endpoint: Endpoint[Any], object_id: int) -> bool:
        """DELETE one object; False when it was already gone."""

        def write() -> bool:
            try:
                self._resource(endpoint).delete([object_id])
            except RequestError as error:
                if error.req.status_code == 404:
                    return False
                raise
            return True

        return self._call(endpoint.path, write)

    def update_many(self, endpoint: Endpoint[Any], changes: Sequence[Mapping[str, Any]]) -> dict[int, str]:
        """PATCH `changes` (each `{"id": ..., <fields>}`) in lists of BULK_WRITE_CHUNK. Returns, by id,
        why NetBox refused the objects it would not take; every other object is written. An object that
        no longer exists is refused too. 403 raises NetBoxWriteForbiddenError, 5xx and timeouts that
        outlast the retries NetBoxUnavailableError (repeating a PATCH changes nothing more)."""
        return self._write_chunks("PATCH", endpoint, list(bulk_chunks(changes)))

    def delete_many(
        self, endpoint: Endpoint[Any], ids: Sequence[int], versions: Mapping[int, str] | None = None
    ) -> dict[int, str]:
        """DELETE the objects `ids` in lists of BULK_WRITE_CHUNK. Returns, by id, why NetBox refused the
        objects it would not delete; an object that is gone already counts as deleted (so does one whose
        first DELETE went through but whose answer was lost). Errors as `update_many`.

        `versions` (id -> `last_updated` as read) makes the deletes conditional: NetBox deletes an object
        only while it is unchanged since that read (If-Match), and refuses it otherwise."""
        unique = list(dict.fromkeys(ids))  # NetBox refuses a list that names an id twice
        return self._write_chunks("DELETE", endpoint, list(bulk_chunks([{"id": i} for i in unique])), versions or {})

    def _write_chunks(
        self,
        method: str,
        endpoint: Endpoint[Any],
        chunks: list[list[Mapping[str, Any]]],
        versions: Mapping[int, str] | None = None,
    ) -> dict[int, str]:
        """The chunks, BULK_WRITES_IN_FLIGHT at a time. The first error (403, NetBox unavailable) stops
        the chunks not yet sent; those under way finish, and the error names what was written
        (`NetBoxError.written`)."""
        write = Write(method, endpoint, versions or {})
        refused: dict[int, str] = {}
        try:
            if len(chunks) <= 1:
                for chunk in chunks:
                    refused |= self._write_chunk(write, chunk)
                return refused
            with ThreadPoolExecutor(max_workers=BULK_WRITES_IN_FLIGHT, thread_name_prefix="netbox-write") as pool:
                futures = [pool.submit(self._write_chunk, write, chunk) for chunk in chunks]
                try:
                    for future in futures:
                        refused |= future.result()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        except NetBoxError as error:
            # Once the chunks under way are done: the pool's exit waits for them.
            error.written = frozenset(write.done)
            raise
        return refused

    def _write_chunk(self, write: Write, items: list[Mapping[str, Any]]) -> dict[int, str]:
        """One bulk request; when NetBox refuses it, the objects it names (or, naming none, each half) go
        again apart from the rest, so one bad object costs only its own write."""
        if len(items) == 1:
            return self._write_one(write, items[0])
        try:
            url = f"{self.api.base_url}/{write.endpoint.path}/"
            self._call(write.endpoint.path, partial(self._send, write.method, url, items, write.if_match(items)))
            write.done.update(item["id"] for item in items)
            return {}
        except NetBoxRejectedError as error:
            named = {item["id"] for item in items} & set(error.object_errors)
            # A 403 naming objects is not the token's: NetBox says so of an object gone while the request
            # ran (a retry overlapping its own first attempt, still deleting); each goes alone, where a
            # gone one answers 404 and a token that may not write 403 again.
            if error.status_code == 403 and not named:
                raise NetBoxWriteForbiddenError(str(error), error.status_code) from error
            if named:
                parts = [[item] for item in items if item["id"] in named]
                parts.append([item for item in items if item["id"] not in named])
            else:
                parts = [items[: len(items) // 2], items[len(items) // 2 :]]
        refused: dict[int, str] = {}
        for part in parts:
            if part:
                refused |= self._write_chunk(write, part)
        return refused

    def _write_one(self, write: Write, item: Mapping[str, Any]) -> dict[int, str]:
        """One object at its own URL, whose 404 says unambiguously that it is gone."""
        object_id: int = item["id"]
        fields = {key: value for key, value in item.items() if key != "id"}
        url = f"{self.api.base_url}/{write.endpoint.path}/{object_id}/"
        body = fields if write.method != "DELETE" else None
        try:
            self._call(write.endpoint.path, partial(self._send, write.method, url, body, write.if_match([item])))
        except NetBoxRejectedError as error:
            if error.status_code == 403:
                raise NetBoxWriteForbiddenError(str(error), error.status_code) from error
            if error.status_code == 404 and write.method == "DELETE":
                write.done.add(object_id)
                return {}
            if error.status_code == 412:
                return {object_id: "changed in NetBox since it was read (HTTP 412); left as it is"}
            return {object_id: str(error)}
        write.done.add(object_id)
        return {}

    def _send(self, method: str, url: str, body: object | None, if_match: str | None = None) -> None:
        # Never `fields=` on a write: NetBox 4.7.3 then answers 200 to a PATCH and writes nothing.
        headers = {"Accept": "application/json", **({"If-Match": if_match} if if_match else {})}
        response = self._session.request(method, url, json=body, headers=headers)
        if not response.ok:
            raise RequestError(response)

    def status(self) -> Mapping[str, Any]:
        """NetBox's /api/status/: proves the URL, TLS and token work (used at operator start)."""

        def fetch() -> Mapping[str, Any]:
            result: Mapping[str, Any] = self.api.status()
            return result

        return self._call("status", fetch)

    def _call[T](self, endpoint: str, fetch: Callable[[], T]) -> T:
        def give_up(state: RetryCallState) -> T:
            error = state.outcome.exception() if state.outcome else None
            assert error is not None
            NETBOX_ERRORS.labels(endpoint=endpoint, kind="unavailable").inc()
            raise NetBoxUnavailableError(
                f"NetBox {self.url} {endpoint}: no answer after {state.attempt_number} attempts ({_describe(error)})"
            ) from error

        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self._attempts),
            wait=RetryWait(self._backoff_max),
            retry_error_callback=give_up,
            reraise=False,
        )
        try:
            result: T = retrying(fetch)
        except RequestError as error:
            NETBOX_ERRORS.labels(endpoint=endpoint, kind=str(error.req.status_code)).inc()
            raise NetBoxRejectedError(
                f"NetBox {self.url} {endpoint}: {_describe(error)}", error.req.status_code, _object_errors(error.req)
            ) from error
        return result
