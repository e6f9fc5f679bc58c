"""A replica's standing in kopf's peering: who leads, when it stands by, when it must exit."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from kubernetes import client

from argora_common import operator, peering
from argora_common.kube import Kind, Kube
from argora_common.passes import PassRunner
from argora_common.peering import Lease, Peer, Standing, Verdict, peers_of, seniority

NOW = 1_800_000_000.0
LIFETIME = 60.0


def entry(seen: float, priority: int, lifetime: float = LIFETIME) -> dict[str, Any]:
    """A keep-alive as kopf writes it."""
    return {"priority": priority, "lifetime": lifetime, "lastseen": datetime.fromtimestamp(seen, UTC).isoformat()}


def standing(priority: int = 100) -> Standing:
    return Standing("me", priority, LIFETIME)


def test_an_earlier_start_has_the_higher_priority_and_every_microsecond_counts() -> None:
    assert seniority(NOW) > seniority(NOW + 0.000001) > seniority(NOW + 3600)
    assert 0 < seniority(time.time()) < 2**53


def test_kopfs_entries_are_read_and_unreadable_ones_left_out() -> None:
    status = {"a": entry(NOW, 5), "b": {"priority": 1}, "c": "not an entry", "d": {"lastseen": "yesterday"}}
    assert peers_of(status) == [Peer("a", 5, NOW + LIFETIME)]


def test_a_starting_replica_stands_by_until_it_reads_that_it_leads() -> None:
    mine = standing()
    assert mine.verdict(NOW) == (Verdict.STANDBY, "")
    mine.observe([peers_of({"me": entry(NOW, 100), "old": entry(NOW - 2 * LIFETIME, 999)})], NOW + 1)
    assert mine.verdict(NOW + 1)[0] is Verdict.ACTIVE


def test_a_live_peer_of_higher_priority_leads() -> None:
    mine = standing(priority=100)
    mine.observe([peers_of({"me": entry(NOW, 100), "other": entry(NOW, 200)})], NOW + 1)
    assert mine.verdict(NOW + 1)[0] is Verdict.STANDBY


def test_in_namespaced_peerings_a_replica_leads_only_where_it_leads_in_all() -> None:
    mine = standing(priority=100)
    mine.observe([peers_of({"me": entry(NOW, 100)}), peers_of({"me": entry(NOW, 100), "x": entry(NOW, 300)})], NOW)
    assert mine.verdict(NOW)[0] is Verdict.STANDBY


def test_a_cut_replica_exits_before_its_keep_alive_expires_when_others_can_take_over() -> None:
    mine = standing(priority=200)
    mine.observe([peers_of({"me": entry(NOW, 200), "standby": entry(NOW, 100)})], NOW + 1)
    # No read gets through from here on: the decision is made on the last one.
    assert mine.verdict(NOW + LIFETIME - 2)[0] is Verdict.ACTIVE
    verdict, reason = mine.verdict(NOW + LIFETIME - peering.STOP_MARGIN_SECONDS)
    assert verdict is Verdict.EXIT
    assert "other replicas take over" in reason


def test_a_renewed_keep_alive_keeps_it_active() -> None:
    mine = standing(priority=200)
    mine.observe([peers_of({"me": entry(NOW, 200), "standby": entry(NOW, 100)})], NOW + 1)
    mine.observe([peers_of({"me": entry(NOW + 50, 200), "standby": entry(NOW + 45, 100)})], NOW + 51)
    assert mine.verdict(NOW + LIFETIME + 10)[0] is Verdict.ACTIVE


def test_a_replica_alone_stands_by_while_cut_and_leads_again_once_renewed() -> None:
    mine = standing(priority=200)
    mine.observe([peers_of({"me": entry(NOW, 200)})], NOW + 1)
    assert mine.verdict(NOW + LIFETIME + 30)[0] is Verdict.STANDBY
    mine.observe([peers_of({"me": entry(NOW + LIFETIME + 31, 200)})], NOW + LIFETIME + 32)
    assert mine.verdict(NOW + LIFETIME + 32)[0] is Verdict.ACTIVE


def test_a_replica_alone_exits_when_kopf_stopped_renewing_although_the_api_server_answers() -> None:
    mine = standing(priority=200)
    mine.observe([peers_of({"me": entry(NOW, 200)})], NOW + 1)
    mine.observe([peers_of({"me": entry(NOW, 200)})], NOW + 2 * LIFETIME)
    verdict, reason = mine.verdict(NOW + 2 * LIFETIME)
    assert verdict is Verdict.EXIT
    assert "no longer renews" in reason


def test_the_entry_of_an_earlier_process_of_the_same_pod_is_not_ours() -> None:
    """A container restarted in its pod keeps the pod's name as kopf identity, with a new priority."""
    mine = standing(priority=300)
    mine.observe([peers_of({"me": entry(NOW - LIFETIME, 200), "other": entry(NOW, 100)})], NOW + 1)
    assert mine.deadline is None
    assert mine.verdict(NOW + LIFETIME)[0] is Verdict.STANDBY  # no keep-alive of its own yet


def test_a_replica_whose_startup_takes_longer_than_a_lifetime_stands_by() -> None:
    """kopf writes the first keep-alive after the startup handlers, which may retry for minutes."""
    mine = standing(priority=100)
    mine.observe([peers_of({"other": entry(NOW + 5 * LIFETIME, 200)})], NOW + 5 * LIFETIME)
    assert mine.verdict(NOW + 5 * LIFETIME)[0] is Verdict.STANDBY


class CutKube(Kube):
    """An API server that stops answering when told."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(cast(client.ApiClient, None), "argora-test")
        self.status = status
        self.cut = threading.Event()

    def get(
        self, kind: Kind, name: str, namespace: str | None = None, *, timeout: float | None = None
    ) -> dict[str, Any] | None:
        if self.cut.is_set():
            raise OSError("connection refused")
        return {"status": self.status}


def test_the_lease_exits_the_process_when_cut_off_with_a_standby_around() -> None:
    now = time.time()
    # Its keep-alive, seen 12 s ago with a lifetime of 16 s, expires in 4 s.
    kube = CutKube({"me": entry(now - 12, 200, lifetime=16), "standby": entry(now, 100)})
    exited = threading.Event()
    lease = Lease()
    lease.follow(
        kube,
        [(operator.CLUSTER_PEERING, None)],
        "argora-test",
        Standing("me", 200, 16),
        "test",
        exit=lambda code: exited.set(),
    )
    try:
        assert not exited.wait(1.5) and lease.active()
        kube.cut.set()
        assert exited.wait(5)
        assert time.time() < now + 4  # before the standby takes over
        assert not lease.active()
    finally:
        lease.stop()


def test_observers_hear_when_the_replica_becomes_active_and_when_it_stops_being_so() -> None:
    now = time.time()
    kube = CutKube({"me": entry(now, 200)})
    heard: list[bool] = []
    changed = threading.Event()
    lease = Lease()

    def observer(active: bool) -> None:
        heard.append(active)
        changed.set()

    lease.observe(observer)
    lease.follow(kube, [(operator.CLUSTER_PEERING, None)], "argora-test", Standing("me", 200, LIFETIME), "test")
    try:
        assert changed.wait(30) and heard == [True]
        changed.clear()
        # An older replica's keep-alive (a higher priority) comes back: this one stands by.
        kube.status["older"] = entry(time.time(), 300)
        assert changed.wait(30) and heard == [True, False]
    finally:
        lease.stop()


class AnnotatingKube(Kube):
    def __init__(self) -> None:
        super().__init__(cast(client.ApiClient, None), "argora-test")
        self.annotated: list[str] = []

    def annotate(
        self, kind: Kind, name: str, namespace: str | None, annotations: Mapping[str, str | None], uid: str = ""
    ) -> bool:
        self.annotated.append(name)
        return True


def test_a_standby_asks_for_no_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = AnnotatingKube()
    trigger = operator.request_pass(kube, operator.CLUSTER_PEERING, cast(PassRunner[Any, Any, Any], None))
    monkeypatch.setattr(peering.LEASE, "active", lambda: False)
    trigger(("", "ci"))
    assert kube.annotated == []
    monkeypatch.setattr(peering.LEASE, "active", lambda: True)
    trigger(("", "ci"))
    assert kube.annotated == ["ci"]


def test_background_work_is_done_only_while_active(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the watch indexes' events (repairs) and NetBox's changes (requested passes) start."""
    done: list[str] = []
    work = operator.while_active(done.append)
    monkeypatch.setattr(peering.LEASE, "active", lambda: False)
    work("standing by")
    monkeypatch.setattr(peering.LEASE, "active", lambda: True)
    work("active")
    assert done == ["active"]


def test_without_peering_a_replica_is_active() -> None:
    assert Lease().active()
