"""Converge Kubernetes to a plan: server-side apply what differs, report drift, prune with guards."""

from __future__ import annotations

import copy
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from argora_common.converge import ConvergeResult, DeviceConverger
from argora_common.crds import ClusterImportSpec, DeviceProblem
from argora_common.kinds import BMC, BMC_SECRET
from argora_common.kube import Kube, Owner, WriteOutcome, is_ignored
from argora_common.parallel import in_parallel
from argora_common.prune import default_cap
from ironcore_controller.desired import DesiredDevice, Plan

type ObjectKey = tuple[str, str]  # (kind, name)


@dataclass
class ApplyResult(ConvergeResult):
    # What each of our objects should look like now: edits and deletions are repaired from this.
    desired: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)


def _access(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict((obj.get("spec") or {}).get("access") or {})


def access_conflicts(wanted: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
    """Whether a BMC's access disagrees with NetBox. A field the BMC lacks is no conflict: the original
    operator registered BMCs without a MAC, and spec.access cannot be completed afterwards."""
    return "ip" not in found or any(key in wanted and wanted[key] != value for key, value in found.items())


def _with_access(bmc: Mapping[str, Any], access: Mapping[str, Any]) -> dict[str, Any]:
    """`bmc` keeping the live access: applying another one would be refused."""
    kept = copy.deepcopy(dict(bmc))
    kept["spec"]["access"] = dict(access)
    return kept


class Converger(DeviceConverger[ApplyResult]):
    """One pass over one ClusterImport's objects."""

    def __init__(self, kube: Kube, owner: Owner, spec: ClusterImportSpec, label_prefix: str) -> None:
        super().__init__(kube, owner, label_prefix, ApplyResult())
        self.spec = spec
        # BMCs Recreate may still delete this pass: as many as the prune cap allows (a bulk OOB-IP change in
        # NetBox must not delete every BMC at once). Set per pass from the owned objects.
        self._recreates_left = 0
        self._recreates_lock = threading.Lock()

    def converge(
        self,
        plan: Plan,
        scope: Collection[int] | None = None,
        carried: Mapping[ObjectKey, dict[str, Any]] | None = None,
    ) -> ApplyResult:
        """Every device of the plan, or only those in `scope` (a pass on a delta read: the others' objects
        are as `carried` says, written before); the prune looks at every object either way."""
        devices = plan.devices if scope is None else [device for device in plan.devices if device.device_id in scope]
        self.result.desired.update(carried or {})
        self.result.unchanged += len(plan.devices) - len(devices)
        wanted = {device.name for device in devices}
        live = {kind.kind: self.kube.live(kind, wanted) for kind in (BMC, BMC_SECRET)}
        owned_count = sum(1 for objects in live.values() for obj in objects.values() if self.owner.owns(obj))
        cap = self.spec.max_prune_per_pass
        self._recreates_left = default_cap(owned_count) if cap is None else cap

        self.each_device(
            devices,
            lambda desired: self._converge_device(
                desired, live[BMC.kind].get(desired.name), live[BMC_SECRET.kind].get(desired.name)
            ),
        )
        self._prune(plan, live)
        return self.result

    def _converge_device(
        self, desired: DesiredDevice, live_bmc: dict[str, Any] | None, live_secret: dict[str, Any] | None
    ) -> None:
        objects = ((BMC, live_bmc, desired.bmc), (BMC_SECRET, live_secret, desired.secret))
        adopt = {kind.kind: self.adoptable(live, body) for kind, live, body in objects}
        if self.name_taken(desired, [(kind, live, adopt[kind.kind]) for kind, live, _ in objects]):
            return
        outcomes: list[WriteOutcome] = []
        if not is_ignored(live_secret):
            self.result.desired[(BMC_SECRET.kind, desired.name)] = desired.secret
            outcomes.append(self.write(BMC_SECRET, desired.secret, live_secret))
        bmc, live_bmc = self._bmc_after_drift(desired, live_bmc)
        if bmc is not None:
            self.result.desired[(BMC.kind, desired.name)] = bmc
            outcomes.append(self.write(BMC, bmc, live_bmc))
        self.result.count(desired.name, outcomes, adopted=any(adopt.values()))

    def _bmc_after_drift(
        self, desired: DesiredDevice, live: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The BMC to apply and the live one, given that metal-operator never lets spec.access change.

        Report: keep the live access (applying the new one would be refused) and report the drift.
        Recreate: delete the BMC and apply it anew; nothing to apply while its deletion is under way.
        """
        wanted, found = desired.bmc["spec"]["access"], _access(live) if live is not None else {}
        if live is None or found == wanted:
            return desired.bmc, live
        if not access_conflicts(wanted, found):
            return _with_access(desired.bmc, found), live
        message = f"NetBox has access {wanted}, the BMC has {found} (spec.access is immutable)"
        recreate = self.spec.on_immutable_change == "Recreate"
        if recreate and not live["metadata"].get("deletionTimestamp") and not self._take_recreate():
            # Over the cap: reported like Report this pass, recreated on a later one.
            recreate = False
            message += "; recreating waits for a later pass (at most the prune cap of BMCs are recreated per pass)"
        elif recreate:
            if not live["metadata"].get("deletionTimestamp"):
                self.delete(BMC, desired.name, uid=live["metadata"]["uid"])
            if self.kube.get(BMC, desired.name) is None:
                return desired.bmc, None
            message += "; recreating, waiting for the old BMC to go away"
        self.result.drifted.append(
            DeviceProblem(
                device=desired.device_name, device_id=desired.device_id, reason="AccessDrift", message=message
            )
        )
        if recreate:
            return None, live
        return _with_access(desired.bmc, found), live

    def _take_recreate(self) -> bool:
        with self._recreates_lock:
            if self._recreates_left <= 0:
                return False
            self._recreates_left -= 1
            return True

    def _prune(self, plan: Plan, live: Mapping[str, Mapping[str, dict[str, Any]]]) -> None:
        decision = self.prune_decision(
            [(kind, live[kind.kind]) for kind in (BMC, BMC_SECRET)],
            plan.devices,
            plan.selected_device_ids,
            enabled=self.spec.prune and not plan.prune_blocked,
            disabled_reason=plan.prune_blocked or "pruning is off (spec.prune: false)",
            cap=self.spec.max_prune_per_pass,
        )
        for obj in decision.delete:
            self.result.desired.pop((obj.kind.kind, obj.name), None)
            self.result.pruned.append(str(obj))
        in_parallel(
            lambda obj: self.delete(obj.kind, obj.name, uid=obj.uid),
            decision.delete,
            self.kube.writes_in_flight,
            name="argora-write",
        )
        self.result.held_back = [str(obj) for obj in decision.held_back]
        self.result.held_back_reason = decision.reason
