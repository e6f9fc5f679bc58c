"""One reconcile pass of a ClusterImport: read NetBox, plan, converge, report.

Failures are mapped on purpose: NetBox or the API server unavailable -> the condition says so,
nothing is written or deleted, and kopf retries later (TemporaryError); a device with bad data ->
reported in status, the others go on.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final, NoReturn

import kopf
from kubernetes.client.exceptions import ApiException

from argora_common.backoff import Backoff
from argora_common.crds import (
    MAX_PROBLEMS,
    ClusterImportCounts,
    ClusterImportSpec,
    ClusterImportStatus,
)
from argora_common.credentials import BMCCredentials, CredentialsError, read_credentials
from argora_common.inventory import Inventory, read_inventory
from argora_common.kube import (
    Kind,
    Kube,
    Owner,
    is_ignored,
    is_subset,
    is_transient,
    now,
    set_condition,
)
from argora_common.metrics import RECONCILE_SECONDS
from argora_common.netbox import NetBox, NetBoxError, NetBoxRejectedError
from argora_common.status import (
    make_condition,
    reason_summary,
    report_failure,
    short_list,
    unexpected_errors_are_permanent,
    write_status,
)
from ironcore_controller.apply import ApplyResult, Converger, ObjectKey
from ironcore_controller.desired import BMC, BMC_SECRET, FIELD_MANAGER, Plan, plan
from ironcore_controller.settings import IroncoreSettings

type Log = logging.Logger | logging.LoggerAdapter[Any]

CLUSTER_IMPORT: Final = Kind("argora.cloud.sap", "v1alpha1", "ClusterImport", "clusterimports", namespaced=True)
DEFAULT_STATUSES: Final = ("active",)


class Reconciler:
    """State shared by the handlers of one argora-ironcore process."""

    def __init__(self, settings: IroncoreSettings, netbox: NetBox, kube: Kube) -> None:
        self.settings = settings
        self.netbox = netbox
        self.kube = kube
        self.locks: defaultdict[Owner, threading.Lock] = defaultdict(threading.Lock)
        # By (namespace, name) of the ClusterImport, as register_sync looks it up.
        self.backoff: Backoff[tuple[str, str]] = Backoff.from_settings(settings)
        self.desired: dict[ObjectKey, dict[str, Any]] = {}

    # ---- normal path --------------------------------------------------------------------------

    def sync(self, body: kopf.Body, logger: Log, *, wait: bool = True) -> None:
        owner = Owner(body["metadata"]["namespace"], body["metadata"]["name"], FIELD_MANAGER)
        lock = self.locks[owner]
        if not lock.acquire(blocking=wait):
            logger.debug("a pass over %s/%s is under way; this one is skipped", owner.namespace, owner.name)
            return
        try:
            with (
                RECONCILE_SECONDS.labels(controller="ironcore", kind="ClusterImport").time(),
                unexpected_errors_are_permanent(partial(self._report, body), logger),
            ):
                self._sync(body, owner, logger)
            self.backoff.reset((owner.namespace, owner.name))
        finally:
            lock.release()

    def _report(self, body: kopf.Body, reason: str, message: str, conditions: Sequence[str] = ("Ready",)) -> None:
        report_failure(self.kube, CLUSTER_IMPORT, body, ClusterImportStatus, reason, message, conditions)

    def _sync(self, body: kopf.Body, owner: Owner, logger: Log) -> None:
        spec = ClusterImportSpec.model_validate(body.get("spec") or {})
        previous = ClusterImportStatus.model_validate(body.get("status") or {})
        generation = body["metadata"].get("generation")
        try:
            inventory = read_inventory(self.netbox, spec.clusters, DEFAULT_STATUSES)
        except NetBoxError as error:
            self._netbox_failed(body, owner, error, logger)
        credentials = self._credentials(owner.namespace, spec)
        the_plan = plan(inventory, credentials, owner, self.settings)
        try:
            result = Converger(self.kube, owner, spec, self.settings.label_prefix).converge(the_plan)
        except ApiException as error:
            if not is_transient(error):
                raise
            raise kopf.TemporaryError(f"Kubernetes API: HTTP {error.status}", delay=self._failed(owner)) from error
        self._remember(owner, result)
        status = self._status(previous, generation, inventory, the_plan, result, spec)
        write_status(self.kube, CLUSTER_IMPORT, body, status)
        self._post_events(body, inventory, the_plan, result, spec)
        logger.info(
            "synced: %d devices, %d created, %d updated, %d adopted, %d unchanged, %d pruned, %d skipped, %d failed, "
            "%d warnings",
            status.counts.devices, status.counts.created, status.counts.updated, status.counts.adopted,
            status.counts.unchanged, status.counts.pruned, status.counts.skipped, status.counts.failed,
            status.counts.warnings,
        )  # fmt: skip

    def _credentials(self, namespace: str, spec: ClusterImportSpec) -> list[BMCCredentials | str]:
        """Credentials per selector, or why there are none; each Secret is read once per pass."""
        read: dict[tuple[str, str], BMCCredentials | str] = {}
        result: list[BMCCredentials | str] = []
        for selector in spec.clusters:
            if selector.bmc_credentials_ref is not None:
                key = (namespace, selector.bmc_credentials_ref.name)
            elif self.settings.default_bmc_credentials is not None:
                key = (self.settings.default_bmc_credentials.namespace, self.settings.default_bmc_credentials.name)
            else:
                result.append("no bmcCredentialsRef and no default (ARGORA_DEFAULT_BMC_CREDENTIALS)")
                continue
            if key not in read:
                try:
                    read[key] = read_credentials(self.kube, *key)
                except CredentialsError as error:
                    read[key] = str(error)
            result.append(read[key])
        return result

    def _netbox_failed(self, body: kopf.Body, owner: Owner, error: NetBoxError, logger: Log) -> NoReturn:
        """Nothing is written or deleted: say why on the resource and retry later."""
        reason = "NetBoxRejected" if isinstance(error, NetBoxRejectedError) else "NetBoxUnavailable"
        message = f"{error}; existing objects are left as they are"
        self._report(body, reason, message, ("Ready", "NetBoxReachable"))
        logger.warning("NetBox read failed, nothing changed: %s", error)
        raise kopf.TemporaryError(str(error), delay=self._failed(owner))

    def _failed(self, owner: Owner) -> float:
        """Count a failed pass; the growing delay before the next one, whichever handler retries it."""
        return self.backoff.failed((owner.namespace, owner.name))

    def _remember(self, owner: Owner, result: ApplyResult) -> None:
        for key, manifest in list(self.desired.items()):
            if owner.owns(manifest):
                del self.desired[key]
        self.desired.update(result.desired)

    def _status(
        self,
        previous: ClusterImportStatus,
        generation: int | None,
        inventory: Inventory,
        the_plan: Plan,
        result: ApplyResult,
        spec: ClusterImportSpec,
    ) -> ClusterImportStatus:
        problems = sorted(
            [*the_plan.problems, *result.failed, *result.drifted, *the_plan.notes], key=lambda p: (p.device, p.reason)
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
            skipped=len(the_plan.problems),
            failed=len(result.failed),
            warnings=len(the_plan.notes),
        )
        unmatched = [
            f"spec.clusters[{index}]"
            + (f" ({inventory.selector_errors[index]})" if index in inventory.selector_errors else "")
            for index in the_plan.unmatched_selectors
        ]

        condition = partial(make_condition, generation=generation)

        bad = counts.skipped + counts.failed
        new_conditions = [
            condition("Ready", True, "Synced" if not bad else "SyncedWithProblems",
                      f"{counts.devices} devices, {bad} with problems" if bad else f"{counts.devices} devices"),
            condition("NetBoxReachable", True, "Read"),
            condition("DevicesSynced", not bad, "AllSynced" if not bad else "DevicesWithProblems",
                      f"{counts.skipped} skipped, {counts.failed} failed: see status.problems" if bad else ""),
            condition("ClustersMatched", not unmatched, "AllMatched" if not unmatched else "NoClusterMatched",
                      ", ".join(unmatched) + " matched no NetBox cluster" if unmatched else ""),
            condition("AccessDrift", not result.drifted, "NoDrift" if not result.drifted else "AccessChanged",
                      f"{len(result.drifted)} BMCs differ from NetBox (onImmutableChange: {spec.on_immutable_change})"
                      if result.drifted else ""),
            condition("PruneComplete", not result.held_back, "Complete" if not result.held_back else "HeldBack",
                      f"{len(result.held_back)} objects kept: {result.held_back_reason}" if result.held_back else ""),
        ]  # fmt: skip
        conditions = previous.conditions
        for new in new_conditions:
            conditions = set_condition(conditions, new)
        return ClusterImportStatus(
            state="Ready",
            observed_generation=generation,
            conditions=conditions,
            last_sync_time=now(),
            counts=counts,
            problems=problems[:MAX_PROBLEMS],
        )

    def _post_events(
        self, body: kopf.Body, inventory: Inventory, the_plan: Plan, result: ApplyResult, spec: ClusterImportSpec
    ) -> None:
        if result.created:
            kopf.event(
                body, type="Normal", reason="Created", message=f"BMC and BMCSecret for {short_list(result.created)}"
            )
        if result.updated:
            kopf.event(body, type="Normal", reason="Updated", message=f"BMC/BMCSecret of {short_list(result.updated)}")
        if result.adopted:
            kopf.event(
                body, type="Normal", reason="Adopted",
                message=f"took over the original operator's BMC/BMCSecret of {short_list(result.adopted)}",
            )  # fmt: skip
        if result.pruned:
            kopf.event(body, type="Normal", reason="Pruned", message=f"deleted {short_list(result.pruned)}")
        if result.held_back:
            kopf.event(
                body, type="Warning", reason="PruneHeldBack",
                message=f"kept {short_list(result.held_back)}: {result.held_back_reason}",
            )  # fmt: skip
        if result.drifted:
            devices = [problem.device for problem in result.drifted]
            kopf.event(
                body, type="Warning", reason="AccessDrift",
                message=f"spec.access differs from NetBox for {short_list(devices)} (onImmutableChange: "
                f"{spec.on_immutable_change})",
            )  # fmt: skip
        problems = [*the_plan.problems, *result.failed]
        if problems:
            kopf.event(body, type="Warning", reason="DevicesSkipped", message=reason_summary(problems))
        if the_plan.notes:
            kopf.event(body, type="Warning", reason="DevicesIncomplete", message=reason_summary(the_plan.notes))
        for index in the_plan.unmatched_selectors:
            kopf.event(
                body, type="Warning", reason="NoClusterMatched",
                message=f"spec.clusters[{index}] matched no NetBox cluster"
                + (f": {inventory.selector_errors[index]}" if index in inventory.selector_errors else ""),
            )  # fmt: skip

    # ---- repair of edited or deleted objects --------------------------------------------------

    def repair(self, kind: Kind, event_type: str | None, body: Mapping[str, Any], logger: Log) -> None:
        """Put back an object of ours that someone edited or deleted, as the last pass wanted it."""
        name = body["metadata"]["name"]
        desired = self.desired.get((kind.kind, name))
        if desired is None or body["metadata"].get("deletionTimestamp"):
            return
        owner = Owner.of(desired)
        with self.locks[owner]:
            desired = self.desired.get((kind.kind, name))
            if desired is None:
                return
            if is_ignored(body) or (event_type != "DELETED" and is_subset(desired, body)):
                return
            self.kube.apply(kind, desired)
            logger.info("put back %s %s (%s)", kind.kind, name, "deleted" if event_type == "DELETED" else "edited")

    # ---- delete path --------------------------------------------------------------------------

    def delete(self, body: kopf.Body, logger: Log) -> None:
        owner = Owner(body["metadata"]["namespace"], body["metadata"]["name"], FIELD_MANAGER)
        spec = ClusterImportSpec.model_validate(body.get("spec") or {})
        with self.locks[owner]:
            self._remember(owner, ApplyResult())
            if spec.deletion_policy == "Orphan":
                logger.info("deletionPolicy Orphan: BMCs and BMCSecrets are left in place")
                return
            deleted = []
            try:
                for kind in (BMC, BMC_SECRET):
                    for obj in self.kube.list(kind, label_selector=owner.selector()):
                        if self.kube.delete(kind, obj["metadata"]["name"]):
                            deleted.append(f"{kind.kind}/{obj['metadata']['name']}")
            except ApiException as error:
                if not is_transient(error):
                    raise
                raise kopf.TemporaryError(f"Kubernetes API: HTTP {error.status}", delay=self._failed(owner)) from error
            logger.info("deletionPolicy Delete: deleted %d objects", len(deleted))
        self.locks.pop(owner, None)
        self.backoff.reset((owner.namespace, owner.name))
