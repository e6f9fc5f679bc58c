"""The test NetBox delivers webhooks: its rqworker POSTs signed change events to a receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import queue
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from argora_dev.netbox import NetBoxServer
from argora_dev.seed import NetBoxSeeder, Topology, add_servers
from argora_dev.webhooks import create_webhook, remove_webhook

pytestmark = pytest.mark.integration

# Covers the worker's boot (~6 s on 2 cores) when this test runs right after NetBox started, and the
# backlog of its single worker: earlier tests' bulk writes leave hundreds of search-cache jobs queued
# before this test's deliveries (seen: the first delivery 70 s after the device was created).
DELIVERY_TIMEOUT = 300.0


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Receiver:
    url: str
    deliveries: queue.Queue[Delivery]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP server on a free loopback port that answers every POST with 204 and keeps it."""
    deliveries: queue.Queue[Delivery] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            deliveries.put(Delivery(dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the base class writes every request to stderr."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/netbox", deliveries)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def next_event(receiver: Receiver, device_id: int, secret: str) -> dict[str, Any]:
    """The next delivery about device `device_id`, its signature checked; others' are skipped."""
    while True:
        delivery = receiver.deliveries.get(timeout=DELIVERY_TIMEOUT)
        body: dict[str, Any] = json.loads(delivery.body)
        if body["data"]["id"] != device_id:
            continue
        expected = hmac.new(secret.encode(), delivery.body, hashlib.sha512).hexdigest()
        assert delivery.headers["X-Hook-Signature"] == expected
        assert delivery.headers["Content-Type"] == "application/json"
        return body


def test_netbox_posts_signed_device_events(
    netbox: NetBoxServer, seeder: NetBoxSeeder, prefix: str, receiver: Receiver
) -> None:
    secret = secrets.token_hex(16)
    hook = create_webhook(seeder, f"{prefix}-hook", receiver.url, ["dcim.device"], secret=secret)
    try:
        topology = Topology(seeder, prefix)
        cluster = topology.cluster("cluster")
        # Creates the device, then sets its OOB IP in a second request: a create and an update event.
        server = add_servers(topology, cluster, [f"{prefix}-server"])[0]
        device_id = server.device["id"]
        created = next_event(receiver, device_id, secret)
        updated = next_event(receiver, device_id, secret)
        seeder.delete("dcim/devices", [device_id])
        deleted = next_event(receiver, device_id, secret)
    finally:
        remove_webhook(seeder, hook)

    # NetBox 4.7.3's body (no body template on the webhook) has the top-level keys
    #   event: "created" | "updated" | "deleted"; timestamp: ISO 8601; object_type: "dcim.device";
    #   data: the object as GET /api/dcim/devices/<id>/ shows it: related objects nested with their id
    #     (data.cluster.id, data.site.id, data.oob_ip.id and .address), status as {"value", "label"};
    #   snapshots: {"prechange", "postchange"}, the flat model serialization: related objects as bare ids
    #     ("cluster": 1, "site": 1, "oob_ip": 1, "device_type", "role", "tenant", "primary_ip4"), status as
    #     its value ("active"), custom_fields, tags, counts, "created"; no "id". prechange is None on
    #     create, postchange None on delete;
    #   request: {"id", "path", "path_info", "method", "GET", "user"} of the API call that made the change.
    for body in (created, updated, deleted):
        assert {"event", "timestamp", "object_type", "data", "snapshots", "request"} <= body.keys()
        assert body["object_type"] == "dcim.device"
        assert body["data"]["id"] == device_id
        assert {"prechange", "postchange"} <= body["snapshots"].keys()

    assert created["event"] == "created"
    assert created["snapshots"]["prechange"] is None
    assert created["snapshots"]["postchange"]["name"] == server.name
    assert created["snapshots"]["postchange"]["cluster"] == cluster["id"]
    assert created["snapshots"]["postchange"]["site"] == topology.site["id"]

    assert updated["event"] == "updated"
    assert updated["snapshots"]["prechange"]["oob_ip"] is None
    assert updated["snapshots"]["postchange"]["oob_ip"] == server.ip["id"]
    assert updated["data"]["oob_ip"]["id"] == server.ip["id"]
    assert updated["data"]["cluster"]["id"] == cluster["id"]

    assert deleted["event"] == "deleted"
    assert deleted["snapshots"]["prechange"]["oob_ip"] == server.ip["id"]
    assert deleted["snapshots"]["postchange"] is None
