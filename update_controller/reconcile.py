"""One pass of an Update: read NetBox in bulk, plan the corrections, apply them (or only report them).

Nothing is written before every read succeeded, so a failed read never leads to a delete; NetBox
unavailable or a token that may not write -> the condition says so and kopf retries later.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any, Final

import kopf

from argora_common.backoff import Backoff
from argora_common.crds import MAX_PROBLEMS, UpdateCounts, UpdateSpec, UpdateStatus
from argora_common.crds import Change as StatusChange
from argora_common.inventory import Selection, read_selection
from argora_common.kube import Kind, Kube, now, set_condition
from argora_common.metrics import RECONCILE_SECONDS
from argora_common.netbox import INTERFACES, IP_ADDRESSES, PLATFORMS, Interface, IPAddress, NetBox, NetBoxError, Ref
from argora_common.status import (
    make_condition,
    report_failure,
    unexpected_errors_are_permanent,
    write_status,
)
from update_controller.apply import Applier, ApplyResult, WriteForbiddenError
from update_controller.plan import Action, Change, Plan, plan_updates

type Log = logging.Logger | logging.LoggerAdapter[Any]

UPDATE: Final = Kind("argora.cloud.sap", "v1alpha1", "Update", "updates", namespaced=True)
FIELD_MANAGER: Final = "argora-update"
DEFAULT_STATUSES: Final = ("active", "staged")
EVENT_REASONS: Final = {
    Action.RENAME: "InterfacesRenamed",
    Action.OOB_IP: "OOBIPsSet",
    Action.PLATFORM: "PlatformsSet",
    Action.INTERFACE_DELETED: "InterfacesDeleted",
    Action.IP_DELETED: "IPsDeleted",
}


class PlatformNotFoundError(Exception):
    pass


def count(changes: list[Change]) -> UpdateCounts:
    by_action = Counter(change.action for change in changes)
    return UpdateCounts(
        rename=by_action[Action.RENAME],
        oob_ip=by_action[Action.OOB_IP],
        platform=by_action[Action.PLATFORM],
        interface_deleted=by_action[Action.INTERFACE_DELETED],
        ip_deleted=by_action[Action.IP_DELETED],
    )


class Reconciler:
    def __init__(self, netbox: NetBox, kube: Kube, backoff: Backoff[tuple[str, str]]) -> None:
        self.netbox = netbox
        self.kube = kube
        self.locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self.backoff = backoff

    def sync(self, body: kopf.Body, logger: Log, *, wait: bool = True) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        lock = self.locks[key]
        if not lock.acquire(blocking=wait):
            return
        try:
            with (
                RECONCILE_SECONDS.labels(controller="update", kind="Update").time(),
                unexpected_errors_are_permanent(partial(self._report, body), logger),
            ):
                self._sync(body, key, logger)
            self.backoff.reset(key)
        finally:
            lock.release()

    def _report(self, body: kopf.Body, reason: str, message: str, conditions: Sequence[str] = ("Ready",)) -> None:
        report_failure(self.kube, UPDATE, body, UpdateStatus, reason, message, conditions)

    def _read(
        self, spec: UpdateSpec
    ) -> tuple[Selection, dict[int, list[Interface]], dict[int, list[IPAddress]], Ref | None]:
        selection = read_selection(self.netbox, spec.clusters, DEFAULT_STATUSES)
        device_ids = {selected.device.id for selected in selection.devices}
        site_ids = {selected.device.site.id for selected in selection.devices}
        interfaces: dict[int, list[Interface]] = defaultdict(list)
        for interface in self.netbox.list_by_ids(INTERFACES, "site_id", site_ids):
            if interface.device.id in device_ids:
                interfaces[interface.device.id].append(interface)
        vendor_names = {name.lower() for name in spec.bmc_interface_names}
        relevant = {
            iface.id: iface.name
            for ifaces in interfaces.values()
            for iface in ifaces
            if iface.name.lower() in vendor_names
            or iface.name == spec.target_interface_name
            or any(iface.name.startswith(prefix) for prefix in spec.remove_interface_prefixes)
        }
        addresses: dict[int, list[IPAddress]] = defaultdict(list)
        if relevant:
            # By interface name, not by device id: the request count stays with the pages.
            for address in self.netbox.select(IP_ADDRESSES, interface=sorted(set(relevant.values()))):
                if address.assigned_object_type == "dcim.interface" and address.assigned_object_id in relevant:
                    addresses[address.assigned_object_id].append(address)
        platform = None
        if spec.platform is not None:
            found = self.netbox.select(PLATFORMS, slug=spec.platform)
            if not found:
                raise PlatformNotFoundError(f"spec.platform: NetBox has no platform with slug {spec.platform!r}")
            platform = found[0]
        return selection, interfaces, addresses, platform

    def _sync(self, body: kopf.Body, key: tuple[str, str], logger: Log) -> None:
        spec = UpdateSpec.model_validate(body.get("spec") or {})
        previous = UpdateStatus.model_validate(body.get("status") or {})
        generation = body["metadata"].get("generation")
        try:
            selection, interfaces, addresses, platform = self._read(spec)
        except (NetBoxError, PlatformNotFoundError) as error:
            self._failed(body, error, "NetBoxRead", logger)
            raise kopf.TemporaryError(str(error), delay=self.backoff.failed(key)) from error
        the_plan = plan_updates(selection.devices, interfaces, addresses, spec, platform)
        applier = Applier(self.netbox, spec.max_deletes_per_pass, spec.dry_run)
        try:
            result = applier.apply(the_plan)
        except (WriteForbiddenError, NetBoxError) as error:
            self._failed(body, error, "NetBoxWrite", logger)
            raise kopf.TemporaryError(str(error), delay=self.backoff.failed(key)) from error
        status = self._status(previous, generation, len(selection.devices), the_plan, result, spec)
        write_status(self.kube, UPDATE, body, status)
        self._post_events(body, result, spec)
        logger.info(
            "%s: %d devices, planned %s, applied %s, %d conflicts, %d failed",
            "dry run" if spec.dry_run else "pass", status.devices,
            status.planned.model_dump(by_alias=True), status.applied.model_dump(by_alias=True),
            status.conflicts, status.failed,
        )  # fmt: skip

    def _failed(self, body: kopf.Body, error: Exception, stage: str, logger: Log) -> None:
        if isinstance(error, WriteForbiddenError):
            reason, message = "NetBoxWriteForbidden", f"the NetBox token may not write: {error}"
        elif isinstance(error, PlatformNotFoundError):
            reason, message = "PlatformNotFound", str(error)
        else:
            reason, message = "NetBoxUnavailable", str(error)
        conditions = ("Ready", "NetBoxReachable") if reason == "NetBoxUnavailable" else ("Ready",)
        self._report(body, reason, message, conditions)
        logger.warning("%s failed (%s), retrying later: %s", stage, reason, message)

    def _status(
        self,
        previous: UpdateStatus,
        generation: int | None,
        devices: int,
        the_plan: Plan,
        result: ApplyResult,
        spec: UpdateSpec,
    ) -> UpdateStatus:
        planned = [change for device in the_plan.devices for change in device.changes]
        applied = [] if spec.dry_run else result.applied
        shown = planned if spec.dry_run else result.applied
        changes = [
            StatusChange(
                device=c.device, action=c.action.value, before=c.before, after=c.after, applied=not spec.dry_run
            )
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
        conditions = previous.conditions
        for new in new_conditions:
            conditions = set_condition(conditions, new)
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

    @staticmethod
    def _post_events(body: kopf.Body, result: ApplyResult, spec: UpdateSpec) -> None:
        by_action = Counter(change.action for change in result.applied)
        if spec.dry_run:
            if by_action:
                summary = ", ".join(f"{n} {action.value}" for action, n in sorted(by_action.items()))
                kopf.event(body, type="Normal", reason="DryRun", message=f"would apply: {summary}")
            return
        for action, n in sorted(by_action.items()):
            devices = sorted({c.device for c in result.applied if c.action is action})
            shown = ", ".join(devices[:10]) + (f" and {len(devices) - 10} more" if len(devices) > 10 else "")
            kopf.event(body, type="Normal", reason=EVENT_REASONS[action], message=f"{n} on {shown}")
        if result.held_back:
            kopf.event(
                body, type="Warning", reason="DeletesHeldBack",
                message=f"{len(result.held_back)} deletions wait for the next pass (maxDeletesPerPass "
                f"{spec.max_deletes_per_pass})",
            )  # fmt: skip
