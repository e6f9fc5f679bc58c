"""The webhook receiver's limits on connections, against the real server on loopback sockets: at most
WORKERS connections served at once, a deadline for the whole request, the signature header checked
before the body is read, and refusals the client gets to read even while it is still sending."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from argora_common.settings import Settings
from argora_common.webhook import PATH, WORKERS, WebhookServer
from argora_dev.process import free_port

pytestmark = pytest.mark.integration

# Only a bound for waiting on a loaded machine; nothing asserts how long anything took.
WAIT_SECONDS = 60.0


def start(request_seconds: float) -> WebhookServer:
    settings = Settings(
        netbox_url="http://netbox.invalid",
        netbox_token=SecretStr("t" * 40),
        webhook_port=free_port(),
        webhook_secret=SecretStr("hook-secret-for-tests"),
    )
    server = WebhookServer(settings, lambda _: None, request_seconds=request_seconds)
    server.start()
    return server


@pytest.fixture
def served() -> Iterator[WebhookServer]:
    server = start(request_seconds=WAIT_SECONDS)
    yield server
    server.stop()


def connect(server: WebhookServer, send_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.settimeout(WAIT_SECONDS)
    sock.connect(("127.0.0.1", server.port))
    return sock


def head(length: int, signature: str | None) -> bytes:
    lines = [f"POST {PATH} HTTP/1.1", "Host: argora", f"Content-Length: {length}"]
    if signature is not None:
        lines.append(f"X-Hook-Signature: {signature}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status(sock: socket.socket) -> int | None:
    """The answer's status code, or None when the server closed without one."""
    try:
        answer = sock.recv(4096)
    except ConnectionResetError:
        return None
    return int(answer.split()[1]) if answer else None


def test_an_unsigned_request_is_refused_before_its_body_is_read(served: WebhookServer) -> None:
    with connect(served) as sock:
        sock.sendall(head(1000, signature=None))  # and never the body
        assert status(sock) == 401


def test_a_trickling_client_is_dropped_at_the_deadline_of_the_whole_request() -> None:
    server = start(request_seconds=1.0)
    try:
        with connect(server) as sock:
            sock.sendall(f"POST {PATH} HTTP/1.1\r\n".encode())
            # A header byte every 0.1 s: each read gets a byte long before any per-read timeout.
            for _ in range(int(WAIT_SECONDS / 0.1)):
                if select.select([sock], [], [], 0.1)[0]:
                    break  # the server answered or closed
                try:
                    sock.send(b"X")
                except OSError:
                    break  # the server closed
            else:
                pytest.fail(f"the server still waited for the request's headers after {WAIT_SECONDS:g} s")
    finally:
        server.stop()


def test_connections_beyond_the_workers_are_refused_at_once(served: WebhookServer) -> None:
    # Each holds a worker: it has connected and sent half a request line.
    held = [connect(served) for _ in range(WORKERS)]
    try:
        for sock in held:
            sock.sendall(b"POST ")
        with connect(served) as extra:
            assert status(extra) == 503  # without sending anything: no worker waits for it
    finally:
        for sock in held:
            sock.close()
    # The workers are free again once their clients are gone.
    for _ in range(int(WAIT_SECONDS / 0.1)):
        with connect(served) as sock:
            sock.sendall(head(0, signature=None))
            if status(sock) == 401:
                break
        select.select([], [], [], 0.1)
    else:
        pytest.fail("no worker came free")


def test_a_too_large_body_is_answered_413_though_the_client_is_still_sending(served: WebhookServer) -> None:
    body = b"x" * (2 << 20)
    # A small send buffer: most of the body is still to be sent when the server has decided.
    with connect(served, send_buffer=64 << 10) as sock:
        sock.sendall(head(len(body), signature="0" * 128) + body)
        assert status(sock) == 413
