"""The steps of a ClusterImport's pass (read NetBox, plan, converge, report) for the shared skeleton,
the delete path, and the repair of edited or deleted objects."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from argora_common import crds
from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, MAC_ADDRESS, SITE, ChangeSet, Interest
from argora_common.converge import LastPlans
from argora_common.crds import MAX_PROBLEMS, ClusterImportCounts, ClusterImportSpec, ClusterImportStatus
from argora_common.credentials import BMCCredentials, CredentialsProblem, credentials_for
from argora_common.errors import Decision
from argora_common.inventory import Inventory, read_inventory
from argora_common.inventory_delta import patch_inventory
from argora_common.kinds import BMC, BMC_SECRET
from argora_common.kube import Kind, Kube, Owner, argora_kind, is_ignored, is_subset
from argora_common.metrics import OBJECTS_WRITTEN
from argora_common.netbox import NetBox
from argora_common.passes import Body, ControllerSteps, Key, Log, PassRunner, Tracking, key_of
from argora_common.status import (
    Event,
    EventWords,
    convergence_events,
    make_condition,
    merge_conditions,
    now,
    report_counted,
    report_failure,
)
from ironcore_controller.apply import ApplyResult, Converger, ObjectKey
from ironcore_controller.desired import FIELD_MANAGER, Plan, plan
from ironcore_controller.settings import IroncoreSettings

CLUSTER_IMPORT: Final = argora_kind(crds.CLUSTER_IMPORT)
INTEREST: Final = Interest(
    frozenset({CLUSTER, DEVICE, INTERFACE, MAC_ADDRESS, IP_ADDRESS, SITE}), everyone=frozenset({CLUSTER})
)
DEFAULT_STATUSES: Final = ("active",)
WORDS: Final = EventWords(
    created=("Created", "BMC and BMCSecret for {names}"),
    updated=("Updated", "BMC/BMCSecret of {names}"),
    adopted=("Adopted", "took over the original operator's BMC/BMCSecret of {names}"),
    pruned=("Pruned", "deleted {names}"),
    held_back=("PruneHeldBack", "kept {names}: {reason}"),
    drifted=("AccessDrift", "spec.access differs from NetBox for {names}"),
)


def owner_of(body: Body) -> Owner:
    return Owner(body["metadata"]["namespace"], body["metadata"]["name"], FIELD_MANAGER)


@dataclass
class Facts:
    spec: ClusterImportSpec
    inventory: Inventory
    credentials: list[
        BMCCredentials | CredentialsProblem
    ]  # per spec.clusters entry: the credentials, or why there are none
    delta: bool = False  # the inventory is the last one with what NetBox's changes named read again


class ImportSteps(ControllerSteps[IroncoreSettings]):
    """read -> plan -> converge -> report of one ClusterImport."""

    kind = CLUSTER_IMPORT.kind
    kept = "existing objects are left as they are"

    def __init__(self, settings: IroncoreSettings, netbox: NetBox, kube: Kube) -> None:
        super().__init__(settings, netbox, kube)
        # What each of our objects should look like after the last pass, and whose it is (a long name is
        # only a hash in the labels): edits are repaired from it, under the owner's lock.
        self.desired: dict[ObjectKey, tuple[Owner, dict[str, Any]]] = {}
        self.desired_lock = threading.Lock()
        self.last_plans: LastPlans[Key] = LastPlans()

    def read(self, body: Body) -> Facts:
        spec = ClusterImportSpec.model_validate(body.get("spec") or {})
        inventory = read_inventory(self.netbox, spec.clusters, DEFAULT_STATUSES)
        return Facts(spec, inventory, self._credentials(body, spec))

    def patch(self, body: Body, facts: Facts, changes: ChangeSet) -> Facts | None:
        """The last read with what `changes` name read again; None: read NetBox whole."""
        delta = patch_inventory(self.netbox, facts.inventory, facts.spec.clusters, DEFAULT_STATUSES, changes)
        return None if delta is None else Facts(facts.spec, delta.inventory, facts.credentials, delta=True)

    def refresh(self, body: Body, facts: Facts) -> Facts:
        """The last NetBox reads with the credentials read again (a rotated Secret is picked up)."""
        return Facts(facts.spec, facts.inventory, self._credentials(body, facts.spec), facts.delta)

    def _credentials(self, body: Body, spec: ClusterImportSpec) -> list[BMCCredentials | CredentialsProblem]:
        namespace = body["metadata"]["namespace"]
        wanted = [(namespace, s.bmc_credentials_ref.name if s.bmc_credentials_ref else None) for s in spec.clusters]
        return credentials_for(
            self.kube, wanted, self.settings.default_bmc_credentials, "bmcCredentialsRef",
            opt_in=self.settings.credentials_opt_in,
        )  # fmt: skip

    def plan(self, body: Body, facts: Facts) -> Plan:
        planned = plan(facts.inventory, facts.credentials, owner_of(body), self.settings)
        planned.delta = facts.delta
        return planned

    def converge(self, body: Body, planned: Plan) -> ApplyResult:
        spec = ClusterImportSpec.model_validate(body.get("spec") or {})
        owner, key = owner_of(body), key_of(body)
        scope = self.last_plans.scope(key, planned.devices, delta=planned.delta)
        carried = self._carried(owner, scope) if scope is not None else {}
        converger = Converger(self.kube, owner, spec, self.settings.label_prefix)
        result = converger.converge(planned, scope, carried)
        self.remember(owner, result.desired)
        self.last_plans.record(key, planned.devices, result)
        return result

    def _carried(self, owner: Owner, scope: Collection[int]) -> dict[ObjectKey, dict[str, Any]]:
        """What the owner's objects of the devices a delta pass leaves alone should look like: as before."""
        label = f"{self.settings.label_prefix}/device-id"
        converged = {str(device_id) for device_id in scope}
        with self.desired_lock:
            return {
                key: manifest
                for key, (held_by, manifest) in self.desired.items()
                if held_by == owner and manifest["metadata"]["labels"].get(label) not in converged
            }

    def remember(self, owner: Owner, desired: Mapping[ObjectKey, dict[str, Any]]) -> None:
        with self.desired_lock:
            for key, (held_by, _) in list(self.desired.items()):
                if held_by == owner:
                    del self.desired[key]
            self.desired.update({key: (owner, manifest) for key, manifest in desired.items()})

    def report(self, body: Body, facts: Facts, planned: Plan, result: ApplyResult) -> str:
        status = import_status(body, facts, planned, result)
        return report_counted(
            self.kube, CLUSTER_IMPORT, body, status, status.counts, import_events(facts, planned, result)
        )

    def report_failure(self, body: Body, decision: Decision) -> None:
        self.last_plans.forget(key_of(body))
        report_failure(self.kube, CLUSTER_IMPORT, body, ClusterImportStatus, decision)


def import_status(body: Body, facts: Facts, planned: Plan, result: ApplyResult) -> ClusterImportStatus:
    inventory, spec = facts.inventory, facts.spec
    previous = ClusterImportStatus.model_validate(body.get("status") or {})
    problems = sorted(
        [*planned.problems, *result.failed, *result.drifted, *planned.notes], key=lambda p: (p.device, p.reason)
    )
    counts = ClusterImportCounts(
        clusters=inventory.cluster_count,
        devices=len(inventory.devices),
        created=len(result.created),
        updated=len(result.updated),
        adopted=len(result.adopted),
        unchanged=result.unchanged,
        pruned=len(result.pruned),
        prune_held_back=len(result.held_back),
        drifted=len(result.drifted),
        skipped=len(planned.problems),
        failed=len(result.failed),
        warnings=len(planned.notes),
    )
    unmatched = [
        f"spec.clusters[{index}]"
        + (f" ({inventory.selector_errors[index]})" if index in inventory.selector_errors else "")
        for index in planned.unmatched_selectors
    ]
    generation = body["metadata"].get("generation")
    condition = partial(make_condition, generation=generation)
    bad = counts.skipped + counts.failed
    conditions = merge_conditions(previous.conditions, [
        condition("Ready", True, "Synced" if not bad else "SyncedWithProblems",
                  f"{counts.devices} devices, {bad} with problems" if bad else f"{counts.devices} devices"),
        condition("NetBoxReachable", True, "Read"),
        condition("DevicesSynced", not bad, "AllSynced" if not bad else "DevicesWithProblems",
                  f"{counts.skipped} skipped, {counts.failed} failed: see status.problems" if bad else ""),
        condition("ClustersMatched", not unmatched, "AllMatched" if not unmatched else "NoClusterMatched",
                  ", ".join(unmatched) + " matched no NetBox cluster" if unmatched else ""),
        condition("AccessInSync", not result.drifted, "InSync" if not result.drifted else "AccessChanged",
                  f"{len(result.drifted)} BMCs differ from NetBox (onImmutableChange: {spec.on_immutable_change})"
                  if result.drifted else ""),
        condition("PruneComplete", not result.held_back, "Complete" if not result.held_back else "HeldBack",
                  f"{len(result.held_back)} objects kept: {result.held_back_reason}" if result.held_back else ""),
    ])  # fmt: skip
    # A condition type this controller no longer writes would otherwise stay forever with a stale meaning.
    conditions = [c for c in conditions if c.type != "AccessDrift"]
    return ClusterImportStatus(
        state="Ready",
        observed_generation=generation,
        conditions=conditions,
        last_sync_time=now(),
        counts=counts,
        problems=problems[:MAX_PROBLEMS],
    )


def import_events(facts: Facts, planned: Plan, result: ApplyResult) -> list[Event]:
    events = convergence_events(result, planned.problems, planned.notes, WORDS)
    for index in planned.unmatched_selectors:
        error = facts.inventory.selector_errors.get(index)
        message = f"spec.clusters[{index}] matched no NetBox cluster" + (f": {error}" if error else "")
        events.append(Event("Warning", "NoClusterMatched", message))
    return events


class Reconciler:
    """What the handlers of one argora-ironcore process call."""

    def __init__(self, settings: IroncoreSettings, netbox: NetBox, kube: Kube) -> None:
        self.kube = kube
        self.steps = ImportSteps(settings, netbox, kube)
        tracking = Tracking(
            touched=lambda facts: facts.inventory.refs(), refresh=self.steps.refresh, patch=self.steps.patch
        )
        self.passes = PassRunner.from_settings(self.steps, settings, kube.controller, tracking)

    def repair(self, kind: Kind, event_type: str | None, body: Mapping[str, Any], logger: Log) -> None:
        """Put back an object of ours that someone edited or deleted, as the last pass wanted it."""
        name = body["metadata"]["name"]
        if body["metadata"].get("deletionTimestamp") or is_ignored(body):
            return
        held = self.steps.desired.get((kind.kind, name))
        if held is None or (event_type != "DELETED" and is_subset(held[1], body)):
            return
        owner = held[0]
        with self.passes.locks.hold((owner.namespace, owner.name)):
            # A pass may have run meanwhile and changed what we want, or given the object up.
            held = self.steps.desired.get((kind.kind, name))
            if held is None:
                return
            self.kube.apply(kind, held[1])
        # Per object, so at DEBUG (a mass edit would flood INFO); the metric counts every repair.
        OBJECTS_WRITTEN.labels(controller=self.kube.controller, kind=kind.kind, action="repair").inc()
        logger.debug("put back %s %s (%s)", kind.kind, name, "deleted" if event_type == "DELETED" else "edited")

    def delete(self, body: Body, logger: Log) -> None:
        owner = owner_of(body)
        spec = ClusterImportSpec.model_validate(body.get("spec") or {})

        def remove() -> str:
            self.steps.remember(owner, {})
            self.steps.last_plans.forget(key_of(body))
            if spec.deletion_policy == "Orphan":
                return "deletionPolicy Orphan: BMCs and BMCSecrets are left in place"
            deleted = [
                obj["metadata"]["name"]
                for kind in (BMC, BMC_SECRET)
                for obj in self.kube.list(kind, label_selector=owner.selector())
                if self.kube.delete(kind, obj["metadata"]["name"], uid=obj["metadata"]["uid"])
            ]
            return f"deletionPolicy Delete: deleted {len(deleted)} objects"

        self.passes.delete(body, logger, remove)
