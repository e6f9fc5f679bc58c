"""Which replica is the active one, as kopf's peering decides, and what a replica does when it loses it.

kopf elects the active replica: each writes a keep-alive into the peering object (its priority, when it
was last seen and its lifetime) every `lifetime - 5..10` seconds, pauses its watches while a live peer
has a higher priority, and counts a peer not seen for its lifetime as gone. What kopf leaves open:

* A replica cut off from the API server does not know it was replaced: kopf keeps it running, and when
  the cut heals it carries on at once (it has the highest priority), while the replica that took over
  meanwhile pauses only once it sees the returning one's next keep-alive; both write in between. And
  kopf's keep-alive gives up after its retries (about a minute), so a replica back from a longer cut
  never writes one again and is never paused: both stay active. Here a replica whose keep-alive
  expires while other replicas were there to take over exits before the others take over; Kubernetes
  restarts it as a new peer, which stands by. A replica alone keeps running (nobody else could write),
  and exits only when, with the API server reachable again, its keep-alive stays expired: kopf's
  keep-alive has given up.
* Argora's own background work (passes NetBox's changes ask for, repairs of edited objects, the resync
  threads of argora-metal3 and argora-ipaddress) runs outside kopf's handlers, which kopf's pause
  stops; it asks `LEASE.active()` first. What must happen when the verdict changes (the webhook's
  endpoint follows the active replica) is told by `Lease.observe`.

Priorities come from the start time (`seniority`): the longest-running replica leads, so a replica that
starts or restarts never takes over from a running one; a takeover by priority would let both write
until the older one sees the newcomer's keep-alive.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from argora_common.kube import Kind, Kube
from argora_common.metrics import PEERING_ACTIVE

log = logging.getLogger("argora.peering")

# The priority of a replica started at the epoch; later starts get lower ones. Below 2**53: the
# priority travels as a JSON number.
_PRIORITY_BASE: Final = 2**53
# How long before its keep-alive expires a replica that could not renew it stops: the others take over
# at the expiry at the earliest (kopf renews 5 to 10 seconds before it).
STOP_MARGIN_SECONDS: Final = 1.5
READ_SECONDS: Final = 1.0  # between reads of the peering object
READ_TIMEOUT_SECONDS: Final = 2.0  # a read hanging in a cut must not delay the decision
CHECK_SECONDS: Final = 0.25  # between decisions


def seniority(started: float) -> int:
    """kopf's priority of a replica started at `started` (epoch seconds): the earlier, the higher;
    microseconds apart are enough to tell two replicas apart (equal priorities pause both)."""
    return _PRIORITY_BASE - int(started * 1_000_000)


def own_identity() -> str:
    """The replica's name in the peering object: kopf's, POD_ID (the chart sets the pod's name), or one
    made here and put into POD_ID for kopf to take the same."""
    identity = os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
    os.environ["POD_ID"] = identity
    return identity


@dataclass(frozen=True)
class Peer:
    """One entry of a peering object's status, as kopf writes it."""

    identity: str
    priority: int
    deadline: float  # epoch seconds: lastseen + lifetime


def peers_of(status: Mapping[str, Any]) -> list[Peer]:
    """kopf's entries `{identity: {priority, lifetime, lastseen}}`; ones it could not read are left out."""
    peers = []
    for identity, entry in status.items():
        try:
            seen = datetime.fromisoformat(entry["lastseen"]).timestamp()
            peers.append(Peer(identity, int(entry.get("priority", 0)), seen + float(entry.get("lifetime", 60))))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return peers


class Verdict(StrEnum):
    ACTIVE = "active"
    STANDBY = "standby"
    EXIT = "exit"


@dataclass
class Standing:
    """What one replica knows of its peering from its reads, and what it makes of it."""

    identity: str
    priority: int
    lifetime: float
    # When the others count this replica as gone unless it renews its keep-alive; None until its first
    # keep-alive is read (kopf writes it once its startup handlers are done): nobody counts on it yet.
    deadline: float | None = None
    rivals: bool = False  # at the last read, other live replicas were there to take over
    leading: bool = False  # at the last read, no live replica had a priority as high as ours
    reached: float | None = None  # when the peering object was last read

    def observe(self, peering_objects: Iterable[Sequence[Peer]], now: float) -> None:
        """A read of the peering object(s): one per namespace when the controller is limited to some."""
        deadlines: list[float] = []
        rivals, leading = False, True
        for peers in peering_objects:
            # Same identity and priority: this process (a restart in the same pod keeps the name).
            own = [p for p in peers if p.identity == self.identity and p.priority == self.priority]
            live = [p for p in peers if p.deadline > now and p.identity != self.identity]
            deadlines.extend(p.deadline for p in own)
            rivals = rivals or bool(live)
            leading = leading and bool(own) and all(p.priority < self.priority for p in live)
        if deadlines:
            self.deadline = min(deadlines)
        self.rivals, self.leading, self.reached = rivals, leading, now

    def verdict(self, now: float) -> tuple[Verdict, str]:
        """A replica stands by until it reads its first keep-alive, as kopf starts paused."""
        if self.deadline is None:
            return Verdict.STANDBY, ""
        if now < self.deadline - STOP_MARGIN_SECONDS:
            return (Verdict.ACTIVE if self.leading else Verdict.STANDBY), ""
        if self.rivals:
            return Verdict.EXIT, "could not renew its keep-alive, and other replicas take over when it expires"
        if self.reached is not None and self.reached >= self.deadline + self.lifetime:
            return Verdict.EXIT, "kopf no longer renews its keep-alive although the API server answers"
        # Alone, and cut off (or just back): nobody else writes, kopf renews once it gets through.
        return Verdict.STANDBY, ""


class Lease:
    """This process's standing in its peering; without peering (standalone) it is always active."""

    def __init__(self) -> None:
        self._standing: Standing | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last = Verdict.ACTIVE
        self._observers: list[Callable[[bool], None]] = []

    def observe(self, observer: Callable[[bool], None]) -> None:
        """Have `observer(active)` called whenever this replica becomes active or stops being so (never
        without peering: a standalone replica is active from the start). It is called in the thread that
        decides to exit, which must never wait: it may only note the change for work done elsewhere."""
        self._observers.append(observer)

    def active(self) -> bool:
        """Whether this replica may write now: it leads, and its keep-alive is current."""
        with self._lock:
            return self._standing is None or self._standing.verdict(time.time())[0] is Verdict.ACTIVE

    def follow(
        self,
        kube: Kube,
        targets: Sequence[tuple[Kind, str | None]],
        name: str,
        standing: Standing,
        controller: str,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        """Read the peering object(s) `name` (`targets`: kind and namespace) and decide, in two threads:
        a read that hangs (a cut) must not hold up the decision to stop."""
        with self._lock:
            self._standing = standing
        self._last = Verdict.STANDBY
        PEERING_ACTIVE.labels(controller=controller).set(0)

        def read() -> None:
            while not self._stop.wait(READ_SECONDS):
                try:
                    statuses = [
                        ((kube.get(kind, name, namespace, timeout=READ_TIMEOUT_SECONDS) or {}).get("status") or {})
                        for kind, namespace in targets
                    ]
                except (ApiException, HTTPError, OSError) as error:
                    log.debug("peering %s not read: %s", name, error)
                    continue
                with self._lock:
                    standing.observe([peers_of(status) for status in statuses], time.time())

        def check() -> None:
            while not self._stop.wait(CHECK_SECONDS):
                with self._lock:
                    verdict, reason = standing.verdict(time.time())
                if verdict is Verdict.EXIT:
                    log.error("%s %s: exiting, to be restarted as a new replica that stands by", name, reason)
                    # At once: a graceful stop would wait for passes under way, which would write as
                    # soon as the cut heals, next to the replica that took over.
                    exit(1)
                    return
                if verdict is not self._last:
                    log.info("%s: this replica is %s (peering %s)", standing.identity, verdict, name)
                    PEERING_ACTIVE.labels(controller=controller).set(1 if verdict is Verdict.ACTIVE else 0)
                    for observer in self._observers:  # EXIT left above: the change is to or from ACTIVE
                        observer(verdict is Verdict.ACTIVE)
                    self._last = verdict

        threading.Thread(target=read, name="argora-peering-read", daemon=True).start()
        threading.Thread(target=check, name="argora-peering-check", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


# One per process, as kopf's operator is.
LEASE: Final = Lease()
