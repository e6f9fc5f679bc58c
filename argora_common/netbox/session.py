"""The HTTP session to NetBox, the retries around every request, and the errors that outlast them.

Every request goes through `NetBoxConnection._call`: network errors, timeouts, 429 and 5xx are retried with
a growing delay (never shorter than a Retry-After), and what is left becomes a `NetBoxError` whose message
says which request failed and why, never the token.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import pynetbox
import requests
from pynetbox.core.query import RequestError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from argora_common.metrics import NETBOX_ERRORS, NETBOX_REQUESTS
from argora_common.netbox.auth import TokenAuth
from argora_common.netbox.own_writes import OwnWrites
from argora_common.netbox_schema import Endpoint
from argora_common.settings import Settings


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


def retryable(error: BaseException) -> bool:
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


class NetBoxConnection:
    """The connection to one NetBox: its session, and every request retried and its failure turned into a
    NetBoxError (`_call`). `NetBoxReads` and `NetBoxWrites` send their requests through it."""

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

    def _resource(self, endpoint: Endpoint[Any]) -> Any:
        return getattr(getattr(self.api, endpoint.app), endpoint.name.replace("-", "_"))

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
            retry=retry_if_exception(retryable),
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
