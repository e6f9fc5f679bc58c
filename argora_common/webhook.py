"""NetBox's webhooks, the instant path of NetBox changes: `POST /netbox/webhook` on its own port, and the
one-off setup of the webhook and its event rule in NetBox.

Only a body signed the way NetBox signs it (`X-Hook-Signature`: HMAC-SHA512 of the body, keyed with the
shared secret) is read as a change; anything else is answered with 4xx, counted, and starts nothing.
A request without the header is refused before its body is read. At most WORKERS connections are
served at once (others are answered 503 at once), each within a deadline for the whole request, and
bodies are read only up to a limit, so a huge, trickling or flooding client costs little.

Only the active replica takes changes: a standby answers 503 (its work queue runs nothing, see
argora_common.workqueue), a failure NetBox logs, where it used to answer 202 and drop them.
The chart's Service sends NetBox's calls to the active replica alone (argora_common.webhook_endpoint).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Buffer, Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, cast

from pydantic import ValidationError

from argora_common.changes import Change, Interest, WebhookPayload
from argora_common.metrics import WEBHOOK_REQUESTS
from argora_common.netbox import NetBox, RotatingSecret
from argora_common.netbox_schema import EVENT_RULES, WEBHOOKS, Endpoint
from argora_common.peering import LEASE
from argora_common.serving import ServerThread
from argora_common.settings import Settings

log = logging.getLogger("argora.webhook")

PATH: Final = "/netbox/webhook"
# NetBox's own body of one change with both snapshots is a few kB; a device with many custom fields a
# few tens.
MAX_BODY_BYTES: Final = 1 << 20
# A refused body up to this size is read and discarded after the answer: closing a connection with
# unread bytes resets it, and a client still writing would see a broken pipe instead of the refusal.
MAX_DISCARD_BYTES: Final = 4 * MAX_BODY_BYTES
# Headers and body together: NetBox sends a few kB on a local network.
REQUEST_SECONDS: Final = 10.0
# NetBox's worker delivers one webhook at a time; a few more cover several NetBox workers.
WORKERS: Final = 4
_BUSY: Final = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
EVENT_TYPES: Final = ("object_created", "object_updated", "object_deleted")


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


def content_length(headers: Callable[[str], str | None]) -> int:
    """The body's announced length; -1 when missing or malformed."""
    try:
        return int(headers("Content-Length") or "-1")
    except ValueError:
        return -1


class _DeadlineReader(io.RawIOBase):
    """A connection's bytes, each read waiting only for what is left of the whole request's time: a
    per-read timeout starts again with every byte, so a client sending one byte every few seconds
    would hold a worker for ever."""

    def __init__(self, connection: socket.socket, seconds: float) -> None:
        self._connection = connection
        self._deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline passed")
        self._connection.settimeout(left)
        return self._connection.recv_into(buffer)


class _PooledServer(ThreadingHTTPServer):
    """Serves at most WORKERS connections at once; the accepting thread answers any beyond them 503 and
    closes them at once (NetBox's next delivery, the change log or the resync catches up). A thread per
    connection, unbounded, let a client opening connections faster than they time out exhaust the
    process."""

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], upkeep: Callable[[], None]
    ) -> None:
        super().__init__(address, handler)
        self._workers = threading.BoundedSemaphore(WORKERS)
        self._upkeep = upkeep

    def service_actions(self) -> None:
        """Called by serve_forever between connections and at least every half second."""
        self._upkeep()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._workers.acquire(blocking=False):
            WEBHOOK_REQUESTS.labels(result="busy").inc()
            connection = cast(socket.socket, request)
            with contextlib.suppress(OSError):
                connection.setblocking(False)  # the accepting thread never waits on a client
                connection.send(_BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._workers.release()


class WebhookServer:
    """Serves `POST /netbox/webhook` and hands each signed change to `accept` while `active()` (by default
    this replica's peering) says this is the active replica. `upkeep` is work that belongs with the
    server and needs a loop (the EndpointSlice naming the active replica): the accepting thread does it
    between connections; it must not raise, and must not take long (connections wait meanwhile)."""

    def __init__(
        self,
        settings: Settings,
        accept: Callable[[list[Change]], object],
        *,
        request_seconds: float = REQUEST_SECONDS,
        active: Callable[[], bool] | None = None,
        upkeep: Callable[[], None] = lambda: None,
    ) -> None:
        self.port = settings.webhook_port
        self._request_seconds = request_seconds
        self._secret = RotatingSecret(settings.webhook_secret, settings.webhook_secret_file)
        self._accept = accept
        self._active = active or LEASE.active
        self._upkeep = upkeep
        self._serving = ServerThread("argora-webhook")

    def secret(self) -> str:
        return self._secret.get()

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return settings.webhook_secret is not None or settings.webhook_secret_file is not None

    def start(self) -> None:
        self._serving.start(_PooledServer(("0.0.0.0", self.port), self._handler_class(), self._upkeep))
        log.info("serving NetBox webhooks on :%d%s", self.port, PATH)

    def stop(self) -> None:
        self._serving.stop()

    def handle(self, path: str, headers: Callable[[str], str | None], read: Callable[[int], bytes]) -> HTTPStatus:
        """What one POST is answered with; `read(n)` reads n bytes of the body."""
        if path.split("?", 1)[0] != PATH:
            return self._answer("not_found", HTTPStatus.NOT_FOUND)
        if not self._active():  # before the body: a standby reads nothing
            return self._answer("standby", HTTPStatus.SERVICE_UNAVAILABLE)
        given = headers("X-Hook-Signature")
        if not given:  # before the body: an unsigned sender gets nothing read
            return self._answer("unsigned", HTTPStatus.UNAUTHORIZED)
        secret = self.secret()
        if not secret:  # the file emptied after start (settings refuse an empty one): a key anyone has
            return self._answer("no_secret", HTTPStatus.SERVICE_UNAVAILABLE)
        length = content_length(headers)
        if length < 0:
            return self._answer("malformed", HTTPStatus.LENGTH_REQUIRED)
        if length > MAX_BODY_BYTES:
            return self._answer("too_large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        body = read(length)
        if not hmac.compare_digest(given.strip().lower(), signature(secret, body)):
            return self._answer("bad_signature", HTTPStatus.UNAUTHORIZED)
        try:
            change = WebhookPayload.model_validate(json.loads(body)).change()
        except (ValueError, ValidationError):
            return self._answer("malformed", HTTPStatus.BAD_REQUEST)
        if change is None:
            return self._answer("ignored", HTTPStatus.ACCEPTED)
        self._accept([change])
        return self._answer("accepted", HTTPStatus.ACCEPTED)

    @staticmethod
    def _answer(result: str, status: HTTPStatus) -> HTTPStatus:
        WEBHOOK_REQUESTS.labels(result=result).inc()
        if status >= 400:
            log.warning("webhook request refused: %s (HTTP %d)", result, status)
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                # Replaced by a reader bound by the whole request's deadline (headers and body).
                self.rfile.close()
                self.rfile = io.BufferedReader(_DeadlineReader(self.connection, webhook._request_seconds))

            def do_POST(self) -> None:
                unread = max(content_length(self.headers.get), 0)

                def read(size: int) -> bytes:
                    nonlocal unread
                    body = self.rfile.read(size)
                    unread -= len(body)
                    return body

                try:
                    status = webhook.handle(self.path, self.headers.get, read)
                except TimeoutError:
                    status = webhook._answer("malformed", HTTPStatus.REQUEST_TIMEOUT)
                    unread = 0  # the deadline has passed: nothing more is read
                self.send_response(status)
                self.send_header("Content-Length", "0")
                if status >= 400:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if 0 < unread <= MAX_DISCARD_BYTES:
                    with contextlib.suppress(OSError):  # the deadline or the client's going ends it early
                        while unread > 0 and (chunk := self.rfile.read(min(unread, 1 << 16))):
                            unread -= len(chunk)

            def do_GET(self) -> None:
                self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("webhook %s: " + format, self.client_address[0], *args)

        return Handler


def _upsert(netbox: NetBox, endpoint: Endpoint[Any], name: str, fields: dict[str, Any]) -> tuple[int, str]:
    existing = netbox.select(endpoint, name=name)
    if existing:
        netbox.update(endpoint, existing[0].id, **fields)
        return existing[0].id, "updated"
    return netbox.create(endpoint, **fields), "created"


def ensure_webhook(netbox: NetBox, name: str, url: str, secret: str, interest: Interest, *, verify_tls: bool) -> str:
    """Create or update NetBox's webhook `name` to `url` and its event rule for the object types the
    controller follows; returns what was done."""
    hook_id, hook_done = _upsert(
        netbox,
        WEBHOOKS,
        name,
        {
            "name": name,
            "payload_url": url,
            "http_method": "POST",
            "http_content_type": "application/json",
            "secret": secret,
            "ssl_verification": verify_tls,
            "description": f"NetBox changes for {name}",
        },
    )
    _, rule_done = _upsert(
        netbox,
        EVENT_RULES,
        name,
        {
            "name": name,
            "object_types": sorted(interest.object_types),
            "event_types": list(EVENT_TYPES),
            "action_type": "webhook",
            "action_object_type": "extras.webhook",
            "action_object_id": hook_id,
            "enabled": True,
            "description": f"NetBox changes for {name}",
        },
    )
    return f"webhook {name} {hook_done} (id {hook_id}, {url}); event rule {name} {rule_done}"
