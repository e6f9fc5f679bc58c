"""Converge Kubernetes to a plan: server-side apply what differs, report drift, prune with guards."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from argora_common.crds import ClusterImportSpec, DeviceProblem
from argora_common.kube import IGNORE_ANNOTATION, Kind, Kube, is_subset
from argora_common.metrics import OBJECTS_WRITTEN
from ironcore_controller.desired import BMC, BMC_SECRET, DesiredDevice, Owner, Plan

# Minimum of the default prune cap: a small import may still lose a handful of devices in one pass.
MIN_PRUNE_CAP = 5
DEFAULT_PRUNE_SHARE = 0.10

type ObjectKey = tuple[str, str]  # (kind, name)


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)
    held_back_reason: str = ""
    drifted: list[DeviceProblem] = field(default_factory=list)
    failed: list[DeviceProblem] = field(default_factory=list)
    # What each of our objects should look like now: edits and deletions are repaired from this.
    desired: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)


def is_transient(error: ApiException) -> bool:
    """Worth retrying the pass: the API server was unavailable, overloaded or the connection failed."""
    return error.status in {0, 408, 429} or (error.status or 0) >= 500


def _access(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict((obj.get("spec") or {}).get("access") or {})


def is_ignored(obj: Mapping[str, Any] | None) -> bool:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(IGNORE_ANNOTATION, "")).lower() == "true"


class Converger:
    """One pass over one ClusterImport's objects."""

    def __init__(self, kube: Kube, owner: Owner, spec: ClusterImportSpec, device_id_label: str) -> None:
        self.kube = kube
        self.owner = owner
        self.spec = spec
        self.device_id_label = device_id_label
        self.result = ApplyResult()

    def converge(self, plan: Plan) -> ApplyResult:
        live = {kind.kind: {obj["metadata"]["name"]: obj for obj in self.kube.list(kind)} for kind in (BMC, BMC_SECRET)}
        for desired in plan.devices:
            try:
                self._converge_device(
                    desired, live[BMC.kind].get(desired.name), live[BMC_SECRET.kind].get(desired.name)
                )
            except ApiException as error:
                if is_transient(error):
                    raise
                self.result.failed.append(
                    DeviceProblem(
                        device=desired.device_name,
                        device_id=desired.device_id,
                        reason="Rejected",
                        message=f"the API server refused {desired.name}: HTTP {error.status} {_api_message(error)}",
                    )
                )
        self._prune(plan, live)
        return self.result

    def _write(self, kind: Kind, body: dict[str, Any], existed: bool) -> None:
        self.kube.apply(kind, body)
        OBJECTS_WRITTEN.labels(controller="ironcore", kind=kind.kind, action="update" if existed else "create").inc()

    def _converge_device(
        self, desired: DesiredDevice, live_bmc: dict[str, Any] | None, live_secret: dict[str, Any] | None
    ) -> None:
        for kind, live in ((BMC, live_bmc), (BMC_SECRET, live_secret)):
            if live is not None and not self.owner.owns(live):
                self.result.failed.append(
                    DeviceProblem(
                        device=desired.device_name,
                        device_id=desired.device_id,
                        reason="NameTaken",
                        message=f"{kind.kind} {desired.name} exists and is not managed by this ClusterImport",
                    )
                )
                return
        changes: list[bool] = []  # True: created, False: updated
        if not is_ignored(live_secret):
            self.result.desired[(BMC_SECRET.kind, desired.name)] = desired.secret
            if live_secret is None or not is_subset(desired.secret, live_secret):
                self._write(BMC_SECRET, desired.secret, existed=live_secret is not None)
                changes.append(live_secret is None)
        bmc, live_bmc = self._bmc_after_drift(desired, live_bmc)
        if bmc is not None:
            self.result.desired[(BMC.kind, desired.name)] = bmc
            if live_bmc is None or not is_subset(bmc, live_bmc):
                self._write(BMC, bmc, existed=live_bmc is not None)
                changes.append(live_bmc is None)
        if not changes:
            self.result.unchanged += 1
        elif all(changes):
            self.result.created.append(desired.name)
        else:
            self.result.updated.append(desired.name)

    def _bmc_after_drift(
        self, desired: DesiredDevice, live: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The BMC to apply and the live one, given that metal-operator never lets spec.access change.

        Report: keep the live access (applying the new one would be refused) and report the drift.
        Recreate: delete the BMC and apply it anew; nothing to apply while its deletion is under way.
        """
        if live is None or _access(live) == desired.bmc["spec"]["access"]:
            return desired.bmc, live
        wanted, found = desired.bmc["spec"]["access"], _access(live)
        message = f"NetBox has access {wanted}, the BMC has {found} (spec.access is immutable)"
        if self.spec.on_immutable_change == "Recreate":
            self.kube.delete(BMC, desired.name)
            OBJECTS_WRITTEN.labels(controller="ironcore", kind=BMC.kind, action="delete").inc()
            if self.kube.get(BMC, desired.name) is None:
                return desired.bmc, None
            message += "; recreating, waiting for the old BMC to go away"
        self.result.drifted.append(
            DeviceProblem(
                device=desired.device_name, device_id=desired.device_id, reason="AccessDrift", message=message
            )
        )
        if self.spec.on_immutable_change == "Recreate":
            return None, live
        kept = copy.deepcopy(desired.bmc)
        kept["spec"]["access"] = found
        return kept, live

    def _prune(self, plan: Plan, live: Mapping[str, Mapping[str, dict[str, Any]]]) -> None:
        desired_names = {device.name for device in plan.devices}
        renamed_devices = {device.device_id for device in plan.devices}
        owned = [(kind, obj) for kind in (BMC, BMC_SECRET) for obj in live[kind.kind].values() if self.owner.owns(obj)]
        stale: list[tuple[Kind, str]] = []
        for kind, obj in owned:
            name = obj["metadata"]["name"]
            device_id = _int_or_none(obj["metadata"]["labels"].get(self.device_id_label))
            if name in desired_names:
                continue
            # A device that is still selected keeps its objects while it has a problem; it loses
            # them only when it got a new name (its objects under the old name are stale).
            if device_id in plan.selected_device_ids and device_id not in renamed_devices:
                continue
            stale.append((kind, name))
        # BMC before its BMCSecret, pairs together, so a held-back pair stays whole.
        stale.sort(key=lambda item: (item[1], item[0] is not BMC))
        if not stale:
            return
        cap = self.spec.max_prune_per_pass
        if cap is None:
            cap = max(MIN_PRUNE_CAP, math.ceil(DEFAULT_PRUNE_SHARE * len(owned)))
        if not self.spec.prune:
            allowed, self.result.held_back_reason = 0, "pruning is off (spec.prune: false)"
        elif not plan.selected_device_ids:
            # Nothing selected while we own objects: far more likely a NetBox permission or selector
            # problem than a data centre emptied at once.
            allowed, self.result.held_back_reason = 0, "NetBox selected no device at all; nothing is pruned"
        else:
            allowed = cap
            if len(stale) > cap:
                self.result.held_back_reason = f"at most {cap} objects are pruned per pass (spec.maxPrunePerPass)"
        for kind, name in stale[:allowed]:
            self.result.desired.pop((kind.kind, name), None)
            if self.kube.delete(kind, name):
                OBJECTS_WRITTEN.labels(controller="ironcore", kind=kind.kind, action="delete").inc()
            self.result.pruned.append(f"{kind.kind}/{name}")
        self.result.held_back = [f"{kind.kind}/{name}" for kind, name in stale[allowed:]]


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body).get("message", ""))[:300]
    except (TypeError, ValueError):
        return str(error.reason)
