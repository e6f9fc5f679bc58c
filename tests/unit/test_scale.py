"""The pieces that let a pass scale: bounded parallel work, the API server's 429s, the watch index's
bookkeeping of versions, the choice of how to read BMC interfaces, and per-object log lines at DEBUG."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.converge import in_parallel
from argora_common.inventory import by_site_is_cheaper
from argora_common.kinds import BMC
from argora_common.kube import MANAGED_BY_LABEL, Kube
from argora_common.netbox import NetBox
from argora_common.netbox_schema import Site
from argora_common.operator import PerObjectLinesAtDebug
from argora_common.watch import WatchGoneError, WatchIndex


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

    in_parallel(range(40), work, 4)
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
        in_parallel(range(100), work, 2)
    assert len(started) < 10


class ThrottledKube(Kube):
    """Answers 429 with Retry-After a number of times, then serves."""

    def __init__(self, refusals: int) -> None:
        super().__init__(cast(client.ApiClient, None), "argora-test", writes_in_flight=2)
        self.refusals = refusals
        self.calls: list[float] = []

    def _send(
        self, method: str, path: str, query: Sequence[tuple[str, str]], body: object | None, content_type: str
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


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_kopfs_per_event_lines_go_to_debug() -> None:
    quiet = PerObjectLinesAtDebug(logging.INFO)
    handled = record("kopf.objects", logging.INFO, "Handler 'register.<locals>.bmc_event' succeeded.")
    assert not quiet.filter(handled)
    assert PerObjectLinesAtDebug(logging.DEBUG).filter(record("kopf.objects", logging.INFO, handled.msg))
    assert quiet.filter(record("argora", logging.INFO, "ClusterImport ns/a synced: 1000 devices"))
    assert quiet.filter(record("kopf.objects", logging.ERROR, "Handler 'x' failed with an exception."))
