"""The steps of a pass over one Cluster API Cluster for the shared skeleton (read NetBox, plan,
converge, report on the Cluster), and the scheduling of those passes.

The Cluster belongs to Cluster API: we never write its spec or status, only our one annotation
(`argora.cloud.sap/sync-status`) by server-side apply, and we put no finalizer on it. Results are
visible there and as Events on the Cluster. Passes run from raw watch events and from our own resync
thread, so whatever one Cluster's pass raises is contained by the skeleton and rescheduled here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, MAC_ADDRESS, PREFIX, SITE, Interest, Ref
from argora_common.converge import ConvergeResult
from argora_common.crds import DeviceProblem
from argora_common.credentials import BMCCredentials, CredentialsProblem, credentials_for
from argora_common.errors import BadInputError, Decision, brief
from argora_common.inventory import BootInterfaces, Inventory, read_boot_interfaces, read_inventory
from argora_common.kube import SYNC_ANNOTATION, Kube, Owner
from argora_common.netbox import NetBox
from argora_common.netbox_schema import PREFIXES, Prefix
from argora_common.passes import Body, Log, PassRunner, Tracking, key_of
from argora_common.status import EventWords, convergence_events, now, post_event, post_events, short_list
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

type ClusterKey = tuple[str, str]

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

    def refs(self) -> set[Ref]:
        return self.inventory.refs() | self.boot.refs() | {(PREFIX, prefix.id) for prefix in self.prefixes}


class ClusterSteps:
    """read -> plan -> converge -> report of one Cluster."""

    def __init__(self, settings: Metal3Settings, netbox: NetBox, kube: Kube) -> None:
        self.settings = settings
        self.netbox = netbox
        self.kube = kube
        self.claims = ClaimStore(kube, settings.own_namespace)

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
        prefixes = (
            self.netbox.list_by_ids(PREFIXES, "site_id", {device.site.id for device in devices})
            if self.settings.network_data
            else []
        )
        return Facts(matched[0].name, inventory, boot, prefixes, self._credentials(body))

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
        gone = Holder.of(cluster)
        self.claims.update(lambda current: released(current, gone))

    def refresh(self, body: Body, facts: Facts) -> Facts:
        """The last NetBox reads with the credentials read again (a rotated Secret is picked up)."""
        return Facts(facts.netbox_cluster, facts.inventory, facts.boot, facts.prefixes, self._credentials(body))

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
        return plan(body, facts.inventory, facts.boot, facts.credentials, self.settings, facts.prefixes)

    def converge(self, body: Body, planned: Plan) -> ConvergeResult:
        namespace, name = key_of(body)
        return Converger(
            self.kube,
            Owner(namespace, name, FIELD_MANAGER),
            self.settings.label_prefix,
            keep_certificate_verification=self.settings.disable_certificate_verification is None,
        ).converge(planned, prune_policy(body["metadata"].get("annotations") or {}))

    def report(self, body: Body, facts: Facts, planned: Plan, result: ConvergeResult) -> str:
        summary = sync_summary(facts.netbox_cluster, len(facts.inventory.devices), planned, result)
        self._annotate(body, summary)
        post_events(self.kube, body, convergence_events(result, planned.problems, planned.notes, WORDS))
        return json.dumps(summary["counts"])

    def report_failure(self, body: Body, decision: Decision) -> None:
        """The annotation and a Warning Event, each tried on its own: an admission policy that refuses
        the annotation must not also silence the Event."""
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


@dataclass
class Tracked:
    """What we remember of a Cluster between passes."""

    body: dict[str, Any]
    fingerprint: str = ""
    due: float = 0.0


class Reconciler:
    """Which Clusters get a pass, and when: on a change of their inputs and when their resync or retry
    is due (the resync thread calls `resync_due`)."""

    def __init__(self, settings: Metal3Settings, netbox: NetBox, kube: Kube) -> None:
        self.settings = settings
        self.clusters: dict[ClusterKey, Tracked] = {}
        self.clusters_lock = threading.Lock()
        self.steps = steps = ClusterSteps(settings, netbox, kube)
        self.passes = PassRunner.from_settings(
            steps,
            controller=kube.controller,
            kind="Cluster",
            settings=settings,
            kept="existing hosts are left as they are",
            tracking=Tracking(touched=Facts.refs, refresh=steps.refresh),
        )

    def on_event(self, event_type: str | None, body: Mapping[str, Any], logger: Log) -> None:
        """Every watch event of a Cluster: track opted-in ones, sync when an input changed."""
        key = key_of(body)
        if event_type == "DELETED" or netbox_selector(body) is None:
            with self.clusters_lock:
                gone = self.clusters.pop(key, None)
                self.passes.forget(key)
            if gone is not None:
                self._hand_on(gone.body, logger)
            return
        with self.clusters_lock:
            tracked = self.clusters.setdefault(key, Tracked(dict(body)))
            tracked.body = dict(body)
            changed = tracked.fingerprint != fingerprint(body)
        if changed:
            self.sync(key, logger)

    def _hand_on(self, gone: Body, logger: Log) -> None:
        """A Cluster that asked for the NetBox cluster the gone one had gets a pass at the next resync
        round, after the record no longer names the gone one."""
        try:
            self.steps.release(gone)
        except (ApiException, HTTPError) as error:
            # Only tidiness is lost: a holder that no longer exists is passed over when another asks.
            logger.warning("claims of Cluster %s/%s not released: %s", *key_of(gone), brief(error))
        wanted = asked_netbox_cluster(gone)
        with self.clusters_lock:
            for tracked in self.clusters.values():
                if wanted is not None and asked_netbox_cluster(tracked.body) == wanted:
                    tracked.due = 0.0

    def resync_due(self, logger: Log) -> None:
        """A pass for every tracked Cluster whose resync (or retry) is due."""
        with self.clusters_lock:
            due = [key for key, tracked in self.clusters.items() if tracked.due <= time.monotonic()]
        for key in due:
            self.sync(key, logger, wait=False, resync=True)

    def sync(self, key: ClusterKey, logger: Log, *, wait: bool = True, resync: bool = False) -> None:
        with self.clusters_lock:
            tracked = self.clusters.get(key)
        if tracked is None:
            return
        body = tracked.body
        tracked.fingerprint = fingerprint(body)
        if is_paused(body):
            logger.debug("Cluster %s/%s is paused: left alone", *key)
            self._schedule(key, tracked, self.settings.resync_interval_seconds)
            return
        outcome = self.passes.run(body, logger, wait=wait, resync=resync)
        if outcome is not None:
            self._schedule(key, tracked, self.settings.resync_interval_seconds if outcome.ok else outcome.delay)

    def _schedule(self, key: ClusterKey, tracked: Tracked, delay: float) -> None:
        with self.clusters_lock:
            if self.clusters.get(key) is not tracked:
                # Deleted or opted out during the pass: nothing to schedule, nothing to remember.
                self.passes.forget(key)
                return
            tracked.due = time.monotonic() + delay
