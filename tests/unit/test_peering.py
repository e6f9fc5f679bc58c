"""A replica's standing in its controller's Lease: when it acquires, renews, stands by and must exit.

The decisions are judged by the replica's own (here injected) monotonic clock, never by the times
written in the Lease."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from argora_common.peering import STOP_MARGIN_SECONDS, Candidate, ConflictError, Lease, Record, micro_time

DURATION = 60.0


def held_by(holder: str, renewed: str = "2030-01-01T00:00:00.000000Z", version: str = "1") -> Record:
    return Record(holder, DURATION, renewed, renewed, 0, version)


def test_an_absent_or_released_lease_is_taken_at_once() -> None:
    me = Candidate("me", DURATION)
    me.observe(None, 0.0)
    assert me.may_acquire(0.0)
    me.observe(held_by(""), 1.0)
    assert me.may_acquire(1.0)


def test_a_lease_naming_this_replica_is_taken_at_once() -> None:
    """The same pod's restarted container: its previous process is gone."""
    me = Candidate("me", DURATION)
    me.observe(held_by("me"), 5.0)
    assert me.may_acquire(5.0)


def test_another_holder_counts_until_unchanged_for_its_duration_by_our_clock() -> None:
    me = Candidate("me", DURATION)
    # The renewTime written says nothing here (another node's clock): only when we saw it change counts.
    me.observe(held_by("other", renewed="2000-01-01T00:00:00.000000Z"), 100.0)
    assert not me.may_acquire(100.0 + DURATION - 1)
    me.observe(held_by("other", renewed="2000-01-01T00:00:00.000000Z", version="2"), 130.0)  # no change
    assert me.may_acquire(100.0 + DURATION)


def test_a_renewal_seen_restarts_the_count() -> None:
    me = Candidate("me", DURATION)
    me.observe(held_by("other", renewed="2030-01-01T00:00:00.000000Z"), 100.0)
    me.observe(held_by("other", renewed="2030-01-01T00:00:20.000000Z"), 120.0)
    assert not me.may_acquire(100.0 + DURATION)
    assert me.may_acquire(120.0 + DURATION)


def test_acquiring_from_another_holder_counts_a_transition() -> None:
    me = Candidate("me", DURATION)
    me.observe(Record("other", DURATION, "t", "t", 3, "7"), 0.0)
    spec = me.spec(datetime(2030, 1, 1, tzinfo=UTC))
    assert spec == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 60,
        "acquireTime": "2030-01-01T00:00:00.000000Z",
        "renewTime": "2030-01-01T00:00:00.000000Z",
        "leaseTransitions": 4,
    }
    me.observe(Record("", DURATION, "t", "t", 4, "8"), 1.0)  # released: no other holder to count
    assert me.spec(datetime(2030, 1, 1, tzinfo=UTC))["leaseTransitions"] == 4


def test_the_holder_renews_a_third_into_its_term_and_writes_only_the_renew_time() -> None:
    me = Candidate("me", DURATION)
    me.wrote(held_by("me"), 10.0)
    assert not me.renewal_due(10.0 + DURATION / 3 - 1)
    assert me.renewal_due(10.0 + DURATION / 3)
    assert me.spec(datetime(2030, 1, 1, 0, 0, 20, tzinfo=UTC)) == {
        "renewTime": "2030-01-01T00:00:20.000000Z",
        "leaseDurationSeconds": 60,
    }


def test_a_holder_that_cannot_renew_stops_writing_before_others_may_take_over() -> None:
    """Others count a full duration from when they saw the write, which is after it was sent."""
    me = Candidate("me", DURATION)
    me.wrote(held_by("me"), 10.0)
    end = 10.0 + DURATION
    assert me.holds(end - STOP_MARGIN_SECONDS - 0.01) and not me.lost(end - STOP_MARGIN_SECONDS - 0.01)
    assert not me.holds(end - STOP_MARGIN_SECONDS) and me.lost(end - STOP_MARGIN_SECONDS)
    assert not me.may_acquire(end + 100)  # the process exits; it does not try again


def test_a_holder_that_reads_another_name_has_lost_the_lease() -> None:
    me = Candidate("me", DURATION)
    me.wrote(held_by("me"), 10.0)
    me.observe(held_by("other", version="9"), 11.0)
    assert me.lost(11.0) and not me.holds(11.0)


def test_a_released_lease_is_neither_held_nor_lost() -> None:
    me = Candidate("me", DURATION)
    me.wrote(held_by("me"), 10.0)
    me.released = True
    assert not me.holds(11.0) and not me.lost(11.0 + DURATION)


def test_micro_time_is_utc_with_microseconds() -> None:
    assert micro_time(datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2030-01-02T03:04:05.000006Z"


def test_a_lease_is_read_from_the_api_servers_words() -> None:
    lease = {
        "metadata": {"resourceVersion": "42"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 60, "renewTime": "r", "leaseTransitions": 2},
    }
    assert Record.of(lease) == Record("pod-a", 60.0, "r", "", 2)
    assert Record.of(lease).resource_version == "42"
    assert Record.of({"metadata": {}}).holder == ""


class MemoryStore:
    """The Lease on an API server that checks resourceVersions and can be cut off."""

    def __init__(self) -> None:
        self.spec: dict[str, Any] | None = None
        self.version = 0
        self.cut = threading.Event()
        self.lock = threading.Lock()

    def _record(self) -> Record:
        assert self.spec is not None
        return Record.of({"metadata": {"resourceVersion": str(self.version)}, "spec": self.spec})

    def read(self) -> Record | None:
        if self.cut.is_set():
            raise OSError("connection refused")
        with self.lock:
            return None if self.spec is None else self._record()

    def create(self, spec: Mapping[str, Any]) -> Record:
        if self.cut.is_set():
            raise OSError("connection refused")
        with self.lock:
            if self.spec is not None:
                raise ConflictError
            self.spec, self.version = dict(spec), self.version + 1
            return self._record()

    def patch(self, spec: Mapping[str, Any], resource_version: str) -> Record:
        if self.cut.is_set():
            raise OSError("connection refused")
        with self.lock:
            if self.spec is None or resource_version != str(self.version):
                raise ConflictError
            self.spec, self.version = {**self.spec, **spec}, self.version + 1
            return self._record()


def test_two_leases_on_one_store_one_holds_the_other_takes_over_on_release() -> None:
    store = MemoryStore()
    first, second = Lease(), Lease()
    first.follow(store, "first", 10, "test")
    try:
        assert first.wait_until_active() and first.active()
        second.follow(store, "second", 10, "test")
        assert not second._acquired.wait(3) and not second.active()
        first.release()
        assert not first.active()
        assert second._acquired.wait(10) and second.active()
        assert store.spec is not None and store.spec["holderIdentity"] == "second"
        assert store.spec["leaseTransitions"] == 0  # released, not taken over
    finally:
        first.stop()
        second.stop()


def test_a_holder_cut_off_exits_before_its_term_ends() -> None:
    store = MemoryStore()
    exited = threading.Event()
    clock = FakeClock()
    lease = Lease()
    lease.follow(store, "me", 10, "test", clock=clock, exit=lambda code: exited.set())
    try:
        assert lease.wait_until_active()
        store.cut.set()
        clock.now += 10 - STOP_MARGIN_SECONDS - 0.1
        assert not exited.wait(1) and lease.active()
        clock.now += 0.1
        assert exited.wait(5) and not lease.active()
    finally:
        lease.stop()


def test_a_frozen_holder_exits_at_its_next_write() -> None:
    store = MemoryStore()
    exits: list[int] = []
    clock = FakeClock()
    lease = Lease()
    lease.follow(store, "me", 10, "test", clock=clock, exit=exits.append)
    assert lease.wait_until_active()
    lease.stop()  # no thread looks any more: only the write's own check is left
    lease.fence()
    assert exits == []
    clock.now += 10
    lease.fence()
    assert exits == [1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_observers_hear_when_the_replica_becomes_active_and_when_it_stops_being_so() -> None:
    store = MemoryStore()
    heard: list[bool] = []
    changed = threading.Event()
    lease = Lease()

    def observer(active: bool) -> None:
        heard.append(active)
        changed.set()

    lease.observe(observer)
    lease.follow(store, "me", 10, "test", exit=lambda code: None)
    try:
        assert changed.wait(10) and heard == [True]
        changed.clear()
        lease.release()
        assert not lease.active()
    finally:
        lease.stop()


def test_without_a_lease_a_replica_is_active() -> None:
    assert Lease().active()
