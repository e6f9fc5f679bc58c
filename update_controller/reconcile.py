"""The steps of an Update's pass for the shared skeleton: read NetBox in bulk, plan the corrections,
apply them (or only report them), report.

Nothing is written before every read succeeded, so a failed read never leads to a delete. When NetBox
fails in the middle of the writes, the failure's report (status and Events) says what it took before.

A pass for NetBox's changes (a delta pass) reads again only the devices they concern, with their
interfaces and IPs, on top of the last read, and plans every device as a full pass would. The change
feed leaves out the process's own writes, so the devices any pass wrote to (or NetBox refused a write
of) since a read began are read again by the next delta pass too; a resync always reads NetBox whole.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Final

from argora_common import crds
from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, PLATFORM, ChangeSet, Interest, NetBoxId
from argora_common.crds import MAX_PROBLEMS, Change, UpdateCounts, UpdateSpec, UpdateStatus
from argora_common.errors import BadInputError, Decision
from argora_common.identity import ARGORA_UPDATE
from argora_common.inventory import SelectedDevice, Selection, read_selection, selection_refs
from argora_common.inventory_delta import cheaper_to_read_whole, select_devices
from argora_common.kube import Kube, argora_kind
from argora_common.netbox import NetBox, NetBoxError
from argora_common.netbox_schema import DEVICES, INTERFACES, IP_ADDRESSES, PLATFORMS, Interface, IPAddress, Ref
from argora_common.passes import Body, Key, PassRunner, Tracking, key_of
from argora_common.settings import Settings
from argora_common.status import (
    Event,
    failed_status,
    make_condition,
    merge_conditions,
    now,
    post_events,
    report_failure,
    short_list,
    write_status,
)
from update_controller.apply import Applier, ApplyResult
from update_controller.desired import Action, Correction, Plan, plan_updates

UPDATE: Final = argora_kind(crds.UPDATE)
INTEREST: Final = Interest(frozenset({CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, PLATFORM}), everyone=frozenset({CLUSTER}))
FIELD_MANAGER: Final = ARGORA_UPDATE.field_manager
DEFAULT_STATUSES: Final = ("active", "staged")
EVENT_REASONS: Final = {
    Action.RENAME: "InterfacesRenamed",
    Action.OOB_IP: "OOBIPsSet",
    Action.PLATFORM: "PlatformsSet",
    Action.INTERFACE_DELETED: "InterfacesDeleted",
    Action.IP_DELETED: "IPsDeleted",
}


def count(changes: list[Correction]) -> UpdateCounts:
    by_action = Counter(change.action for change in changes)
    return UpdateCounts(
        rename=by_action[Action.RENAME],
        oob_ip=by_action[Action.OOB_IP],
        platform=by_action[Action.PLATFORM],
        interface_deleted=by_action[Action.INTERFACE_DELETED],
        ip_deleted=by_action[Action.IP_DELETED],
    )


@dataclass
class Facts:
    spec: UpdateSpec
    selection: Selection
    interfaces: dict[int, list[Interface]]  # by device id: those the corrections look at (`looked_at`)
    addresses: dict[int, list[IPAddress]]  # by interface id
    platform: Ref | None
    writes_seen: int  # the count of OwnWrites when the read began: later writes are not in it


@dataclass
class Planned:
    spec: UpdateSpec
    plan: Plan
    devices: int  # selected


@dataclass(frozen=True)
class Interrupted:
    """A pass NetBox failed in the middle of its writes: its plan and what NetBox took before."""

    planned: Planned
    result: ApplyResult


class OwnWrites:
    """The devices the passes of this process wrote to (or NetBox refused a write of), each with the count
    of writing passes at its last: a read begun before is stale for it, and the change feed does not say so
    (it leaves out our own writes). One per process, as an Update's corrections may be devices another
    Update reads too; at most one entry per device."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._last: dict[int, int] = {}  # device id -> count at its last write

    def count(self) -> int:
        with self._lock:
            return self._count

    def wrote(self, device_ids: Iterable[int]) -> None:
        with self._lock:
            self._count += 1
            for device_id in device_ids:
                self._last[device_id] = self._count

    def since(self, count: int) -> set[int]:
        """The devices written to after `count`."""
        with self._lock:
            return {device_id for device_id, at in self._last.items() if at > count}


class UpdateSteps:
    """read -> plan -> apply to NetBox -> report of one Update."""

    kind = UPDATE.kind
    kept = "no further writes to NetBox in this pass"

    def __init__(self, netbox: NetBox, kube: Kube) -> None:
        self.netbox = netbox
        self.kube = kube
        # Set by `converge` when NetBox fails in the middle of the writes, taken by `report_failure`; the
        # pass skeleton runs both under the resource's lock.
        self._interrupted: dict[Key, Interrupted] = {}
        self.own_writes = OwnWrites()

    def read(self, body: Body) -> Facts:
        spec = UpdateSpec.model_validate(body.get("spec") or {})
        seen = self.own_writes.count()
        selection = read_selection(self.netbox, spec.clusters, DEFAULT_STATUSES)
        device_ids = {selected.device.id for selected in selection.devices}
        interfaces = self._interfaces(spec, device_ids)
        addresses = self._addresses(interfaces)
        return Facts(spec, selection, interfaces, addresses, self._platform(spec), seen)

    def _interfaces(self, spec: UpdateSpec, device_ids: Collection[int]) -> dict[int, list[Interface]]:
        """The devices' interfaces the corrections look at, by device id; the others change no plan, and
        the last read is kept between passes. By the devices' ids: NetBox answers exactly their interfaces,
        about 280 devices per request, however many other devices share their sites or names."""
        interfaces: dict[int, list[Interface]] = defaultdict(list)
        wanted = looked_at(spec)
        for interface in self.netbox.list_by_ids(INTERFACES, "device_id", device_ids):
            if interface.device.id in device_ids and wanted(interface):
                interfaces[interface.device.id].append(interface)
        return interfaces

    def _addresses(self, interfaces: dict[int, list[Interface]]) -> dict[int, list[IPAddress]]:
        """The IPs on `interfaces`, by interface id."""
        wanted = {iface.id for ifaces in interfaces.values() for iface in ifaces}
        addresses: dict[int, list[IPAddress]] = defaultdict(list)
        if wanted:
            owners = {iface.device.id for ifaces in interfaces.values() for iface in ifaces}
            for address in self.netbox.list_by_ids(IP_ADDRESSES, "device_id", owners):
                if address.assigned_object_type == "dcim.interface" and address.assigned_object_id in wanted:
                    addresses[address.assigned_object_id].append(address)
        return addresses

    def _platform(self, spec: UpdateSpec) -> Ref | None:
        if spec.platform is None:
            return None
        found = self.netbox.select(PLATFORMS, slug=spec.platform)
        if not found:
            message = f"spec.platform: NetBox has no platform with slug {spec.platform!r}"
            raise BadInputError("PlatformNotFound", message)
        return found[0]

    def patch(self, body: Body, facts: Facts, changes: ChangeSet) -> Facts | None:
        """The last read with the devices `changes` concern read again, and those our passes wrote to since
        it began; None: read NetBox whole (a cluster or platform changed, or so many devices are concerned
        that a full read is cheaper: `cheaper_to_read_whole`)."""
        concerned = concerned_devices(facts, changes)
        if concerned is None:
            return None
        seen = self.own_writes.count()
        # Only ours: no write of a correction changes which devices are selected.
        concerned |= self.own_writes.since(facts.writes_seen) & {s.device.id for s in facts.selection.devices}
        if cheaper_to_read_whole(len(concerned), len(facts.selection.devices)):
            return None
        devices = self.netbox.list_by_ids(DEVICES, "id", concerned)
        selected = select_devices(devices, facts.selection.clusters_by_selector, facts.spec.clusters, DEFAULT_STATUSES)
        # Only then their interfaces: NetBox refuses a device_id filter naming a device it no longer has.
        interfaces = self._interfaces(facts.spec, {s.device.id for s in selected})
        return merged(facts, selected, interfaces, self._addresses(interfaces), concerned, seen)

    def refresh(self, body: Body, facts: Facts) -> Facts:
        """Nothing of an Update's facts comes from outside NetBox (its spec is the body's, of the same
        generation): the last reads as they are."""
        return facts

    def plan(self, body: Body, facts: Facts) -> Planned:
        the_plan = plan_updates(facts.selection.devices, facts.interfaces, facts.addresses, facts.spec, facts.platform)
        return Planned(facts.spec, the_plan, len(facts.selection.devices))

    def converge(self, body: Body, planned: Planned) -> ApplyResult:
        applier = Applier(self.netbox, planned.spec.max_deletes_per_pass, planned.spec.dry_run)
        try:
            result = applier.apply(planned.plan)
        except Exception as error:
            # Whether NetBox made the write under way is unknown: any device of the plan may have changed.
            self.own_writes.wrote(device.device_id for device in planned.plan.devices)
            if isinstance(error, NetBoxError):
                self._interrupted[key_of(body)] = Interrupted(planned, applier.result)
            raise
        if not planned.spec.dry_run:
            # A refused write may have been refused for what NetBox holds now (a re-check or version that
            # no longer matches): the last reads are not what NetBox holds for those devices either.
            failed = (problem.device_id for problem in result.failed if problem.device_id is not None)
            self.own_writes.wrote({*(c.device_id for c in result.applied), *failed})
        return result

    def report(self, body: Body, facts: Facts, planned: Planned, result: ApplyResult) -> str:
        status = update_status(body, len(facts.selection.devices), planned.plan, result, planned.spec)
        write_status(self.kube, UPDATE, body, status)
        post_events(self.kube, body, update_events(result, planned.spec))
        return (
            f"{'dry run' if planned.spec.dry_run else 'pass'}: {status.devices} devices, "
            f"planned {status.planned.model_dump(by_alias=True)}, applied {status.applied.model_dump(by_alias=True)}, "
            f"{status.conflicts} conflicts, {status.failed} failed"
        )

    def report_failure(self, body: Body, decision: Decision) -> None:
        interrupted = self._interrupted.pop(key_of(body), None)
        if interrupted is None or not interrupted.result.applied:
            report_failure(self.kube, UPDATE, body, UpdateStatus, decision)
            return
        status, decision = interrupted_status(body, interrupted, decision)
        write_status(self.kube, UPDATE, body, status)
        post_events(
            self.kube,
            body,
            [
                *update_events(interrupted.result, interrupted.planned.spec),
                Event("Warning", decision.reason, decision.message),
            ],
        )


class Reconciler:
    """What the handlers of one argora-update process call."""

    def __init__(self, settings: Settings, netbox: NetBox, kube: Kube) -> None:
        self.kube = kube
        self.steps = UpdateSteps(netbox, kube)
        # No reuse of reads by a resync: a pass writes to NetBox, so what it read is out of date once it has
        # run. A delta pass builds on it all the same, reading again the devices our passes wrote to since.
        tracking = Tracking(touched=touched, refresh=self.steps.refresh, patch=self.steps.patch, resync_reuse=False)
        self.passes = PassRunner.from_settings(self.steps, settings, kube.controller, tracking)


def looked_at(spec: UpdateSpec) -> Callable[[Interface], bool]:
    """Whether a correction looks at an interface: BMC-named (a vendor's name or the target) or to remove.
    A change of any other interface names its device, which a delta pass then reads again whole."""
    vendor_names = {name.lower() for name in spec.bmc_interface_names}
    prefixes = tuple(spec.remove_interface_prefixes)

    def check(interface: Interface) -> bool:
        name = interface.name
        return name.lower() in vendor_names or name == spec.target_interface_name or name.startswith(prefixes)

    return check


def touched(facts: Facts) -> set[NetBoxId]:
    devices = facts.selection.devices
    refs = selection_refs(facts.selection.clusters_by_selector, devices)
    refs |= {(INTERFACE, interface.id) for interfaces in facts.interfaces.values() for interface in interfaces}
    refs |= {(IP_ADDRESS, address.id) for addresses in facts.addresses.values() for address in addresses}
    # The OOB IPs, wherever they are assigned (the plan shows the current one), and the platforms the plan
    # compares with: a change to them names no device.
    refs |= {(IP_ADDRESS, s.device.oob_ip.id) for s in devices if s.device.oob_ip is not None}
    if facts.platform is not None:
        refs |= {(PLATFORM, facts.platform.id)}
        refs |= {(PLATFORM, s.device.platform.id) for s in devices if s.device.platform is not None}
    return refs


def concerned_devices(facts: Facts, changes: ChangeSet) -> set[int] | None:
    """The ids of the devices whose facts `changes` may have changed (selected before or not): those they
    name, and the owners in `facts` of the interfaces and IPs they name; None when a change may change
    more than those (a cluster's selection, the platform the plan compares with)."""
    if any(object_type in (CLUSTER, PLATFORM) for object_type, _ in changes.changed):
        return None
    owner_of_interface = {iface.id: device_id for device_id, ifaces in facts.interfaces.items() for iface in ifaces}
    owners_of_address: dict[int, set[int]] = defaultdict(set)
    for interface_id, addresses in facts.addresses.items():
        for address in addresses:
            owners_of_address[address.id].add(owner_of_interface[interface_id])
    for selected in facts.selection.devices:
        if selected.device.oob_ip is not None:
            owners_of_address[selected.device.oob_ip.id].add(selected.device.id)
    devices = changes.ids(DEVICE)
    devices |= {owner_of_interface[i] for i in changes.ids(INTERFACE) if i in owner_of_interface}
    for address_id in changes.ids(IP_ADDRESS):
        devices |= owners_of_address.get(address_id, set())
    return devices


def merged(
    last: Facts,
    selected: Sequence[SelectedDevice],
    interfaces: dict[int, list[Interface]],
    addresses: dict[int, list[IPAddress]],
    device_ids: Collection[int],
    writes_seen: int,
) -> Facts:
    """`last` with everything of `device_ids` replaced by what was read again of them: `selected` of them,
    and the selected ones' `interfaces` and `addresses`; the read again began at `writes_seen` (pure)."""
    old_interfaces = {iface.id for device_id in device_ids for iface in last.interfaces.get(device_id, ())}
    kept = [s for s in last.selection.devices if s.device.id not in device_ids]
    # A full read's order: by first selector, then by id.
    devices = sorted([*kept, *selected], key=lambda s: (s.selector_index, s.device.id))
    return Facts(
        last.spec,
        Selection(last.selection.clusters_by_selector, devices, last.selection.selector_errors),
        {**{d: ifaces for d, ifaces in last.interfaces.items() if d not in device_ids}, **interfaces},
        {**{i: found for i, found in last.addresses.items() if i not in old_interfaces}, **addresses},
        last.platform,
        writes_seen,
    )


def update_status(body: Body, devices: int, the_plan: Plan, result: ApplyResult, spec: UpdateSpec) -> UpdateStatus:
    previous = UpdateStatus.model_validate(body.get("status") or {})
    generation = body["metadata"].get("generation")
    planned = [change for device in the_plan.devices for change in device.changes]
    applied = [] if spec.dry_run else result.applied
    shown = planned if spec.dry_run else result.applied
    changes = [
        Change(device=c.device, action=c.action.value, before=c.before, after=c.after, applied=not spec.dry_run)
        for c in shown[-MAX_PROBLEMS:]
    ]
    problems = sorted([*the_plan.problems, *result.failed], key=lambda p: (p.device, p.reason))
    conflicts = len({p.device_id for p in the_plan.problems})

    condition = partial(make_condition, generation=generation)

    new_conditions = [
        condition("Ready", True, "DryRun" if spec.dry_run else "Applied",
                  f"{len(planned)} changes planned" if spec.dry_run else f"{len(applied)} changes applied"),
        condition("NetBoxReachable", True, "Read"),
        condition("NoConflicts", not conflicts, "None" if not conflicts else "DevicesLeftAsTheyAre",
                  f"{conflicts} devices with conflicts: see status.problems" if conflicts else ""),
        condition("DeletesComplete", not result.held_back, "Complete" if not result.held_back else "HeldBack",
                  f"{len(result.held_back)} deletions wait: at most {spec.max_deletes_per_pass} per pass"
                  if result.held_back else ""),
    ]  # fmt: skip
    conditions = merge_conditions(previous.conditions, new_conditions)
    return UpdateStatus(
        state="Ready",
        observed_generation=generation,
        conditions=conditions,
        last_sync_time=now(),
        problems=problems[:MAX_PROBLEMS],
        devices=devices,
        planned=count(planned),
        applied=count(applied),
        conflicts=conflicts,
        failed=len(result.failed),
        deletes_held_back=len(result.held_back),
        changes=changes,
    )


def interrupted_status(body: Body, interrupted: Interrupted, decision: Decision) -> tuple[UpdateStatus, Decision]:
    """The status of a pass NetBox failed in the middle of its writes, and the failure as reported: the
    counts, changes and problems of what NetBox took, Ready (and NetBoxReachable) False with the error,
    DeletesComplete False while planned deletes were not made; the generation and sync time stay those
    of the last completed pass."""
    planned, result = interrupted.planned, interrupted.result
    previous = UpdateStatus.model_validate(body.get("status") or {})
    decision = replace(
        decision,
        message=f"{decision.message}; {len(result.applied)} changes were applied before: see status.applied"
        " (whether NetBox made the write under way, the next pass reads)",
    )
    done = update_status(body, planned.devices, planned.plan, result, planned.spec)
    status = failed_status(UpdateStatus, {**body, "status": done.model_dump(by_alias=True, mode="json")}, decision)
    deletes = count([c for device in planned.plan.devices for c in device.deletions])
    applied = count(result.applied)
    if (deletes.interface_deleted, deletes.ip_deleted) != (applied.interface_deleted, applied.ip_deleted):
        condition = make_condition(
            "DeletesComplete", False, "Interrupted", "the next pass makes the deletes this one could not",
            generation=body["metadata"].get("generation"),
        )  # fmt: skip
        status = status.model_copy(update={"conditions": merge_conditions(status.conditions, [condition])})
    status = status.model_copy(
        update={"observed_generation": previous.observed_generation, "last_sync_time": previous.last_sync_time}
    )
    return status, decision


def update_events(result: ApplyResult, spec: UpdateSpec) -> list[Event]:
    by_action = Counter(change.action for change in result.applied)
    if spec.dry_run:
        summary = ", ".join(f"{n} {action.value}" for action, n in sorted(by_action.items()))
        return [Event("Normal", "DryRun", f"would apply: {summary}")] if by_action else []
    events = [
        Event(
            "Normal",
            EVENT_REASONS[action],
            f"{n} on {short_list(sorted({c.device for c in result.applied if c.action is action}))}",
        )
        for action, n in sorted(by_action.items())
    ]
    if result.held_back:
        message = (
            f"{len(result.held_back)} deletions wait for the next pass (maxDeletesPerPass {spec.max_deletes_per_pass})"
        )
        events.append(Event("Warning", "DeletesHeldBack", message))
    return events
