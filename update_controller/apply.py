"""Apply a plan to NetBox in bulk: re-check before every delete, cap the deletes, write nothing in a dry run.

The pass writes in phases, each a few bulk requests for every device at once: renames, then the devices'
own fields (OOB IP and platform, one PATCH item per device), then deletes (the IPs, then their
interfaces). A device NetBox refuses a write of is reported (`Rejected`, with NetBox's reason) and left
alone in the later phases; the other devices of the same request are written all the same. A token
that may not write stops the pass at its first write (every further write would be refused the same way).

A delete names the version of each object its re-check read (NetBox's ETag, If-Match): an IP re-assigned
or an interface changed between the re-check and the delete is refused by NetBox, not deleted. When
NetBox fails part way (unavailable after the retries), the error goes up to fail the pass, and
`Applier.result` holds what NetBox confirmed before, for the failure's report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from argora_common.crds import DeviceProblem
from argora_common.metrics import OBJECTS_WRITTEN
from argora_common.netbox import NetBox, NetBoxError
from argora_common.netbox_schema import DEVICES, INTERFACES, IP_ADDRESSES, Endpoint, Ref
from update_controller.desired import Action, Correction, DevicePlan, Plan

DEVICE_FIELDS = {Action.OOB_IP: "oob_ip", Action.PLATFORM: "platform"}


class CheckedInterface(BaseModel):
    """What the re-check reads of an interface: whose it is, its name (the plan chose it by name), and its
    version for the conditional delete."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: int
    device: Ref
    name: str = ""
    last_updated: str | None = None


class CheckedIP(BaseModel):
    """What the re-check reads of an IP: what it is assigned to, and its version for the conditional delete."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: int
    assigned_object_type: str | None = None
    assigned_object_id: int | None = None
    last_updated: str | None = None


RECHECK_INTERFACES: Final = Endpoint(
    "dcim", "interfaces", CheckedInterface, ("id", "device", "name", "last_updated"), INTERFACES.filters
)
RECHECK_IPS: Final = Endpoint(
    "ipam",
    "ip-addresses",
    CheckedIP,
    ("id", "assigned_object_type", "assigned_object_id", "last_updated"),
    IP_ADDRESSES.filters,
)


@dataclass
class ApplyResult:
    applied: list[Correction] = field(default_factory=list)
    failed: list[DeviceProblem] = field(default_factory=list)
    held_back: list[Correction] = field(default_factory=list)


@dataclass(frozen=True)
class InterfaceDeletion:
    """One interface to delete with its IPs: all of them go, or none."""

    device: DevicePlan
    interface_id: int
    changes: list[Correction]

    @property
    def ip_ids(self) -> set[int]:
        return {c.object_id for c in self.changes if c.action is Action.IP_DELETED}

    @property
    def planned_name(self) -> str | None:
        """The name the plan found the interface under (and chose it by)."""
        return next((c.before for c in self.changes if c.action is Action.INTERFACE_DELETED), None)


def interface_deletions(devices: Iterable[DevicePlan]) -> list[InterfaceDeletion]:
    """The planned deletes grouped by interface, in plan order."""
    groups: list[InterfaceDeletion] = []
    for device in devices:
        by_interface: dict[int, list[Correction]] = {}
        for change in device.deletions:
            assert change.interface_id is not None
            by_interface.setdefault(change.interface_id, []).append(change)
        groups.extend(
            InterfaceDeletion(device, interface_id, changes) for interface_id, changes in by_interface.items()
        )
    return groups


class Applier:
    def __init__(self, netbox: NetBox, max_deletes: int, dry_run: bool) -> None:
        self.netbox = netbox
        self.deletes_left = max_deletes
        self.dry_run = dry_run
        self.result = ApplyResult()
        self._failed_devices: set[int] = set()
        # The versions the re-check read (id -> last_updated), which the deletes must still find.
        self._interface_versions: dict[int, str] = {}
        self._ip_versions: dict[int, str] = {}

    def apply(self, plan: Plan) -> ApplyResult:
        try:
            self._rename(plan.devices)
            self._set_device_fields(plan.devices)
            self._delete(plan.devices)
        finally:
            # Reported in plan order (device by device), as when every write was a request of its own;
            # also what was written before NetBox failed.
            order = {change: n for n, change in enumerate(c for device in plan.devices for c in device.changes)}
            self.result.applied.sort(key=order.__getitem__)
        return self.result

    def _live(self, devices: Iterable[DevicePlan]) -> list[DevicePlan]:
        return [device for device in devices if device.device_id not in self._failed_devices]

    def _rename(self, devices: Sequence[DevicePlan]) -> None:
        renames = [c for device in devices for c in device.changes if c.action is Action.RENAME]
        refused = self._update(
            INTERFACES, [{"id": c.object_id, "name": c.value} for c in renames], {c.object_id: [c] for c in renames}
        )
        by_device = {device.device_id: device for device in devices}
        for change in renames:
            if change.object_id in refused:
                self._fail(by_device[change.device_id], refused[change.object_id])
            else:
                self._record(change)

    def _set_device_fields(self, devices: Sequence[DevicePlan]) -> None:
        writes: list[tuple[DevicePlan, list[Correction]]] = []
        for device in self._live(devices):
            changes = [c for c in device.changes if c.action in DEVICE_FIELDS]
            if changes:
                writes.append((device, changes))
        refused = self._update(
            DEVICES,
            [
                {"id": device.device_id, **{DEVICE_FIELDS[c.action]: c.value for c in changes}}
                for device, changes in writes
            ],
            {device.device_id: changes for device, changes in writes},
        )
        for device, changes in writes:
            if device.device_id in refused:
                self._fail(device, refused[device.device_id])
            else:
                for change in changes:
                    self._record(change)

    def _delete(self, devices: Sequence[DevicePlan]) -> None:
        """Each interface with its IPs, or none of them: within the cap, after re-reading them."""
        confirmed = self._within_cap(interface_deletions(self._live(devices)))
        ip_deletes = {c.object_id: [c] for group in confirmed for c in group.changes if c.action is Action.IP_DELETED}
        refused_ips = self._remove(IP_ADDRESSES, ip_deletes, self._ip_versions)
        # An interface goes only once all its IPs are gone: deleting it first would take along, or leave
        # unassigned, IPs that were not re-checked.
        whole: list[InterfaceDeletion] = []
        for group in confirmed:
            for change in group.changes:
                if change.action is Action.IP_DELETED and change.object_id not in refused_ips:
                    self._record(change)
            reasons = [refused_ips[i] for i in sorted(group.ip_ids) if i in refused_ips]
            if reasons:
                self._fail(group.device, reasons[0])
            else:
                whole.append(group)
        refused = self._remove(
            INTERFACES,
            {group.interface_id: [c for c in group.changes if c.action is Action.INTERFACE_DELETED] for group in whole},
            self._interface_versions,
        )
        for group in whole:
            if group.interface_id in refused:
                self._fail(group.device, refused[group.interface_id])
                continue
            for change in group.changes:
                if change.action is Action.INTERFACE_DELETED:
                    self._record(change)

    def _within_cap(self, groups: Sequence[InterfaceDeletion]) -> list[InterfaceDeletion]:
        """The groups to delete, in plan order, as deleting them one after the other would decide: a group
        larger than what is left of the cap waits (`held_back`), a group that fails its re-check is
        reported and takes nothing from the cap. Re-checked in bulk, a run of groups at a time."""
        chosen: list[InterfaceDeletion] = []
        position = 0
        while position < len(groups):
            batch: list[InterfaceDeletion] = []
            room = self.deletes_left
            while position < len(groups) and len(groups[position].changes) <= room:
                batch.append(groups[position])
                room -= len(groups[position].changes)
                position += 1
            if not batch:
                # It does not fit even if everything before it passed its re-check.
                self.result.held_back.extend(groups[position].changes)
                position += 1
                continue
            for group in batch if self.dry_run else self._recheck(batch):
                self.deletes_left -= len(group.changes)
                chosen.append(group)
        return chosen

    def _recheck(self, groups: Sequence[InterfaceDeletion]) -> list[InterfaceDeletion]:
        """Read the interfaces and the IPs on them again: NetBox returns the whole table for a filter it
        does not know, so what we are about to delete must be proven to be this device's. The IPs are read
        by interface, so an IP added to the interface since the plan (which deleting the interface would
        take along) fails the re-check as well as one that moved away."""
        interface_ids = [group.interface_id for group in groups]
        interfaces = {i.id: i for i in self.netbox.list_by_ids(RECHECK_INTERFACES, "id", interface_ids)}
        on_interface: dict[int, set[int]] = {}
        versions: dict[int, str] = {}
        for address in self.netbox.list_by_ids(RECHECK_IPS, "interface_id", interface_ids):
            if address.assigned_object_type == "dcim.interface" and address.assigned_object_id is not None:
                on_interface.setdefault(address.assigned_object_id, set()).add(address.id)
                if address.last_updated:
                    versions[address.id] = address.last_updated
        passed: list[InterfaceDeletion] = []
        for group in groups:
            interface = interfaces.get(group.interface_id)
            if (
                interface is not None
                and interface.device.id == group.device.device_id
                and group.planned_name in (None, interface.name)
                and on_interface.get(group.interface_id, set()) == group.ip_ids
            ):
                passed.append(group)
                if interface.last_updated:
                    self._interface_versions[group.interface_id] = interface.last_updated
                self._ip_versions |= {i: versions[i] for i in group.ip_ids if i in versions}
                continue
            message = (
                f"interface {group.interface_id} ({group.planned_name}) was renamed, or it or its IPs no longer"
                " belong to this device; nothing deleted"
            )
            self.result.failed.append(
                DeviceProblem(
                    device=group.device.device,
                    device_id=group.device.device_id,
                    reason="RecheckFailed",
                    message=message,
                )
            )
        return passed

    def _update(
        self, endpoint: Endpoint[Any], items: list[dict[str, Any]], changes: Mapping[int, Sequence[Correction]]
    ) -> Mapping[int, str]:
        """PATCH `items`; `changes` by the id of the object each item writes."""
        if self.dry_run or not items:
            return {}
        return self._written(changes, lambda: self.netbox.update_many(endpoint, items))

    def _remove(
        self, endpoint: Endpoint[Any], changes: Mapping[int, Sequence[Correction]], versions: Mapping[int, str]
    ) -> Mapping[int, str]:
        """DELETE the objects `changes` name (by id), each only while NetBox has it in its `versions`."""
        if self.dry_run or not changes:
            return {}
        return self._written(changes, lambda: self.netbox.delete_many(endpoint, sorted(changes), versions))

    def _written(
        self, changes: Mapping[int, Sequence[Correction]], write: Callable[[], Mapping[int, str]]
    ) -> Mapping[int, str]:
        try:
            return write()
        except NetBoxError as error:
            # NetBox failed part way: what it confirmed before is applied all the same, and the failure's
            # report says so.
            for object_id in sorted(error.written & changes.keys()):
                for change in changes[object_id]:
                    self._record(change)
            raise

    def _fail(self, device: DevicePlan, message: str) -> None:
        """NetBox refused a write of the device: report it once and leave the device alone from here on."""
        if device.device_id in self._failed_devices:
            return
        self._failed_devices.add(device.device_id)
        self.result.failed.append(
            DeviceProblem(device=device.device, device_id=device.device_id, reason="Rejected", message=message)
        )

    def _record(self, change: Correction) -> None:
        self.result.applied.append(change)
        if not self.dry_run:
            kind = "delete" if change.action in {Action.IP_DELETED, Action.INTERFACE_DELETED} else "update"
            OBJECTS_WRITTEN.labels(controller="update", kind=change.action.value, action=kind).inc()
