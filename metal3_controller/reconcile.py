"""The steps of a pass over one Cluster API Cluster for the shared skeleton (read NetBox, plan,
converge, report on the Cluster), and the scheduling of those passes.

The Cluster belongs to Cluster API: we never write its spec or status, only our one annotation
(`argora.cloud.sap/sync-status`) by server-side apply, and we put no finalizer on it. Results are
visible there and as Events on the Cluster. Passes run from the controller's work queue, fed by raw watch
events, NetBox's changes and each pass's own resync or retry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from argora_common.changes import (
    CLUSTER,
    DEVICE,
    INTERFACE,
    IP_ADDRESS,
    MAC_ADDRESS,
    PREFIX,
    SITE,
    ChangeSet,
    Interest,
    NetBoxId,
)
from argora_common.converge import ConvergeResult, LastPlans
from argora_common.crds import DeviceProblem
from argora_common.credentials import BMCCredentials, CredentialsProblem, credentials_for
from argora_common.errors import BadInputError, Decision, brief
from argora_common.inventory import BootInterfaces, Inventory, read_boot_interfaces, read_inventory
from argora_common.inventory_delta import boot_devices, merged_boot, patch_inventory
from argora_common.kube import SYNC_ANNOTATION, Kube, Owner
from argora_common.netbox import NetBox
from argora_common.netbox_schema import PREFIXES, Device, Prefix
from argora_common.passes import Body, ControllerSteps, Key, PassRunner, Tracking, key_of
from argora_common.queued import QueuedPasses
from argora_common.status import EventWords, convergence_events, now, post_event, post_events, short_list
from argora_common.workqueue import WorkQueue
from metal3_controller.apply import Converger, PrunePolicy
from metal3_controller.claims import Asker, Claim, Claims, ClaimStore, Holder, asker, record, released
from metal3_controller.desired import (
    CAPI_CLUSTER,
    CLUSTER_ROLE_LABEL,
    CREDENTIALS_ANNOTATION,
    FIELD_MANAGER,
    MAX_PRUNE_ANNOTATION,
    NETBOX_CLUSTER_ANNOTATION,
    PAUSED_ANNOTATION,
    PRUNE_ANNOTATION,
    SYNC_STATUS_ANNOTATION,
    Plan,
    asked_netbox_cluster,
    imported_netbox_cluster,
    is_paused,
    netbox_selector,
    plan,
)
from metal3_controller.settings import Metal3Settings

log = logging.getLogger("argora.metal3")

DEVICE_STATUSES: Final = ("active",)
INTEREST: Final = Interest(
    frozenset({CLUSTER, DEVICE, INTERFACE, MAC_ADDRESS, IP_ADDRESS, PREFIX, SITE}),
    everyone=frozenset({CLUSTER, PREFIX}),
)


def interest(settings: Metal3Settings) -> Interest:
    """What the Clusters' passes read: prefixes only for networkData, and then any prefix change may concern
    every Cluster (the change log names a prefix's scope by an object-type id and scope id, not its site)."""
    if settings.network_data:
        return INTEREST
    return Interest(INTEREST.object_types - {PREFIX}, everyone=INTEREST.everyone - {PREFIX})


SUMMARY_PROBLEMS: Final = 10
# The inputs of a pass; anything else changing on a Cluster (our own annotation, CAPI's status)
# is no reason for another one.
WATCHED_ANNOTATIONS: Final = (
    NETBOX_CLUSTER_ANNOTATION, CREDENTIALS_ANNOTATION, PRUNE_ANNOTATION, MAX_PRUNE_ANNOTATION, PAUSED_ANNOTATION,
    SYNC_ANNOTATION,
)  # fmt: skip
WORDS: Final = EventWords(
    created=("Registered", "BareMetalHosts {names}"),
    updated=("Updated", "BareMetalHosts {names}"),
    adopted=("Adopted", "took over the original operator's BareMetalHosts {names}"),
    pruned=("Pruned", "deleted BareMetalHosts {names}"),
    held_back=("DevicesLeft", "{names} left the NetBox cluster; kept: {reason}"),
    drifted=("RegistrationDrift", "NetBox differs from registered fields of {names}; not forced"),
)


def fingerprint(cluster: Mapping[str, Any]) -> str:
    metadata = cluster["metadata"]
    annotations = metadata.get("annotations") or {}
    return json.dumps(
        [
            metadata.get("generation"),
            [annotations.get(key) for key in WATCHED_ANNOTATIONS],
            (metadata.get("labels") or {}).get(CLUSTER_ROLE_LABEL),
        ]
    )


@dataclass
class Facts:
    netbox_cluster: str
    inventory: Inventory
    boot: BootInterfaces
    prefixes: list[Prefix]
    credentials: BMCCredentials | CredentialsProblem
    delta: bool = False  # the last read with what NetBox's changes named read again

    def refs(self) -> set[NetBoxId]:
        return self.inventory.refs() | self.boot.refs() | {(PREFIX, prefix.id) for prefix in self.prefixes}


class ClusterSteps(ControllerSteps[Metal3Settings]):
    """read -> plan -> converge -> report of one Cluster."""

    kind = CAPI_CLUSTER.kind
    kept = "existing hosts are left as they are"

    def __init__(self, settings: Metal3Settings, netbox: NetBox, kube: Kube) -> None:
        super().__init__(settings, netbox, kube)
        self.claims = ClaimStore(kube, settings.own_namespace)
        self.last_plans: LastPlans[Key] = LastPlans()

    def read(self, body: Body) -> Facts:
        selector, wanted = netbox_selector(body), asked_netbox_cluster(body)
        if selector is None or wanted is None:
            raise BadInputError("NotOptedIn", "the Cluster no longer asks for NetBox hosts", retry=False)
        namespace = body["metadata"]["namespace"]
        if not self.settings.may_import(namespace, wanted):
            raise BadInputError(
                "NetBoxClusterNotAllowed",
                f"namespace {namespace!r} may not import NetBox cluster {wanted!r} "
                "(ARGORA_ALLOWED_NETBOX_CLUSTERS); nothing was written",
                retry=False,
            )
        self._claim(body, wanted)
        inventory = read_inventory(self.netbox, [selector], DEVICE_STATUSES)
        matched = inventory.clusters_by_selector[0]
        if len(matched) != 1:
            wanted = f"name {selector.name!r}" + (f" and type {selector.type!r}" if selector.type else "")
            reason = "NoNetBoxCluster" if not matched else "AmbiguousNetBoxCluster"
            raise BadInputError(
                reason, f"{len(matched)} NetBox clusters with {wanted}; nothing was written", retry=False
            )
        devices = [selected.device for selected in inventory.devices]
        boot = read_boot_interfaces(self.netbox, devices)
        return Facts(matched[0].name, inventory, boot, self._prefixes(devices), self._credentials(body))

    def _prefixes(self, devices: Sequence[Device]) -> list[Prefix]:
        """The prefixes of the devices' sites, for networkData."""
        if not self.settings.network_data:
            return []
        return self.netbox.list_by_ids(PREFIXES, "site_id", {device.site.id for device in devices})

    def patch(self, body: Body, facts: Facts, changes: ChangeSet) -> Facts | None:
        """The last read with what `changes` name read again (devices, their BMC and boot ports, and the
        sites' prefixes when a prefix changed or the sites did); None: read NetBox whole."""
        selector = netbox_selector(body)
        if selector is None:
            return None
        also = boot_devices(facts.boot, changes)
        delta = patch_inventory(self.netbox, facts.inventory, [selector], DEVICE_STATUSES, changes, also)
        if delta is None:
            return None
        devices = [selected.device for selected in delta.inventory.devices]
        again = [device for device in devices if device.id in delta.device_ids]
        boot = merged_boot(facts.boot, read_boot_interfaces(self.netbox, again), delta.device_ids)
        sites_before = {selected.device.site.id for selected in facts.inventory.devices}
        prefixes = facts.prefixes
        if changes.ids(PREFIX) or {device.site.id for device in devices} != sites_before:
            prefixes = self._prefixes(devices)
        return Facts(facts.netbox_cluster, delta.inventory, boot, prefixes, facts.credentials, delta=True)

    def _claim(self, body: Body, netbox_cluster: str) -> None:
        """Raises unless this Cluster holds `netbox_cluster` in the claims record (see claims.py)."""
        this = Holder.of(body)

        def change(current: Claims | None) -> Claims:
            held = current is not None and (claim := current.clusters.get(netbox_cluster)) and claim.holder == this
            # Held already: no other Cluster's say matters, and nothing needs listing.
            asking = {netbox_cluster: [asker(body, netbox_cluster)]} if held else self._asking()
            return record(current, netbox_cluster, this, asking)

        claim = (self.claims.update(change) or Claims()).clusters.get(netbox_cluster) or Claim()
        if claim.holder == this:
            return
        if claim.disputed:
            raise BadInputError(
                "NetBoxClusterDisputed",
                f"Clusters {', '.join(map(str, claim.disputed))} each say they imported NetBox cluster "
                f"{netbox_cluster!r}; nothing was written until all but one stop asking for it",
                retry=False,
            )
        raise BadInputError(
            "NetBoxClusterTaken",
            f"NetBox cluster {netbox_cluster!r} is imported by Cluster {claim.holder}; nothing was written "
            "(one machine must not become two BareMetalHosts)",
            retry=False,
        )

    def _asking(self) -> dict[str, list[Asker]]:
        """Every live Cluster that asks for a NetBox cluster it may import, by that NetBox cluster."""
        asking: dict[str, list[Asker]] = {}
        namespaces: list[str | None] = [*self.settings.namespaces] or [None]
        for namespace in namespaces:
            for cluster in self.kube.list(CAPI_CLUSTER, namespace):
                wanted = asked_netbox_cluster(cluster)
                metadata = cluster["metadata"]
                if (
                    wanted is not None
                    and not metadata.get("deletionTimestamp")
                    and self.settings.may_import(metadata["namespace"], wanted)
                ):
                    asking.setdefault(wanted, []).append(asker(cluster, wanted))
        return asking

    def release(self, cluster: Body) -> None:
        """Give up what a deleted (or opted-out) Cluster held, for the record to say who holds what."""
        self.last_plans.forget(key_of(cluster))
        gone = Holder.of(cluster)
        self.claims.update(lambda current: released(current, gone))

    def refresh(self, body: Body, facts: Facts) -> Facts:
        """The last NetBox reads with the credentials read again (a rotated Secret is picked up)."""
        return Facts(
            facts.netbox_cluster, facts.inventory, facts.boot, facts.prefixes, self._credentials(body), facts.delta
        )

    def _credentials(self, body: Body) -> BMCCredentials | CredentialsProblem:
        named = (body["metadata"].get("annotations") or {}).get(CREDENTIALS_ANNOTATION)
        (credentials,) = credentials_for(
            self.kube,
            [(body["metadata"]["namespace"], named or None)],
            self.settings.default_bmc_credentials,
            f"{CREDENTIALS_ANNOTATION} annotation",
            opt_in=self.settings.credentials_opt_in,
        )
        return credentials

    def plan(self, body: Body, facts: Facts) -> Plan:
        planned = plan(body, facts.inventory, facts.boot, facts.credentials, self.settings, facts.prefixes)
        planned.delta = facts.delta
        return planned

    def converge(self, body: Body, planned: Plan) -> ConvergeResult:
        key = key_of(body)
        scope = self.last_plans.scope(key, planned.hosts, delta=planned.delta)
        result = Converger(
            self.kube,
            Owner(*key, FIELD_MANAGER),
            self.settings.label_prefix,
            keep_certificate_verification=self.settings.disable_certificate_verification is None,
        ).converge(planned, prune_policy(body["metadata"].get("annotations") or {}), scope)
        self.last_plans.record(key, planned.hosts, result)
        return result

    def report(self, body: Body, facts: Facts, planned: Plan, result: ConvergeResult) -> str:
        summary = sync_summary(facts.netbox_cluster, len(facts.inventory.devices), planned, result)
        self._annotate(body, summary)
        post_events(self.kube, body, convergence_events(result, planned.problems, planned.notes, WORDS))
        return json.dumps(summary["counts"])

    def report_failure(self, body: Body, decision: Decision) -> None:
        """The annotation and a Warning Event, each tried on its own: an admission policy that refuses
        the annotation must not also silence the Event."""
        self.last_plans.forget(key_of(body))
        failed: dict[str, Any] = {"error": decision.reason, "message": decision.message}
        previous = imported_netbox_cluster(body)
        if previous is not None:
            # Still this Cluster's hosts: a failed pass (NetBox down) must not hand them to another Cluster.
            failed["netboxCluster"] = previous
        try:
            self._annotate(body, failed)
        finally:
            post_event(self.kube, body, "Warning", decision.reason, decision.message)

    def _annotate(self, body: Body, summary: Mapping[str, Any]) -> None:
        summary = {"lastSyncTime": now().isoformat().replace("+00:00", "Z"), **summary}
        namespace, name = key_of(body)
        annotations = {SYNC_STATUS_ANNOTATION: json.dumps(summary, separators=(",", ":"))}
        self.kube.apply(CAPI_CLUSTER, {"metadata": {"name": name, "namespace": namespace, "annotations": annotations}})


def prune_policy(annotations: Mapping[str, str]) -> PrunePolicy:
    cap = annotations.get(MAX_PRUNE_ANNOTATION, "")
    return PrunePolicy(
        enabled=annotations.get(PRUNE_ANNOTATION, "").lower() == "true",
        cap=int(cap) if cap.isdigit() else None,
    )


def sync_summary(netbox_cluster: str, devices: int, the_plan: Plan, result: ConvergeResult) -> dict[str, Any]:
    problems: list[DeviceProblem] = [*the_plan.problems, *result.failed, *result.drifted, *the_plan.notes]
    summary: dict[str, Any] = {
        "netboxCluster": netbox_cluster,
        "counts": {
            "devices": devices,
            "created": len(result.created),
            "updated": len(result.updated),
            "adopted": len(result.adopted),
            "unchanged": result.unchanged,
            "pruned": len(result.pruned),
            "pruneHeldBack": len(result.held_back),
            "drifted": len(result.drifted),
            "skipped": len(the_plan.problems),
            "failed": len(result.failed),
            "warnings": len(the_plan.notes),
        },
        "problems": [f"{p.device}: {p.reason}: {p.message}" for p in problems[:SUMMARY_PROBLEMS]],
    }
    if result.held_back:
        summary["pruneHeldBack"] = f"{short_list(result.held_back)}: {result.held_back_reason}"
    return summary


def opted_out(event_type: str | None, cluster: Body) -> bool:
    """Deleted, or no longer asking for NetBox hosts: its passes end (its hosts stay)."""
    return event_type == "DELETED" or netbox_selector(cluster) is None


class ClusterPasses(QueuedPasses[Facts, Plan, ConvergeResult]):
    """The Clusters' passes from the work queue; a paused Cluster is left alone until its next resync."""

    def run_pass(self, body: Body, *, resync: bool, changes: ChangeSet | None) -> float:
        if is_paused(body):
            self.logger.debug("Cluster %s/%s is paused: left alone", *key_of(body))
            return self.runner.resync_seconds
        return super().run_pass(body, resync=resync, changes=changes)


class Reconciler:
    """Which Clusters get a pass: those that ask for NetBox hosts, when one of their inputs changes, and
    at their resync or retry (the work queue)."""

    def __init__(self, settings: Metal3Settings, netbox: NetBox, kube: Kube, queue: WorkQueue) -> None:
        self.steps = steps = ClusterSteps(settings, netbox, kube)
        runner = PassRunner.from_settings(
            steps, settings, kube.controller, Tracking(Facts.refs, steps.refresh, steps.patch)
        )
        self.passes = ClusterPasses(runner, queue, fingerprint, log, gone=opted_out)

    def on_event(self, event_type: str | None, body: Body) -> None:
        """Every watch event of a Cluster."""
        gone = self.passes.observe(event_type, body)
        if gone is not None:
            self._hand_on(gone)

    def _hand_on(self, gone: Body) -> None:
        """A Cluster that asked for the NetBox cluster the gone one had gets a pass, now that the record
        no longer names the gone one."""
        try:
            self.steps.release(gone)
        except (ApiException, HTTPError) as error:
            # Only tidiness is lost: a holder that no longer exists is passed over when another asks.
            log.warning("claims of Cluster %s/%s not released: %s", *key_of(gone), brief(error))
        wanted = asked_netbox_cluster(gone)
        if wanted is None:
            return
        for key in self.passes.known():
            body = self.passes.body(key)
            if body is not None and asked_netbox_cluster(body) == wanted:
                self.passes.request(key)
