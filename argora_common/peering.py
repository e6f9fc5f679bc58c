"""Which replica is the active one: a `coordination.k8s.io/v1` Lease, as controller-runtime's leader election.

Each controller's replicas share the Lease `argora-<controller>` in the operator's own namespace
(`ARGORA_OWN_NAMESPACE`). The replica named in its `holderIdentity` is the active one; it writes
`renewTime` every third of `leaseDurationSeconds` (`ARGORA_PEERING_LIFETIME_SECONDS`). Every write
carries the resourceVersion last read, so two replicas never both think they won: the second gets 409
and reads again. The others stand by: they do not run kopf at all (no watches, no handlers, no passes),
serve /healthz and /metrics, answer NetBox's webhook 503, and read the Lease every `RETRY_SECONDS`.

* When a Lease counts as expired is judged by each replica's own clock, as client-go does, never by
  the time written in it (clocks of two nodes differ): a standby notes when it saw the record change,
  and takes the Lease over once it saw no change for the record's duration. A Lease nobody holds
  (released on a graceful stop, or never written) is taken at once, and so is one naming this replica:
  the same pod's restarted container (its name is the identity), whose previous process is gone.
* The holder counts its term from when it *sent* its last successful write, which is no later than
  when any standby saw that write; a standby takes over a full duration after seeing it at the
  earliest. A holder that could not renew exits `STOP_MARGIN_SECONDS` before its term ends, at once
  (`os._exit`, as controller-runtime's "leader election lost"): a graceful stop would wait for passes
  under way, which would write as soon as a cut heals, next to the replica that took over. Kubernetes
  restarts it as a new replica, which stands by. A process frozen past its term (SIGSTOP, a stalled
  node) exits as soon as it runs again: `fence()`, asked before each write argora sends, exits first.
* A graceful stop releases the Lease (an empty `holderIdentity`) once kopf has stopped: a standby takes
  over at its next read instead of waiting out the duration.

`LEASE.active()` is what the rest of the code asks (the webhook, background work); `LEASE.observe` tells
what must happen when it changes (the webhook's EndpointSlice follows the active replica). A process
that never follows a Lease (`ARGORA_STANDALONE`) is active from the start.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from argora_common.apiserver import load_api_client
from argora_common.metrics import PEERING_ACTIVE

log = logging.getLogger("argora.peering")

# How long before its term ends a holder that could not renew exits: the check below runs every
# CHECK_SECONDS, and the exit itself takes a moment.
STOP_MARGIN_SECONDS: Final = 2.0
RETRY_SECONDS: Final = 2.0  # between a standby's reads, and between a holder's failed renewals (client-go's)
CHECK_SECONDS: Final = 0.25  # between looks at whether the term ran out
MAX_REQUEST_SECONDS: Final = 5.0  # a request hanging in a cut must not use up the term


def own_identity() -> str:
    """The replica's name in the Lease: POD_ID (the chart sets the pod's name), else one made here."""
    return os.environ.get("POD_ID", "").strip() or f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


class ConflictError(Exception):
    """Someone else wrote the Lease since it was read (HTTP 409)."""


@dataclass(frozen=True)
class Record:
    """What a Lease says; `resource_version` is only for the next write's concurrency check."""

    holder: str
    duration: float
    renew_time: str
    acquire_time: str
    transitions: int
    resource_version: str = field(default="", compare=False)

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> Record:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            renew_time=str(spec.get("renewTime") or ""),
            acquire_time=str(spec.get("acquireTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
        )


def micro_time(at: datetime) -> str:
    """A MicroTime as the API server takes it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Candidate:
    """One replica's view of the Lease and the decisions made from it; every `now` is its monotonic clock."""

    identity: str
    duration: float  # the term this replica writes, leaseDurationSeconds
    record: Record | None = None  # the Lease as last read or written; None: there is none
    seen_at: float = -math.inf  # when `record` was last seen to change
    written_at: float | None = None  # when this replica sent its last successful write holding the Lease
    taken: bool = False  # another replica's name was read while this one held it
    released: bool = False

    def observe(self, record: Record | None, now: float) -> None:
        if record != self.record:
            self.seen_at = now
        self.record = record
        if self.written_at is not None and (record is None or record.holder != self.identity):
            self.taken = True

    def holds(self, now: float) -> bool:
        """Whether this replica may write: it holds the Lease and its term has not run out."""
        return (
            self.written_at is not None
            and not (self.taken or self.released)
            and now < self.written_at + self.duration - STOP_MARGIN_SECONDS
        )

    def lost(self, now: float) -> bool:
        """It held the Lease and no longer may write, without having released it."""
        return self.written_at is not None and not self.released and not self.holds(now)

    def may_acquire(self, now: float) -> bool:
        if self.written_at is not None:
            return False  # held (renewed instead) or lost (the process exits)
        record = self.record
        return record is None or record.holder in ("", self.identity) or now >= self.seen_at + record.duration

    def renewal_due(self, now: float) -> bool:
        return self.written_at is not None and now >= self.written_at + self.duration / 3

    def spec(self, wall: datetime) -> dict[str, Any]:
        """What this replica writes to acquire the Lease or to renew it."""
        stamp = micro_time(wall)
        record = self.record
        if self.written_at is not None and record is not None:
            return {"renewTime": stamp, "leaseDurationSeconds": int(self.duration)}
        transitions = 0 if record is None else record.transitions
        if record is not None and record.holder not in ("", self.identity):
            transitions += 1
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    def wrote(self, record: Record, sent_at: float) -> None:
        """A write sent at `sent_at` went through: the term counts from when it was sent."""
        self.record, self.seen_at, self.written_at = record, sent_at, sent_at


class LeaseStore(Protocol):
    """The Lease on the API server; each call raises on failure (ConflictError on 409)."""

    def read(self) -> Record | None: ...
    def create(self, spec: Mapping[str, Any]) -> Record: ...
    def patch(self, spec: Mapping[str, Any], resource_version: str) -> Record: ...


class KubeLeaseStore:
    """The Lease `name` in `namespace`, through a connection of its own: renewals must not wait behind
    the passes' requests. Its writes are not counted as argora's writes (argora_kube_writes_total)."""

    def __init__(self, name: str, namespace: str, timeout: float) -> None:
        self.name, self.namespace, self.timeout = name, namespace, timeout
        self._client = load_api_client()
        self._api = client.CoordinationV1Api(self._client)

    def _record(self, lease: object) -> Record:
        return Record.of(self._client.sanitize_for_serialization(lease))

    def read(self) -> Record | None:
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return self._record(lease)

    def create(self, spec: Mapping[str, Any]) -> Record:
        body = {"metadata": {"name": self.name, "namespace": self.namespace}, "spec": dict(spec)}
        try:
            return self._record(self._api.create_namespaced_lease(self.namespace, body, _request_timeout=self.timeout))
        except ApiException as error:
            if error.status == 409:  # created by another replica meanwhile
                raise ConflictError from error
            raise

    def patch(self, spec: Mapping[str, Any], resource_version: str) -> Record:
        # A merge patch carrying the resourceVersion read: the API server refuses it (409) when the Lease
        # changed since.
        body = {"metadata": {"resourceVersion": resource_version}, "spec": dict(spec)}
        try:
            # The generated patch method would send a JSON patch for this body: the merge patch is named here.
            lease = self._client.call_api(
                f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}",
                "PATCH",
                header_params={"Accept": "application/json", "Content-Type": "application/merge-patch+json"},
                body=body,
                auth_settings=["BearerToken"],
                response_type="object",
                _return_http_data_only=True,
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if error.status == 409:
                raise ConflictError from error
            raise
        return Record.of(lease or {})


_FAILURES: Final = (ApiException, HTTPError, OSError, ConflictError)


class Lease:
    """This process's standing in its controller's Lease; without one (standalone) it is always active."""

    def __init__(self) -> None:
        self._candidate: Candidate | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._acquired = threading.Event()
        self._observers: list[Callable[[bool], None]] = []
        self._clock: Callable[[], float] = time.monotonic
        self._exit: Callable[[int], object] = os._exit
        self._store: LeaseStore | None = None
        self._controller = ""

    def observe(self, observer: Callable[[bool], None]) -> None:
        """Have `observer(active)` called whenever this replica becomes active or stops being so (never
        without a Lease: a standalone replica is active from the start). It is called in the thread that
        decides to exit, which must never wait: it may only note the change for work done elsewhere."""
        self._observers.append(observer)

    def active(self) -> bool:
        """Whether this replica may write now: it holds the Lease, and its term has not run out."""
        with self._lock:
            return self._candidate is None or self._candidate.holds(self._clock())

    def fence(self) -> None:
        """Asked before each write: a replica whose term ran out (it was frozen, or cut off while a write
        waited) exits instead of sending it."""
        with self._lock:
            lost = self._candidate is not None and self._candidate.lost(self._clock())
        if lost:
            self._lose("its Lease ran out before a write")

    def follow(
        self,
        store: LeaseStore,
        identity: str,
        duration: float,
        controller: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        """Try to acquire the Lease, renew it once held, and exit when it is lost: in two threads, as a
        request that hangs (a cut) must not hold up the decision to exit."""
        with self._lock:
            self._candidate = Candidate(identity, duration)
            self._clock, self._exit, self._store, self._controller = clock, exit, store, controller
        PEERING_ACTIVE.labels(controller=controller).set(0)
        threading.Thread(target=self._elect, args=(store,), name="argora-lease", daemon=True).start()
        threading.Thread(target=self._check, name="argora-lease-check", daemon=True).start()

    def wait_until_active(self) -> bool:
        """Block until this replica holds the Lease (True) or is told to stop (False)."""
        while not self._stop.is_set():
            if self._acquired.wait(CHECK_SECONDS):
                return True
        return False

    def release(self) -> None:
        """After a graceful stop: leave the Lease to a standby at once, and follow it no longer."""
        self._stop.set()
        with self._lock:
            candidate, store = self._candidate, self._store
            if candidate is None or store is None:
                return
            held = candidate.holds(self._clock())
            candidate.released = True
            record = candidate.record
        if not held or record is None:
            return
        try:
            store.patch({"holderIdentity": ""}, record.resource_version)
        except Exception as error:  # a stop must end quietly; the Lease then expires as after a crash
            log.warning("could not release the Lease (%s): a standby takes over once it expires", error)
            return
        log.info("%s released the Lease", candidate.identity)

    def stop(self) -> None:
        self._stop.set()

    def _elect(self, store: LeaseStore) -> None:
        while not self._stop.is_set():
            with self._lock:
                candidate = self._candidate
                assert candidate is not None
                renewing = candidate.written_at is not None
                due = candidate.renewal_due(self._clock()) or not renewing
            done = self._attempt(store, candidate, renewing) if due else True
            with self._lock:
                wait = RETRY_SECONDS
                if done and candidate.written_at is not None:
                    wait = min(RETRY_SECONDS * 5, candidate.written_at + candidate.duration / 3 - self._clock())
            self._stop.wait(max(wait, CHECK_SECONDS))

    def _attempt(self, store: LeaseStore, candidate: Candidate, renewing: bool) -> bool:
        """One read-and-acquire, or one renewal; whether it went through (or nothing was to be done)."""
        try:
            if not renewing:
                record = store.read()
                with self._lock:
                    candidate.observe(record, self._clock())
                    if not candidate.may_acquire(self._clock()):
                        return True
            with self._lock:
                spec, record = candidate.spec(datetime.now(UTC)), candidate.record
                sent_at = self._clock()
            written = store.create(spec) if record is None else store.patch(spec, record.resource_version)
        except ConflictError:
            # Another replica wrote first: what it wrote decides (a holder reading someone else's name
            # has lost the Lease; the check exits).
            try:
                fresh = store.read()
            except _FAILURES as error:
                log.debug("Lease not read: %s", error)
                return False
            with self._lock:
                candidate.observe(fresh, self._clock())
            return False
        except Exception as error:  # whatever it was, the loop tries again; the check exits when the term ends
            log.log(logging.WARNING if renewing else logging.DEBUG, "Lease not %s: %s",
                    "renewed" if renewing else "read or acquired", error)  # fmt: skip
            return False
        with self._lock:
            if candidate.released:
                return True
            candidate.wrote(written, sent_at)
        if not renewing:
            log.info("%s acquired the Lease (transitions: %d)", candidate.identity, written.transitions)
            self._acquired.set()
        return True

    def _check(self) -> None:
        last = False
        while not self._stop.wait(CHECK_SECONDS):
            with self._lock:
                candidate = self._candidate
                assert candidate is not None
                now = self._clock()
                active, lost = candidate.holds(now), candidate.lost(now)
            if lost:
                self._lose("could not renew its Lease before others may take it over")
                return
            if active is not last:
                log.info("%s: this replica is %s", candidate.identity, "active" if active else "standing by")
                PEERING_ACTIVE.labels(controller=self._controller).set(1 if active else 0)
                for observer in self._observers:
                    observer(active)
                last = active

    def _lose(self, reason: str) -> None:
        log.error("%s: exiting, to be restarted as a new replica that stands by", reason)
        PEERING_ACTIVE.labels(controller=self._controller).set(0)
        # At once: a graceful stop would wait for passes under way, which would write next to the new holder.
        self._exit(1)


# One per process, as kopf's operator is.
LEASE: Final = Lease()
