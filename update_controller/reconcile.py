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

from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, replace
from functools import partial
from typing import Final

from argora_common import crds
from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, PLATFORM, ChangeSet, Interest
from argora_common.crds import MAX_PROBLEMS, Change, UpdateCounts, UpdateSpec, UpdateStatus
from argora_common.errors import BadInputError, Decision
from argora_common.identity import ARGORA_UPDATE
from argora_common.inventory import read_selection
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
from update_controller.facts import Facts, OwnWrites, concerned_devices, looked_at, merged, touched

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
class Planned:
    spec: UpdateSpec
    plan: Plan
    devices: int  # selected


@dataclass(frozen=True)
class Interrupted:
    """A pass NetBox failed in the middle of its writes: its plan and what NetBox took before."""

    planned: Planned
    result: ApplyResult


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
