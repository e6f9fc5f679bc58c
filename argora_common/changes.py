"""NetBox changes reach the cluster in seconds: NetBox's change log, polled, and its webhooks, pushed.

Both sources give the same `Change`s. The last pass over each resource left in the `ChangeIndex` the
NetBox objects it read; a change maps to the resources that hold the changed object or an object its
snapshots name (a device's cluster, an interface's device, an address's interface), and the
`ChangeFeed` queues one pass for each of them a short window later (the controller's work queue keeps one
entry per resource, however many changes came in it). Its looks at the change log are work of the same
queue. Changes this process wrote itself (known by NetBox's request id) start nothing, so a controller
that writes to NetBox never answers its own writes.

The change log is read with the slim fields first, overlapping the last look, so that a change whose
transaction committed late is not missed; only entries not seen before are read again with their
snapshots. While nothing changes, a look is one request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from argora_common.errors import brief
from argora_common.metrics import CHANGE_LOG_READ, NETBOX_CHANGES, NETBOX_CHANGES_FAILURES
from argora_common.netbox import NetBox, NetBoxError, NetBoxRejectedError
from argora_common.netbox_schema import OBJECT_CHANGE_SNAPSHOTS, OBJECT_CHANGES, ObjectChange
from argora_common.settings import ENV_PREFIX, Settings
from argora_common.workqueue import WorkQueue

log = logging.getLogger("argora.changes")

type NetBoxId = tuple[str, int]  # a NetBox object: its type as the change log names it, and its id

CLUSTER: Final = "virtualization.cluster"
DEVICE: Final = "dcim.device"
INTERFACE: Final = "dcim.interface"
MAC_ADDRESS: Final = "dcim.macaddress"
IP_ADDRESS: Final = "ipam.ipaddress"
PREFIX: Final = "ipam.prefix"
PLATFORM: Final = "dcim.platform"
SITE: Final = "dcim.site"

# Keys of a snapshot (the change log's serialization: related objects as plain ids) that name another
# object a resource may hold: a new device names its cluster, a new MAC its interface.
RELATED: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    DEVICE: (
        ("cluster", CLUSTER), ("site", SITE), ("oob_ip", IP_ADDRESS), ("primary_ip4", IP_ADDRESS),
        ("primary_ip6", IP_ADDRESS),
    ),
    INTERFACE: (("device", DEVICE), ("lag", INTERFACE)),
    MAC_ADDRESS: (("assigned_object_id", INTERFACE),),
    IP_ADDRESS: (("assigned_object_id", INTERFACE),),
}  # fmt: skip

WEBHOOK_ACTIONS: Final = {"created": "create", "updated": "update", "deleted": "delete"}
# Entries are re-read this far back on every look: a bulk write's transaction may commit its change
# records well after their timestamps, and a look in between must not have passed them by.
OVERLAP: Final = timedelta(minutes=5)
# Changes held back behind our own writes are looked at again this soon: a write is answered within a request.
HELD_RECHECK_SECONDS: Final = 0.1


class FeedTask(Enum):
    """The change feed's own work in the controller's queue."""

    LOOK = "look at NetBox's change log"
    RELEASE_HELD = "submit the changes held back behind our own writes"


@dataclass(frozen=True)
class ChangeSet:
    """What changed in NetBox since a resource's last pass, as far as its delta pass needs to know: the
    objects created, updated or deleted, and those and the objects their snapshots name."""

    changed: frozenset[NetBoxId] = frozenset()
    named: frozenset[NetBoxId] = frozenset()

    def __or__(self, other: ChangeSet) -> ChangeSet:
        return ChangeSet(self.changed | other.changed, self.named | other.named)

    def __len__(self) -> int:
        return len(self.changed)

    def ids(self, object_type: str) -> set[int]:
        """The ids of the named objects of one type."""
        return {object_id for named_type, object_id in self.named if named_type == object_type}


@dataclass(frozen=True)
class Change:
    """One NetBox object created, updated or deleted, with its snapshots before and after."""

    object_type: str
    object_id: int
    action: str
    request_id: str | None
    snapshots: tuple[Mapping[str, Any], ...] = ()

    def refs(self) -> set[NetBoxId]:
        """The object and the objects its snapshots name."""
        refs = {(self.object_type, self.object_id)}
        for key, related_type in RELATED.get(self.object_type, ()):
            for snapshot in self.snapshots:
                value = snapshot.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    refs.add((related_type, value))
        return refs

    @classmethod
    def from_log(cls, entry: ObjectChange) -> Change:
        snapshots = tuple(s for s in (entry.prechange_data, entry.postchange_data) if isinstance(s, Mapping))
        return cls(entry.changed_object_type, entry.changed_object_id, entry.action, entry.request_id, snapshots)


class WebhookPayload(BaseModel):
    """The JSON body NetBox sends when a webhook has no body template of its own."""

    model_config = ConfigDict(extra="ignore")

    event: str
    object_type: str
    data: dict[str, Any]
    snapshots: dict[str, dict[str, Any] | None] | None = None
    request: dict[str, Any] | None = None

    def change(self) -> Change | None:
        """The change it reports; None for events that are not object changes (jobs)."""
        action = WEBHOOK_ACTIONS.get(self.event)
        object_id = self.data.get("id")
        if action is None or not isinstance(object_id, int):
            return None
        snapshots = tuple(s for s in (self.snapshots or {}).values() if isinstance(s, Mapping))
        request_id = (self.request or {}).get("id")
        return Change(self.object_type, object_id, action, str(request_id) if request_id else None, snapshots)


@dataclass(frozen=True)
class Interest:
    """Which NetBox object types matter to a controller."""

    object_types: frozenset[str]
    # Types whose every change may concern every resource: a new or renamed cluster may now match a
    # selector that held nothing of it.
    everyone: frozenset[str] = frozenset()


class ChangeIndex[K: Hashable]:
    """Per resource, the NetBox objects its last pass read; and the way back, object -> resources."""

    def __init__(self) -> None:
        self._refs: dict[K, frozenset[NetBoxId]] = {}
        self._holders: dict[NetBoxId, set[K]] = defaultdict(set)
        self._lock = threading.Lock()

    def record(self, key: K, refs: Iterable[NetBoxId]) -> None:
        new = frozenset(refs)
        with self._lock:
            self._drop(key)
            self._refs[key] = new
            for ref in new:
                self._holders[ref].add(key)

    def forget(self, key: K) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: K) -> None:
        for ref in self._refs.pop(key, frozenset()):
            holders = self._holders[ref]
            holders.discard(key)
            if not holders:
                del self._holders[ref]

    def holders(self, refs: Iterable[NetBoxId]) -> set[K]:
        with self._lock:
            return {key for ref in refs for key in self._holders.get(ref, ())}

    def keys(self) -> set[K]:
        with self._lock:
            return set(self._refs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._holders)


class ChangeFeed[K: Hashable]:
    """Maps NetBox changes to the resources they concern and asks for their passes a short window later
    (`trigger(key, delay, changes)`: what changed for that resource, None when it is unknown); the pass
    itself, its retries and its report are the controller's as always."""

    def __init__(
        self,
        netbox: NetBox,
        interest: Interest,
        settings: Settings,
        trigger: Callable[[K, float, ChangeSet | None], None],
        queue: WorkQueue,
        describe: Callable[[K], str] = str,
        *,
        controller: str,
    ) -> None:
        self.netbox = netbox
        self.controller = controller
        self.interest = interest
        self.index: ChangeIndex[K] = ChangeIndex()
        self._trigger = trigger
        self._queue = queue
        self._describe = describe
        self._interval = settings.netbox_changes_interval
        self._resync = settings.resync_interval_seconds
        self._window = settings.change_coalesce_seconds
        self._held: list[tuple[int, str, Change]] = []  # (write ticket, source, change) held back
        self._changed: dict[K, float] = {}  # key -> monotonic time of its last relevant change
        self._lock = threading.Lock()
        self._cursor: datetime | None = None  # NetBox's time of the last look (or its newest entry)
        self._based = False  # where the change log stood at start is known
        self._seen: dict[int, datetime] = {}  # ids of entries inside the overlap, already handled
        self._log_readable = False  # the last look at the change log succeeded
        self._complaint: str | None = None  # what the last failed look said, to say it once
        queue.route(FeedTask, self.work)

    @property
    def polling(self) -> bool:
        return self._interval > 0

    def start(self) -> None:
        if self.polling:
            self._queue.add(FeedTask.LOOK)

    def work(self, task: FeedTask) -> float | None:
        """The queue's handler: returns when the task is due again."""
        if task is FeedTask.LOOK:
            return self.look()
        return self._release_held()

    # ---- mapping ---------------------------------------------------------------------------------

    def submit(self, changes: Iterable[Change], source: str) -> set[K]:
        """Queue a pass for every resource the changes concern; returns those resources. A change that
        may be one of our writes still waiting for its answer is held back until that answer is in."""
        keys: dict[K, ChangeSet] = {}
        relevant = ignored = 0
        in_flight = self.netbox.own_writes.last_begun()
        for change in changes:
            if change.object_type not in self.interest.object_types or change.request_id in self.netbox.own_writes:
                ignored += 1
                continue
            if in_flight:
                with self._lock:
                    self._held.append((in_flight, source, change))
                self._queue.add(FeedTask.RELEASE_HELD, HELD_RECHECK_SECONDS)
                continue
            relevant += 1
            named = change.refs()
            holders = self.index.holders(named)
            if change.object_type in self.interest.everyone:
                holders |= self.index.keys()
            this = ChangeSet(frozenset({(change.object_type, change.object_id)}), frozenset(named))
            for key in holders:
                keys[key] = keys[key] | this if key in keys else this
        NETBOX_CHANGES.labels(source=source, relevance="relevant").inc(relevant)
        NETBOX_CHANGES.labels(source=source, relevance="ignored").inc(ignored)
        if keys:
            log.info("NetBox changed: asking for a pass of %s", ", ".join(sorted(map(self._describe, keys))))
            self._ask(keys)
        log.debug("%s: %d relevant and %d other changes -> %d resources", source, relevant, ignored, len(keys))
        return set(keys)

    def _release_held(self) -> float | None:
        """Submit again the held-back changes whose writes have all been answered; look again soon while
        some still wait."""
        with self._lock:
            ready = [held for held in self._held if self.netbox.own_writes.settled(held[0])]
            self._held = [held for held in self._held if not self.netbox.own_writes.settled(held[0])]
            waiting = bool(self._held)
        for _, source, change in ready:
            self.submit([change], source)
        return HELD_RECHECK_SECONDS if waiting else None

    def quiet_since(self, key: K, since: float) -> bool:
        """Whether the change log is being followed and says nothing about `key` changed after `since`
        (a monotonic time): then a resync may reuse what the last pass read."""
        with self._lock:
            changed = self._changed.get(key, -math.inf)
        return self.polling and self._log_readable and changed < since

    def forget(self, key: K) -> None:
        self.index.forget(key)
        with self._lock:
            self._changed.pop(key, None)

    def _ask(self, keys: Mapping[K, ChangeSet | None]) -> None:
        """A pass of each key once the coalescing window has passed: one that re-reads what changed, or
        everything when that is not known."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._changed[key] = now
        for key, changes in keys.items():
            self._trigger(key, self._window, changes)

    # ---- the change log ----------------------------------------------------------------------------

    def look(self) -> float:
        """One look at the change log; returns the seconds until the next."""
        try:
            if not self._based:
                self._take_baseline()
            else:
                self._read_news()
        except NetBoxRejectedError as error:
            forbidden = error.status_code in (401, 403)
            self._failed(error, "forbidden" if forbidden else "unavailable")
            return self._resync if forbidden else self._interval
        except NetBoxError as error:
            self._failed(error, "unavailable")
            return self._interval
        except Exception as error:
            # Anything else (a proxy's HTML page, an entry the schema refuses) must not end the poll
            # thread: resyncs would go on trusting the last reads for ever.
            self._failed(error, "unexpected")
            return self._interval
        if self._complaint is not None:
            log.info("NetBox's change log can be read again: changes reach passes within %.0fs", self._interval)
            self._complaint = None
        self._log_readable = True
        CHANGE_LOG_READ.set_to_current_time()
        return self._interval

    def _take_baseline(self) -> None:
        """Where the change log stands: what it holds within the overlap is taken as seen, as the passes
        at start read NetBox after it."""
        self._read(submit=False)
        self._based = True
        # Passes may have read NetBox before the baseline could be taken (NetBox down at start): what
        # changed in between is unknown, so each resource read so far is read again.
        missed = self.index.keys()
        if missed:
            self._ask(dict.fromkeys(missed))

    def _read_news(self) -> None:
        self._read(submit=True)

    def _read(self, *, submit: bool) -> None:
        """The entries since the last look's time less the overlap; the new ones, with their snapshots,
        go to `submit`. The window is anchored at NetBox's clock, so a burst of changes stops being read
        again once the overlap has passed, whether anything changed since or not."""
        looked_at = self.netbox.server_now()
        since = self._cursor or looked_at
        entries = self.netbox.select(
            OBJECT_CHANGES,
            time_after=(since - OVERLAP).isoformat(),
            changed_object_type=sorted(self.interest.object_types),
        )
        fresh = [entry for entry in entries if entry.id not in self._seen]
        if fresh and submit:
            detailed = self.netbox.list_by_ids(OBJECT_CHANGE_SNAPSHOTS, "id", [entry.id for entry in fresh])
            self.submit([Change.from_log(entry) for entry in sorted(detailed, key=lambda e: e.id)], "changelog")
        for entry in fresh:
            self._seen[entry.id] = entry.time
        self._cursor = max([looked_at, *(entry.time for entry in entries)])
        horizon = self._cursor - OVERLAP  # the next look reads from here
        self._seen = {entry_id: at for entry_id, at in self._seen.items() if at >= horizon}

    def _failed(self, error: Exception, reason: str) -> None:
        """Reads are no longer reused; said once per reason until a look succeeds again."""
        self._log_readable = False
        NETBOX_CHANGES_FAILURES.labels(controller=self.controller, reason=reason).inc()
        if self._complaint == reason:
            return
        self._complaint = reason
        if reason == "forbidden":
            log.warning(
                "NetBox does not let our token read the change log (%s): NetBox changes reach passes only at "
                "the resync, every %.0fs; allow the token's user to view 'core | object change', "
                "or set %sNETBOX_CHANGES_INTERVAL=0 to stop trying",
                brief(error), self._resync, ENV_PREFIX,
            )  # fmt: skip
        else:
            log.warning(
                "cannot read NetBox's change log (%s), trying again every %.0fs: %s",
                reason, self._interval, brief(error).partition("\n")[0],  # a schema error's first line
            )  # fmt: skip
