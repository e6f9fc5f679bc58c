"""Apply a plan to NetBox: re-check before every delete, cap the deletes, write nothing in a dry run.

A device whose write fails is reported and the others go on; a token that may not write stops the
pass at its first write (every further write would be refused the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from argora_common.crds import DeviceProblem
from argora_common.metrics import OBJECTS_WRITTEN
from argora_common.netbox import NetBox, NetBoxRejectedError, NetBoxWriteForbiddenError
from argora_common.netbox_schema import DEVICES, INTERFACES, IP_ADDRESSES
from update_controller.plan import Action, Change, DevicePlan, Plan


@dataclass
class ApplyResult:
    applied: list[Change] = field(default_factory=list)
    failed: list[DeviceProblem] = field(default_factory=list)
    held_back: list[Change] = field(default_factory=list)


class Applier:
    def __init__(self, netbox: NetBox, max_deletes: int, dry_run: bool) -> None:
        self.netbox = netbox
        self.deletes_left = max_deletes
        self.dry_run = dry_run
        self.result = ApplyResult()

    def apply(self, plan: Plan) -> ApplyResult:
        for device in plan.devices:
            try:
                self._apply_device(device)
            except NetBoxRejectedError as error:
                if error.status_code == 403:
                    raise NetBoxWriteForbiddenError(str(error), error.status_code) from error
                self.result.failed.append(
                    DeviceProblem(
                        device=device.device, device_id=device.device_id, reason="Rejected", message=str(error)
                    )
                )
        return self.result

    def _apply_device(self, device: DevicePlan) -> None:
        renames = [c for c in device.changes if c.action is Action.RENAME]
        device_fields = {
            ("oob_ip" if c.action is Action.OOB_IP else "platform"): c.value
            for c in device.changes
            if c.action in {Action.OOB_IP, Action.PLATFORM}
        }
        for change in renames:
            self._write(change, partial(self.netbox.update, INTERFACES, change.object_id, name=change.value))
        if device_fields:
            changes = [c for c in device.changes if c.action in {Action.OOB_IP, Action.PLATFORM}]
            if not self.dry_run:
                self.netbox.update(DEVICES, device.device_id, **device_fields)
            for change in changes:
                self._record(change)
        self._delete(device)

    def _write(self, change: Change, write: Callable[[], object]) -> None:
        if not self.dry_run:
            write()
        self._record(change)

    def _record(self, change: Change) -> None:
        self.result.applied.append(change)
        if not self.dry_run:
            kind = "delete" if change.action in {Action.IP_DELETED, Action.INTERFACE_DELETED} else "update"
            OBJECTS_WRITTEN.labels(controller="update", kind=change.action.value, action=kind).inc()

    def _delete(self, device: DevicePlan) -> None:
        """Each interface with its IPs, or none of them: within the cap, after re-reading each one."""
        by_interface: dict[int, list[Change]] = {}
        for change in device.deletions:
            assert change.interface_id is not None
            by_interface.setdefault(change.interface_id, []).append(change)
        for interface_id, changes in by_interface.items():
            if len(changes) > self.deletes_left:
                self.result.held_back.extend(changes)
                continue
            if not self.dry_run and not self._still_belongs(device, interface_id, changes):
                continue
            self.deletes_left -= len(changes)
            # IPs first: deleting the interface first would leave them unassigned instead of gone.
            for change in sorted(changes, key=lambda c: c.action is Action.INTERFACE_DELETED):
                endpoint = IP_ADDRESSES if change.action is Action.IP_DELETED else INTERFACES
                self._write(change, partial(self.netbox.delete, endpoint, change.object_id))

    def _still_belongs(self, device: DevicePlan, interface_id: int, changes: list[Change]) -> bool:
        """Read each object again: NetBox returns the whole table for a filter it does not know, so
        what we are about to delete must be proven to be this device's."""
        interface = self.netbox.get(INTERFACES, interface_id)
        ok = interface is not None and interface.device.id == device.device_id
        for change in changes:
            if not ok or change.action is not Action.IP_DELETED:
                continue
            address = self.netbox.get(IP_ADDRESSES, change.object_id)
            ok = (
                address is not None
                and address.assigned_object_type == "dcim.interface"
                and address.assigned_object_id == interface_id
            )
        if not ok:
            self.result.failed.append(
                DeviceProblem(
                    device=device.device,
                    device_id=device.device_id,
                    reason="RecheckFailed",
                    message=f"interface {interface_id} or its IPs no longer belong to this device; nothing deleted",
                )
            )
        return ok
