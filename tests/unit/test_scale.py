"""The pieces that let a pass scale: bounded parallel work, the API server's 429s, the watch index's
bookkeeping of versions, the choice of how to read BMC interfaces, selectors read together, and
per-object log lines at DEBUG."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.crds import ClusterSelector
from argora_common.inventory import by_site_is_cheaper, cluster_id_chunks, read_selection
from argora_common.kinds import BMC
from argora_common.kube import MANAGED_BY_LABEL, Kube
from argora_common.netbox import NetBox
from argora_common.netbox_schema import CLUSTERS, DEVICES, Cluster, Device, Endpoint, Site
from argora_common.operator import PerObjectLinesAtDebug
from argora_common.parallel import in_parallel
from argora_common.watch import QueuedEvents, WatchGoneError, WatchIndex
from argora_common.workqueue import WorkQueue


def test_parallel_work_stays_within_its_bound_and_does_every_item() -> None:
    running, most, done = 0, 0, []
    lock = threading.Lock()

    def work(item: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
            done.append(item)

    in_parallel(work, range(40), 4)
    assert sorted(done) == list(range(40))
    assert most <= 4


def test_the_first_failure_stops_further_work_and_is_raised() -> None:
    started: list[int] = []

    def work(item: int) -> None:
        started.append(item)
        if item == 0:
            raise RuntimeError("API server unavailable")
        time.sleep(0.05)

    with pytest.raises(RuntimeError, match="unavailable"):
        in_parallel(work, range(100), 2)
    assert len(started) < 10


class ThrottledKube(Kube):
    """Answers 429 with Retry-After a number of times, then serves."""

    def __init__(self, refusals: int) -> None:
        super().__init__(cast(client.ApiClient, None), "argora-test", writes_in_flight=2)
        self.refusals = refusals
        self.calls: list[float] = []

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: object | None,
        content_type: str,
        timeout: float | None,
    ) -> dict[str, Any]:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.refusals:
            error = ApiException(status=429, reason="Too Many Requests")
            error.headers = {"Retry-After": "0"}
            raise error
        return {"metadata": {"name": "x"}}


def test_a_throttled_request_waits_and_is_sent_again() -> None:
    kube = ThrottledKube(refusals=2)
    assert kube.get(BMC, "x") == {"metadata": {"name": "x"}}
    assert len(kube.calls) == 3


def test_a_request_throttled_again_and_again_fails_as_transient() -> None:
    kube = ThrottledKube(refusals=100)
    with pytest.raises(ApiException) as raised:
        kube.get(BMC, "x")
    assert raised.value.status == 429


def bmc(name: str, version: int, **spec: Any) -> dict[str, Any]:
    labels = {MANAGED_BY_LABEL: "argora-test"}
    return {
        "kind": "BMC",
        "metadata": {"name": name, "resourceVersion": str(version), "labels": labels, "managedFields": [{}]},
        "spec": spec,
        "status": {"state": "Enabled"},
    }


def trusted_index() -> WatchIndex:
    index = WatchIndex(cast(Kube, None), BMC, "argora-test")
    index._trusted = True
    return index


def test_the_index_keeps_the_newest_version_and_leaves_out_status_and_managed_fields() -> None:
    index = trusted_index()
    index.record(bmc("a", 10, protocol="Redfish"))
    index._apply({"type": "MODIFIED", "object": bmc("a", 9, protocol="IPMI")})  # a late event of before our write
    metadata = {"name": "a", "resourceVersion": "10", "labels": {MANAGED_BY_LABEL: "argora-test"}}
    assert index.objects() == {"a": {"kind": "BMC", "metadata": metadata, "spec": {"protocol": "Redfish"}}}
    index._apply({"type": "MODIFIED", "object": bmc("a", 11, protocol="IPMI")})
    assert (index.objects() or {})["a"]["spec"] == {"protocol": "IPMI"}


def test_an_object_we_deleted_does_not_come_back_with_a_late_event() -> None:
    index = trusted_index()
    index._apply({"type": "ADDED", "object": bmc("a", 5)})
    index.deleted(None, "a", bmc("a", 6))
    index._apply({"type": "MODIFIED", "object": bmc("a", 6)})
    assert index.objects() == {}
    index._apply({"type": "ADDED", "object": bmc("a", 8)})  # created anew
    assert set(index.objects() or {}) == {"a"}


def test_an_object_that_loses_our_label_leaves_the_index() -> None:
    index = trusted_index()
    index.record(bmc("a", 5))
    taken = bmc("a", 6)
    taken["metadata"]["labels"] = {}
    index.record(taken)
    assert index.objects() == {}


def test_a_watch_gap_is_reported_for_a_new_list() -> None:
    with pytest.raises(WatchGoneError):
        trusted_index()._apply({"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}})


def test_watch_events_reach_the_worker_latest_first_and_a_failing_handler_does_not_stop_it() -> None:
    handled: list[tuple[str, str, dict[str, Any]]] = []
    release = threading.Event()

    def handle(kind: Any, event_type: str, obj: dict[str, Any]) -> None:
        release.wait(5)
        if obj["spec"].get("fail"):
            raise RuntimeError("API server unavailable")
        handled.append((event_type, obj["metadata"]["name"], obj["spec"]))

    queue = WorkQueue("test", 1)
    events = QueuedEvents(queue, handle)
    index = WatchIndex(cast(Kube, None), BMC, "argora-test", listener=events.listener(BMC))
    index._trusted = True
    queue.start()
    index._apply({"type": "ADDED", "object": bmc("busy", 1)})  # the handler holds it until released
    time.sleep(0.1)
    index._apply({"type": "MODIFIED", "object": bmc("c", 2, fail=True)})
    for version in (3, 4, 5):
        index._apply({"type": "MODIFIED", "object": bmc("b", version, protocol=f"v{version}")})
    index._apply({"type": "MODIFIED", "object": bmc("a", 6)})
    index._apply({"type": "DELETED", "object": bmc("a", 7)})
    release.set()
    deadline = time.monotonic() + 5
    while len(handled) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.stop(5)
    # b's three events are one (its latest), a's MODIFIED gave way to its DELETED, c's failure stopped
    # nothing. Objects come without status and managedFields, as the index keeps them.
    assert handled == [("ADDED", "busy", {}), ("MODIFIED", "b", {"protocol": "v5"}), ("DELETED", "a", {})]


class Pages:
    page_size = 1000
    reads_in_flight = 4


def sites(*counts: int | None) -> list[Site]:
    return [Site(id=i, slug=f"s{i}", name=f"s{i}", device_count=count) for i, count in enumerate(counts)]


@pytest.mark.parametrize(
    ("devices", "counts", "by_site"),
    [
        (1000, (1000,), True),  # one page by site, two rounds of id chunks
        (10000, (10000,), True),  # ten pages, fifteen rounds
        (500, (11000,), False),  # a small cluster in a large site: three id chunks, one round
        (500, (None,), True),  # NetBox did not count: by site, as before
    ],
)
def test_bmc_interfaces_are_read_the_cheaper_way(devices: int, counts: tuple[int | None], by_site: bool) -> None:
    assert by_site_is_cheaper(cast(NetBox, Pages()), devices, sites(*counts)) is by_site


def cluster(cluster_id: int, name: str, devices: int | None) -> Cluster:
    return Cluster.model_validate({"id": cluster_id, "name": name, "type": {"id": 1}, "device_count": devices})


def test_clusters_are_grouped_by_about_a_page_of_devices() -> None:
    clusters = [cluster(i, f"c{i}", 500) for i in range(1, 21)]
    assert cluster_id_chunks(clusters, 1000) == [[i, i + 1] for i in range(1, 21, 2)]
    # A cluster larger than a page is a group of its own; one NetBox did not count counts as a page.
    mixed = [cluster(1, "a", 300), cluster(2, "b", 5000), cluster(3, "c", None), cluster(4, "d", 10)]
    assert cluster_id_chunks(mixed, 1000) == [[1], [2], [3], [4]]


class FakeInventory:
    """What a NetBox holding `clusters` and `devices` answers to `select`, and every request asked."""

    page_size = 1000
    reads_in_flight = 1

    def __init__(self, clusters: list[Cluster], devices: list[Device]) -> None:
        self.clusters, self.devices = clusters, devices
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def in_parallel(self, read: Any, items: Sequence[Any]) -> list[Any]:
        return [read(item) for item in items]

    def list_by_ids(self, endpoint: Endpoint[Any], id_filter: str, ids: Any, **filters: Any) -> list[Any]:
        return self.select(endpoint, **{id_filter: sorted(ids)}, **filters)

    def select(self, endpoint: Endpoint[Any], **filters: Any) -> list[Any]:
        self.requests.append((endpoint.path, filters))
        if endpoint is CLUSTERS:
            names = filters["name"] if isinstance(filters["name"], list) else [filters["name"]]
            return [c for c in self.clusters if c.name in names]
        assert endpoint is DEVICES
        return [
            d
            for d in self.devices
            if d.cluster is not None and d.cluster.id in filters["cluster_id"] and d.status in filters["status"]
        ]


def device(device_id: int, cluster_id: int, status: str = "active") -> Device:
    return Device.model_validate(
        {"id": device_id, "name": f"d{device_id}", "status": status, "site": {"id": 1},
         "device_type": {"id": 1, "slug": "t", "manufacturer": {"id": 1}}, "cluster": {"id": cluster_id}}
    )  # fmt: skip


def test_selectors_naming_clusters_are_read_together_with_the_same_result() -> None:
    clusters = [cluster(1, "a", 2), cluster(2, "b", 1), cluster(3, "B", 1)]
    devices = [device(10, 1), device(11, 1), device(12, 2), device(13, 3), device(14, 2, "offline")]
    selectors = [ClusterSelector(name="b"), ClusterSelector(name="a"), ClusterSelector(name="nope")]
    selectors.append(ClusterSelector(name="a", statuses=["offline", "active"]))
    selectors.append(ClusterSelector(name="b", statuses=["offline", "active"]))
    netbox = FakeInventory(clusters, devices)
    selection = read_selection(cast(NetBox, netbox), selectors, ("active",))
    # One read of clusters and one of devices for the three with the default statuses, the same for the
    # two that add offline devices.
    assert len(netbox.requests) == 4
    assert [[c.name for c in found] for found in selection.clusters_by_selector] == [["b"], ["a"], [], ["a"], ["b"]]
    # Each device once, with the first selector that selected it; the names match exactly.
    assert [(d.device.id, d.selector_index) for d in selection.devices] == [(12, 0), (10, 1), (11, 1), (14, 4)]
    # The later selectors that selected a device too: their credentials must agree with the first's.
    assert [d.also_selected_by for d in selection.devices] == [[4], [3], [3], []]


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_kopfs_per_event_lines_go_to_debug() -> None:
    quiet = PerObjectLinesAtDebug(logging.INFO)
    handled = record("kopf.objects", logging.INFO, "Handler 'register.<locals>.bmc_event' succeeded.")
    assert not quiet.filter(handled)
    assert not quiet.filter(record("kopf.objects", logging.INFO, "Timer 'register_sync.<locals>.on_resync' succeeded."))
    assert not quiet.filter(record("kopf.objects", logging.INFO, "Creation is processed: 1 succeeded; 0 failed."))
    assert quiet.filter(record("kopf.objects", logging.INFO, "Updating is processed: 0 succeeded; 1 failed."))
    assert PerObjectLinesAtDebug(logging.DEBUG).filter(record("kopf.objects", logging.INFO, handled.msg))
    assert quiet.filter(record("argora", logging.INFO, "ClusterImport ns/a synced: 1000 devices"))
    assert quiet.filter(record("kopf.objects", logging.ERROR, "Handler 'x' failed with an exception."))


class CompactedKube(Kube):
    """Serves a list in pages; the second page's continue token has expired (410), as after a compaction."""

    def __init__(self) -> None:
        super().__init__(cast(client.ApiClient, None), "argora-test")
        self.queries: list[dict[str, str]] = []

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: object | None,
        content_type: str,
        timeout: float | None,
    ) -> dict[str, Any]:
        asked = dict(query)
        self.queries.append(asked)
        if "continue" in asked:
            raise ApiException(status=410, reason="Expired")
        if "limit" in asked:
            return {"items": [bmc("a", 5)], "metadata": {"continue": "token", "resourceVersion": "5"}}
        return {"items": [bmc("a", 7), bmc("b", 7)], "metadata": {"resourceVersion": "7"}}


def test_a_list_whose_continue_token_expired_is_read_again_whole() -> None:
    kube = CompactedKube()
    items, version = kube.list_versioned(BMC, label_selector="x=y")
    # Nothing of the first page's older version is left over, and the version is the whole list's.
    assert [(item["metadata"]["name"], item["metadata"]["resourceVersion"]) for item in items] == [
        ("a", "7"),
        ("b", "7"),
    ]
    assert version == "7"
    assert kube.queries[-1] == {"labelSelector": "x=y"}


class WatchResponse:
    """A watch's streamed answer: one JSON event per line; notes whether the index was trusted as each
    line was read."""

    def __init__(self, index: WatchIndex, events: Sequence[dict[str, Any]]) -> None:
        self.index = index
        self.events = events
        self.trusted_while_read: list[bool] = []

    def stream(self, amt: int | None = None, decode_content: bool = False) -> Iterator[bytes]:
        for event in self.events:
            self.trusted_while_read.append(self.index.trusted)
            yield json.dumps(event).encode() + b"\n"

    def release_conn(self) -> None:
        """Nothing to give back."""


class WatchingApi:
    def __init__(self) -> None:
        self.response: WatchResponse | None = None

    def call_api(self, *args: Any, **kwargs: Any) -> WatchResponse | None:
        return self.response


def resumed_index(events: Sequence[dict[str, Any]]) -> tuple[WatchIndex, WatchResponse]:
    """An index whose watch was interrupted (not trusted), about to resume with `events`."""
    api = WatchingApi()
    kube = Kube(cast(client.ApiClient, api), "argora-test")
    index = WatchIndex(kube, BMC, "argora-test")
    api.response = WatchResponse(index, events)
    return index, api.response


def test_a_resumed_watch_is_trusted_only_once_the_server_shows_it_has_the_versions_since() -> None:
    bookmark = {"type": "BOOKMARK", "object": {"kind": "BMC", "metadata": {"resourceVersion": "12"}}}
    index, response = resumed_index([bookmark, {"type": "ADDED", "object": bmc("a", 13)}])
    assert index._watch("10") == "13"
    assert response.trusted_while_read == [False, True]
    assert set(index.objects() or {}) == {"a"}


def test_a_resumed_watch_the_server_cannot_continue_never_trusts_the_stale_index() -> None:
    gone = {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}
    index, response = resumed_index([gone])
    with pytest.raises(WatchGoneError):
        index._watch("10")
    assert response.trusted_while_read == [False]
    assert not index.trusted
