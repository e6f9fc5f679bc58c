"""How the NetBox access layer retries what can be retried: an answer cut off in the middle of a page is
no answer (retried like a reset connection, reported as NetBox unavailable, never as a bug), a 429's
Retry-After is waited for before the next attempt, and a create refused after an attempt whose answer was
lost is no refusal of the object."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from itertools import pairwise

import pytest
import requests
from pydantic import SecretStr
from pynetbox.core.query import RequestError

from argora_common.errors import FailureKind, classify
from argora_common.netbox import NetBox, NetBoxRejectedError, NetBoxUnavailableError
from argora_common.netbox.session import retry_after_seconds
from argora_common.netbox_schema import IP_ADDRESSES, PREFIXES
from argora_common.settings import Settings

PAGE = json.dumps({"count": None, "next": None, "previous": None, "results": [{"id": i} for i in range(50)]}).encode()

type Answer = Callable[[int], bytes]  # the raw answer to the n-th request (from 0)


def cut_page(_: int = 0) -> bytes:
    """A whole page announced, and the connection closed after 100 bytes of it."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(PAGE)}\r\n\r\n"
    return head.encode() + PAGE[:100]


def too_many_requests(_: int) -> bytes:
    return b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], tuple[str, list[float]]]]:
    """An HTTP server on loopback giving each request its raw answer, then closing the connection; it notes
    when each request came."""
    listeners: list[socket.socket] = []

    def start(answer: Answer) -> tuple[str, list[float]]:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        arrivals: list[float] = []

        def loop() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                with connection:
                    connection.recv(65536)
                    arrivals.append(time.monotonic())
                    connection.sendall(answer(len(arrivals) - 1))

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}", arrivals

    yield start
    for listener in listeners:
        listener.close()


def client(url: str) -> NetBox:
    return NetBox(Settings(netbox_url=url, netbox_token=SecretStr("t"), netbox_retries=3), backoff_max_seconds=5)


def test_a_page_cut_in_the_middle_is_retried_and_reported_as_netbox_unavailable(
    serve: Callable[[Answer], tuple[str, list[float]]],
) -> None:
    url, arrivals = serve(cut_page)
    with pytest.raises(NetBoxUnavailableError, match=r"no answer after 3 attempts \(ChunkedEncodingError") as error:
        client(url).select(PREFIXES, status=["active"])
    assert len(arrivals) == 3
    decision = classify(error.value, "kept")
    assert (decision.kind, decision.reason, decision.retry) == (
        FailureKind.NETBOX_UNAVAILABLE,
        "NetBoxUnavailable",
        True,
    )


def test_a_429_is_retried_no_earlier_than_its_retry_after(serve: Callable[[Answer], tuple[str, list[float]]]) -> None:
    url, arrivals = serve(too_many_requests)
    with pytest.raises(NetBoxUnavailableError, match=r"no answer after 3 attempts \(HTTP 429"):
        client(url).select(PREFIXES, status=["active"])
    assert len(arrivals) == 3
    assert all(later - earlier >= 1.0 for earlier, later in pairwise(arrivals))


def refused(status: int, retry_after: str | None) -> RequestError:
    response = requests.Response()
    response.status_code = status
    response.headers["Retry-After"] = retry_after or ""
    response.request = requests.Request("GET", "http://netbox/api/ipam/prefixes/").prepare()
    response._content = b""
    return RequestError(response)


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds(refused(429, "7"), now) == 7.0
    assert retry_after_seconds(refused(503, formatdate(now + 30, usegmt=True)), now) == 30.0
    # A date gone by, nonsense, none, or a status that asks nothing of the kind: no wait of its own.
    assert retry_after_seconds(refused(429, formatdate(now - 30, usegmt=True)), now) == 0.0
    assert retry_after_seconds(refused(429, "soon"), now) == 0.0
    assert retry_after_seconds(refused(429, None), now) == 0.0
    assert retry_after_seconds(refused(500, "7"), now) == 0.0
    assert retry_after_seconds(requests.ConnectionError(), now) == 0.0


def test_a_create_refused_after_a_lost_answer_is_netbox_unavailable_not_a_refusal(
    serve: Callable[[Answer], tuple[str, list[float]]],
) -> None:
    """The first POST made the address but its answer was cut off; the second is refused as a duplicate."""
    duplicate = json.dumps({"address": ["Duplicate IP address found in global table: 10.0.0.1/24"]}).encode()
    refusal = (
        f"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {len(duplicate)}\r\n\r\n"
    ).encode() + duplicate
    url, arrivals = serve(lambda index: cut_page() if index == 0 else refusal)
    with pytest.raises(NetBoxUnavailableError, match="an earlier attempt got no answer and may have made it"):
        client(url).create(IP_ADDRESSES, address="10.0.0.1/24")
    assert len(arrivals) == 2

    # Refused at the first attempt, the refusal stands.
    url, _ = serve(lambda _: refusal)
    with pytest.raises(NetBoxRejectedError, match="Duplicate IP address") as refused_at_once:
        client(url).create(IP_ADDRESSES, address="10.0.0.1/24")
    assert refused_at_once.value.status_code == 400
