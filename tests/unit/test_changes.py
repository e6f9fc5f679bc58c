"""NetBox changes: what a change names, which resources it concerns, coalescing, own writes, the webhook's
checks and the reuse of reads by a resync. Pure logic; the real paths run in tests/e2e/test_netbox_changes*.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from argora_common.backoff import Backoff
from argora_common.changes import (
    CLUSTER,
    DEVICE,
    INTERFACE,
    IP_ADDRESS,
    MAC_ADDRESS,
    PREFIX,
    SITE,
    Change,
    ChangeFeed,
    ChangeIndex,
    ChangeSet,
    Interest,
    WebhookPayload,
)
from argora_common.netbox import NetBox
from argora_common.netbox_schema import ObjectChange
from argora_common.passes import Body, Key, PassRunner, Tracking
from argora_common.settings import Settings
from argora_common.webhook import MAX_BODY_BYTES, PATH, WebhookServer
from argora_common.workqueue import WorkQueue
from tests.unit.test_passes import BODY, KEY, LOG, RESYNC, Steps

SECRET = "hook-secret-for-tests"
INTEREST = Interest(frozenset({CLUSTER, DEVICE, INTERFACE, MAC_ADDRESS, IP_ADDRESS}), everyone=frozenset({CLUSTER}))


def settings(**values: Any) -> Settings:
    return Settings(netbox_url="http://netbox.invalid", netbox_token=SecretStr("t" * 40), **values)


def log_entry(object_type: str, object_id: int, before: dict[str, Any] | None, after: dict[str, Any] | None) -> Change:
    entry = ObjectChange.model_validate(
        {
            "id": 1, "time": datetime.now(UTC).isoformat(), "request_id": "r-1",
            "action": {"value": "update", "label": "Updated"},
            "changed_object_type": object_type, "changed_object_id": object_id,
            "prechange_data": before, "postchange_data": after,
        }
    )  # fmt: skip
    return Change.from_log(entry)


def test_a_change_names_the_object_and_what_its_snapshots_point_to() -> None:
    moved = log_entry(DEVICE, 7, {"cluster": 1, "site": 3, "oob_ip": None}, {"cluster": 2, "site": 3, "oob_ip": 40})
    assert moved.action == "update"
    assert moved.refs() == {(DEVICE, 7), (CLUSTER, 1), (CLUSTER, 2), (SITE, 3), (IP_ADDRESS, 40)}
    assert log_entry(INTERFACE, 9, None, {"device": 7, "lag": None}).refs() == {(INTERFACE, 9), (DEVICE, 7)}
    assert log_entry(MAC_ADDRESS, 5, {"assigned_object_id": 9}, None).refs() == {(MAC_ADDRESS, 5), (INTERFACE, 9)}
    assert log_entry(IP_ADDRESS, 4, None, {"assigned_object_id": 9}).refs() == {(IP_ADDRESS, 4), (INTERFACE, 9)}
    # NetBox names a prefix's scope by object-type id: nothing to follow (a prefix concerns everyone).
    assert log_entry(PREFIX, 8, None, {"scope_type": 12, "scope_id": 3}).refs() == {(PREFIX, 8)}
    # A flag is no id.
    assert log_entry(DEVICE, 7, None, {"cluster": True}).refs() == {(DEVICE, 7)}


def test_a_webhook_body_gives_the_same_change() -> None:
    payload = WebhookPayload.model_validate(
        {
            "event": "deleted", "timestamp": "2026-11-26T10:00:00Z", "object_type": "dcim.device",
            "data": {"id": 7, "name": "x", "cluster": {"id": 1}},
            "snapshots": {"prechange": {"cluster": 1}, "postchange": None},
            "request": {"id": "r-9", "user": "admin"},
        }
    )  # fmt: skip
    change = payload.change()
    assert change is not None
    assert (change.action, change.request_id, change.refs()) == ("delete", "r-9", {(DEVICE, 7), (CLUSTER, 1)})
    job = WebhookPayload(event="job_ended", object_type="core.job", data={"id": 1})
    assert job.change() is None
    assert WebhookPayload(event="updated", object_type="dcim.device", data={"name": "no id"}).change() is None


def test_the_index_maps_objects_back_to_the_resources_that_hold_them() -> None:
    index: ChangeIndex[str] = ChangeIndex()
    index.record("a", {(DEVICE, 1), (CLUSTER, 10)})
    index.record("b", {(DEVICE, 2), (CLUSTER, 10)})
    assert index.holders({(CLUSTER, 10)}) == {"a", "b"}
    assert index.holders({(DEVICE, 1), (DEVICE, 3)}) == {"a"}
    index.record("a", {(DEVICE, 3)})
    assert index.holders({(DEVICE, 1)}) == set() and index.holders({(DEVICE, 3)}) == {"a"}
    index.forget("b")
    index.forget("a")
    assert len(index) == 0 and index.keys() == set()


class Triggered:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.ran = threading.Event()

    def __call__(self, key: str) -> None:
        self.keys.append(key)
        self.ran.set()


@pytest.fixture
def feed() -> Iterator[tuple[ChangeFeed[str], Triggered]]:
    """A feed whose passes (keys of type str) are recorded by the work queue's handler."""
    triggered = Triggered()
    queue = WorkQueue("test", 1)
    queue.route(str, triggered)
    the_feed: ChangeFeed[str] = ChangeFeed(
        NetBox(settings()),
        INTEREST,
        settings(netbox_changes_interval=0, change_coalesce_seconds=0.2),
        lambda key, delay, changes: queue.add(key, delay),
        queue,
        controller="test",
    )
    the_feed.index.record("a", {(CLUSTER, 10), (DEVICE, 1), (INTERFACE, 100)})
    the_feed.index.record("b", {(CLUSTER, 20), (DEVICE, 2)})
    queue.start()
    yield the_feed, triggered
    queue.stop(5)


def change(object_type: str, object_id: int, after: dict[str, Any] | None = None, request_id: str = "") -> Change:
    return Change(object_type, object_id, "update", request_id or None, (after,) if after else ())


def test_changes_map_to_the_resources_they_concern(feed: tuple[ChangeFeed[str], Triggered]) -> None:
    the_feed, _ = feed
    assert the_feed.submit([change(DEVICE, 1)], "changelog") == {"a"}
    # A new device names its cluster; a MAC its interface.
    assert the_feed.submit([change(DEVICE, 99, {"cluster": 20})], "changelog") == {"b"}
    assert the_feed.submit([change(MAC_ADDRESS, 5, {"assigned_object_id": 100})], "webhook") == {"a"}
    # A device of a cluster nobody imports, a type of no interest: nothing.
    assert the_feed.submit([change(DEVICE, 98, {"cluster": 30}), change(PREFIX, 1)], "changelog") == set()
    # A cluster may come to match any selector.
    assert the_feed.submit([change(CLUSTER, 30)], "changelog") == {"a", "b"}


def test_our_own_writes_start_nothing(feed: tuple[ChangeFeed[str], Triggered]) -> None:
    the_feed, _ = feed
    own = the_feed.netbox.own_writes
    own.end(own.begin(), "ours")
    assert the_feed.submit([change(DEVICE, 1, request_id="ours")], "changelog") == set()
    assert the_feed.submit([change(DEVICE, 1, request_id="theirs")], "changelog") == {"a"}


def test_a_change_seen_before_our_write_is_answered_waits_for_the_answer(
    feed: tuple[ChangeFeed[str], Triggered],
) -> None:
    the_feed, triggered = feed
    own = the_feed.netbox.own_writes
    ticket = own.begin()
    # NetBox committed our write and the change log shows it before the answer reached us.
    assert the_feed.submit([change(DEVICE, 1, request_id="ours-late")], "changelog") == set()
    own.end(ticket, "ours-late")
    time.sleep(0.5)
    assert triggered.keys == []
    # Someone else's change held back the same way goes on once our writes are answered.
    ticket = own.begin()
    the_feed.submit([change(DEVICE, 2, request_id="theirs")], "webhook")
    time.sleep(0.3)
    assert triggered.keys == []
    own.end(ticket, "ours-too")
    assert triggered.ran.wait(5)
    assert triggered.keys == ["b"]


def test_a_burst_of_changes_runs_one_pass_per_resource(feed: tuple[ChangeFeed[str], Triggered]) -> None:
    the_feed, triggered = feed
    for device_id in (1, 2, 1, 2, 1):
        the_feed.submit([change(DEVICE, device_id)], "webhook")
    assert triggered.ran.wait(5)
    time.sleep(0.5)
    assert sorted(triggered.keys) == ["a", "b"]


def test_a_resync_may_reuse_reads_only_while_the_change_log_says_nothing_changed(
    feed: tuple[ChangeFeed[str], Triggered],
) -> None:
    the_feed, _ = feed
    steps = Steps()
    runner: PassRunner[str, str, str] = PassRunner(
        steps, controller="test", backoff=Backoff(30, 600), resync_seconds=RESYNC,
        tracking=Tracking(touched=lambda facts: {(DEVICE, 1)}, refresh=lambda body, facts: facts), reuse_seconds=3600,
    )  # fmt: skip
    feed_for_runner: ChangeFeed[Key] = ChangeFeed(
        the_feed.netbox, INTEREST, settings(netbox_changes_interval=10), lambda key, delay, changes: None,
        WorkQueue("test", 1), controller="test",
    )  # fmt: skip
    runner.changes = feed_for_runner
    body = {"metadata": {**BODY["metadata"], "generation": 1}}

    def reads_after(*, resync: bool = False) -> int:
        steps.calls.clear()
        runner.run(body, LOG, resync=resync)
        return steps.calls.count("read")

    assert reads_after() == 1
    assert feed_for_runner.index.holders({(DEVICE, 1)}) == {KEY}
    # The change log has not been read successfully yet: nothing is known, NetBox is read.
    assert reads_after(resync=True) == 1
    feed_for_runner._log_readable = True  # a look at the change log succeeded
    assert reads_after(resync=True) == 0
    assert reads_after() == 1  # a pass for any other reason reads
    feed_for_runner.submit([change(DEVICE, 1)], "changelog")
    assert reads_after(resync=True) == 1
    assert reads_after(resync=True) == 0
    body["metadata"]["generation"] = 2
    assert reads_after(resync=True) == 1
    runner.forget(KEY)
    assert feed_for_runner.index.keys() == set()


def test_a_change_names_what_changed_for_each_resource_it_concerns() -> None:
    asked: dict[str, ChangeSet | None] = {}
    the_feed: ChangeFeed[str] = ChangeFeed(
        NetBox(settings()), INTEREST, settings(), lambda key, delay, changes: asked.update({key: changes}),
        WorkQueue("test", 1), controller="test",
    )  # fmt: skip
    the_feed.index.record("a", {(DEVICE, 1), (INTERFACE, 100)})
    the_feed.index.record("b", {(DEVICE, 2)})
    the_feed.submit([change(MAC_ADDRESS, 5, {"assigned_object_id": 100}), change(DEVICE, 2)], "webhook")
    assert asked == {
        "a": ChangeSet(frozenset({(MAC_ADDRESS, 5)}), frozenset({(MAC_ADDRESS, 5), (INTERFACE, 100)})),
        "b": ChangeSet(frozenset({(DEVICE, 2)}), frozenset({(DEVICE, 2)})),
    }
    # Several changes of one resource in one submission are one set.
    the_feed.submit([change(DEVICE, 1), change(INTERFACE, 100, {"device": 1})], "changelog")
    named = asked["a"]
    assert named is not None and named.changed == {(DEVICE, 1), (INTERFACE, 100)} and named.ids(DEVICE) == {1}


def test_a_delta_pass_builds_on_the_last_read_of_the_same_spec() -> None:
    steps = Steps()
    patched: list[ChangeSet] = []

    def patch(body: Body, facts: str, changes: ChangeSet) -> str | None:
        patched.append(changes)
        return None if (CLUSTER, 10) in changes.changed else f"{facts}+delta"

    runner: PassRunner[str, str, str] = PassRunner(
        steps, controller="test", backoff=Backoff(30, 600), resync_seconds=RESYNC, reuse_seconds=3600,
        tracking=Tracking(touched=lambda facts: {(DEVICE, 1)}, refresh=lambda body, facts: facts, patch=patch),
    )  # fmt: skip
    feed: ChangeFeed[Key] = ChangeFeed(
        NetBox(settings()), INTEREST, settings(netbox_changes_interval=10), lambda key, delay, changes: None,
        WorkQueue("test", 1), controller="test",
    )  # fmt: skip
    runner.changes = feed
    body = {"metadata": {**BODY["metadata"], "generation": 1}}
    device_changed = ChangeSet(frozenset({(DEVICE, 1)}), frozenset({(DEVICE, 1)}))

    def reads_after(changes: ChangeSet) -> int:
        steps.calls.clear()
        assert runner.run(body, LOG, changes=changes).ok
        return steps.calls.count("read")

    assert reads_after(device_changed) == 1 and patched == []  # nothing read before: a full read
    assert reads_after(device_changed) == 0 and patched == [device_changed]
    # What the patch cannot place is read whole.
    assert reads_after(ChangeSet(frozenset({(CLUSTER, 10)}), frozenset({(CLUSTER, 10)}))) == 1
    body["metadata"]["generation"] = 2  # another spec: read whole
    assert reads_after(device_changed) == 1


def failures(reason: str) -> float:
    sample = REGISTRY.get_sample_value("argora_netbox_changes_failures_total", {"controller": "test", "reason": reason})
    return sample or 0.0


def test_a_look_that_fails_in_any_way_stops_the_reuse_of_reads_and_the_looks_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = WorkQueue("test", 1)
    the_feed: ChangeFeed[str] = ChangeFeed(
        NetBox(settings()), INTEREST, settings(netbox_changes_interval=0.01), lambda key, delay, changes: None, queue,
        controller="test",
    )  # fmt: skip
    # What each read of the change log meets: the queued looks' are the last three.
    outcomes = iter(["html", "ok", "invalid", "html", "held"])
    third_look, release = threading.Event(), threading.Event()

    def select(*_: Any, **__: Any) -> list[ObjectChange]:
        outcome = next(outcomes)
        if outcome == "ok":
            return []
        if outcome == "invalid":  # an entry the schema refuses: a pydantic ValidationError
            return [ObjectChange.model_validate({"id": "not a number"})]
        if outcome == "held":
            third_look.set()
            release.wait()
        raise ValueError("Expecting value: line 1 column 1 (char 0)")  # a proxy's HTML page where JSON was due

    monkeypatch.setattr(the_feed.netbox, "select", select)
    before = failures("unexpected")
    the_feed.look()
    assert not the_feed._log_readable and failures("unexpected") == before + 1
    the_feed.look()
    assert the_feed._log_readable
    # The queued looks fail with a ValidationError, then a ValueError, and the feed looks again.
    the_feed.start()
    queue.start()
    try:
        assert third_look.wait(10)
        assert not the_feed._log_readable and failures("unexpected") == before + 3
    finally:
        release.set()
        queue.stop(5)


# ---- the webhook -----------------------------------------------------------------------------------


def post(
    server: WebhookServer, body: bytes, *, sign: str | None = SECRET, path: str = PATH, length: int | None = None
) -> HTTPStatus:
    headers = {"Content-Length": str(len(body) if length is None else length)}
    if sign is not None:
        headers["X-Hook-Signature"] = hmac.new(sign.encode(), body, hashlib.sha512).hexdigest()
    return server.handle(path, headers.get, lambda n: body[:n])


@pytest.fixture
def received() -> list[Change]:
    return []


@pytest.fixture
def server(received: list[Change]) -> WebhookServer:
    return WebhookServer(settings(webhook_secret=SecretStr(SECRET)), received.extend)


DEVICE_BODY = json.dumps(
    {"event": "updated", "object_type": "dcim.device", "data": {"id": 7}, "snapshots": {"postchange": {"cluster": 1}}}
).encode()


def test_a_signed_change_is_accepted(server: WebhookServer, received: list[Change]) -> None:
    assert post(server, DEVICE_BODY) == HTTPStatus.ACCEPTED
    assert [c.refs() for c in received] == [{(DEVICE, 7), (CLUSTER, 1)}]


def test_unsigned_wrongly_signed_malformed_huge_and_misdirected_requests_are_refused(
    server: WebhookServer, received: list[Change]
) -> None:
    assert post(server, DEVICE_BODY, sign=None) == HTTPStatus.UNAUTHORIZED
    assert post(server, DEVICE_BODY, sign="another-secret") == HTTPStatus.UNAUTHORIZED
    assert post(server, b"{not json", sign=SECRET) == HTTPStatus.BAD_REQUEST
    assert post(server, b'{"event": "updated"}', sign=SECRET) == HTTPStatus.BAD_REQUEST
    assert post(server, b"", length=MAX_BODY_BYTES + 1) == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert post(server, DEVICE_BODY, path="/other") == HTTPStatus.NOT_FOUND
    job = json.dumps({"event": "job_started", "object_type": "core.job", "data": {"id": 1}}).encode()
    assert post(server, job) == HTTPStatus.ACCEPTED
    assert received == []


def test_a_standby_refuses_a_change_with_503_and_reads_no_body(received: list[Change]) -> None:
    """A standby asks for no pass (argora_common.operator.request_pass): a change it took would be lost."""
    active = False
    server = WebhookServer(settings(webhook_secret=SecretStr(SECRET)), received.extend, active=lambda: active)
    before = REGISTRY.get_sample_value("argora_webhook_requests_total", {"result": "standby"}) or 0.0
    read: list[int] = []

    def read_body(size: int) -> bytes:
        read.append(size)
        return DEVICE_BODY

    headers = {"Content-Length": str(len(DEVICE_BODY)), "X-Hook-Signature": "anything"}
    assert server.handle(PATH, headers.get, read_body) == HTTPStatus.SERVICE_UNAVAILABLE
    assert (read, received) == ([], [])
    assert REGISTRY.get_sample_value("argora_webhook_requests_total", {"result": "standby"}) == before + 1
    active = True  # taken over
    assert post(server, DEVICE_BODY) == HTTPStatus.ACCEPTED
    assert [c.refs() for c in received] == [{(DEVICE, 7), (CLUSTER, 1)}]


def test_the_secret_file_is_read_again_when_it_changes(tmp_path: Any) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("first-secret\n")
    received: list[Change] = []
    server = WebhookServer(settings(webhook_secret_file=secret_file), received.extend)
    assert post(server, DEVICE_BODY, sign="first-secret") == HTTPStatus.ACCEPTED
    replacement = tmp_path / "secret.new"
    replacement.write_text("second-secret")
    replacement.replace(secret_file)
    assert post(server, DEVICE_BODY, sign="first-secret") == HTTPStatus.UNAUTHORIZED
    assert post(server, DEVICE_BODY, sign="second-secret") == HTTPStatus.ACCEPTED


def test_a_secret_file_rotated_to_nothing_signs_nothing(tmp_path: Any) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("first-secret\n")
    received: list[Change] = []
    server = WebhookServer(settings(webhook_secret_file=secret_file), received.extend)
    emptied = tmp_path / "secret.new"
    emptied.write_text(" \n")
    emptied.replace(secret_file)
    # Settings refuse an empty secret at start; this is one emptied later, which must not become a key
    # anyone can sign with.
    assert post(server, DEVICE_BODY, sign="") == HTTPStatus.SERVICE_UNAVAILABLE
    assert received == []


def test_settings_refuse_two_webhook_secrets(tmp_path: Any) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("x")
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        settings(webhook_secret=SecretStr("a"), webhook_secret_file=secret_file)
