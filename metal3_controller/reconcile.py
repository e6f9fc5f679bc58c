"""One pass over one Cluster API Cluster: read NetBox, plan, converge, report on the Cluster.

The Cluster belongs to Cluster API: we never write its spec or status, only our one annotation
(`argora.cloud.sap/sync-status`) by server-side apply, and we put no finalizer on it. Results are
visible there and as Events on the Cluster.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from argora_common.backoff import Backoff
from argora_common.converge import ConvergeResult
from argora_common.crds import DeviceProblem
from argora_common.credentials import BMCCredentials, CredentialsError, read_credentials
from argora_common.inventory import read_boot_interfaces, read_inventory
from argora_common.kube import SYNC_ANNOTATION, Kube, Owner, api_message, is_transient, now, post_event
from argora_common.metrics import RECONCILE_SECONDS
from argora_common.netbox import PREFIXES, NetBox, NetBoxError
from argora_common.status import reason_summary, short_list
from metal3_controller.apply import Converger, PrunePolicy
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
    is_paused,
    netbox_selector,
    plan,
)
from metal3_controller.settings import Metal3Settings

type Log = logging.Logger | logging.LoggerAdapter[Any]
type ClusterKey = tuple[str, str]

DEVICE_STATUSES: Final = ("active",)
SUMMARY_PROBLEMS: Final = 10
# The inputs of a pass; anything else changing on a Cluster (our own annotation, CAPI's status)
# is no reason for another one.
WATCHED_ANNOTATIONS: Final = (
    NETBOX_CLUSTER_ANNOTATION, CREDENTIALS_ANNOTATION, PRUNE_ANNOTATION, MAX_PRUNE_ANNOTATION, PAUSED_ANNOTATION,
    SYNC_ANNOTATION,
)  # fmt: skip


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
class Tracked:
    """What we remember of a Cluster between passes."""

    body: dict[str, Any]
    fingerprint: str = ""
    due: float = 0.0


class Reconciler:
    def __init__(self, settings: Metal3Settings, netbox: NetBox, kube: Kube) -> None:
        self.settings = settings
        self.netbox = netbox
        self.kube = kube
        self.clusters: dict[ClusterKey, Tracked] = {}
        self.clusters_lock = threading.Lock()
        self.locks: defaultdict[ClusterKey, threading.Lock] = defaultdict(threading.Lock)
        self.backoff: Backoff[ClusterKey] = Backoff.from_settings(settings)

    # ---- which Clusters, and when ----------------------------------------------------------------

    def on_event(self, event_type: str | None, body: Mapping[str, Any], logger: Log) -> None:
        """Every watch event of a Cluster: track opted-in ones, sync when an input changed."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if event_type == "DELETED" or netbox_selector(body) is None:
            with self.clusters_lock:
                self.clusters.pop(key, None)
                self.backoff.reset(key)
            return
        with self.clusters_lock:
            tracked = self.clusters.setdefault(key, Tracked(dict(body)))
            tracked.body = dict(body)
            changed = tracked.fingerprint != fingerprint(body)
        if changed:
            self.sync(key, logger)

    def resync_due(self, logger: Log) -> None:
        """Called periodically: a pass for every tracked Cluster whose resync (or retry) is due."""
        with self.clusters_lock:
            due = [key for key, tracked in self.clusters.items() if tracked.due <= time.monotonic()]
        for key in due:
            self.sync(key, logger, wait=False)

    def sync(self, key: ClusterKey, logger: Log, *, wait: bool = True) -> None:
        lock = self.locks[key]
        if not lock.acquire(blocking=wait):
            return
        try:
            with self.clusters_lock:
                tracked = self.clusters.get(key)
            if tracked is None:
                return
            body = tracked.body
            tracked.fingerprint = fingerprint(body)
            if is_paused(body):
                logger.debug("Cluster %s/%s is paused: left alone", *key)
                tracked.due = time.monotonic() + self.settings.resync_interval_seconds
                return
            with RECONCILE_SECONDS.labels(controller="metal3", kind="Cluster").time():
                ok = self._contained(body, logger)
            self._schedule(key, tracked, ok)
        finally:
            lock.release()

    def _schedule(self, key: ClusterKey, tracked: Tracked, ok: bool) -> None:
        """The next pass: a resync interval after a success, the growing retry delay after a failure."""
        with self.clusters_lock:
            if self.clusters.get(key) is not tracked:
                return  # deleted or opted out during the pass: nothing to schedule, nothing to remember
            if ok:
                self.backoff.reset(key)
                delay = self.settings.resync_interval_seconds
            else:
                delay = self.backoff.failed(key)
            tracked.due = time.monotonic() + delay

    # ---- one pass ---------------------------------------------------------------------------------

    def _contained(self, cluster: dict[str, Any], logger: Log) -> bool:
        """One pass that never raises: True when it completed, else its failure is reported on the Cluster.

        Whatever one Cluster's pass raises must neither stop the resync of the others nor be retried
        before its delay."""
        try:
            self._sync(cluster, logger)
        except Exception as error:
            self._failed(cluster, error, logger)
            return False
        return True

    def _sync(self, cluster: dict[str, Any], logger: Log) -> None:
        """A pass to its end (with or without device problems), or an exception: nothing is written
        after a failed NetBox read."""
        selector = netbox_selector(cluster)
        assert selector is not None
        namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        wanted = f"name {selector.name!r}" + (f" and type {selector.type!r}" if selector.type else "")
        inventory = read_inventory(self.netbox, [selector], DEVICE_STATUSES)
        matched = inventory.clusters_by_selector[0]
        if len(matched) != 1:
            reason = "NoNetBoxCluster" if not matched else "AmbiguousNetBoxCluster"
            message = f"{len(matched)} NetBox clusters with {wanted}; nothing was written"
            self._report(cluster, {"error": reason, "message": message}, "Warning", reason, message)
            return
        devices = [selected.device for selected in inventory.devices]
        boot = read_boot_interfaces(self.netbox, devices)
        prefixes = (
            self.netbox.list_by_ids(PREFIXES, "site_id", {device.site.id for device in devices})
            if self.settings.network_data
            else []
        )
        the_plan = plan(cluster, inventory, boot, self._credentials(cluster), self.settings, prefixes)
        annotations = cluster["metadata"].get("annotations") or {}
        result = Converger(
            self.kube,
            Owner(namespace, name, FIELD_MANAGER),
            self.settings.label_prefix,
            keep_certificate_verification=self.settings.disable_certificate_verification is None,
        ).converge(the_plan, self._prune_policy(annotations))
        summary = self._summary(matched[0].name, len(inventory.devices), the_plan, result)
        self._report(cluster, summary, None, "", "")
        self._post_events(cluster, the_plan, result)
        logger.info("Cluster %s/%s synced: %s", namespace, name, json.dumps(summary["counts"]))

    def _failed(self, cluster: Mapping[str, Any], error: Exception, logger: Log) -> None:
        """Say on the Cluster why its pass did not complete; one log line, a traceback only for a bug."""
        namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        if _kube_unavailable(error):
            # Nothing can be reported while the API server is away; the retry will tell.
            logger.warning("Kubernetes API unavailable for Cluster %s/%s: %s", namespace, name, _brief(error))
            return
        reason, message = _failure(error)
        unreported = self._report_failure(cluster, reason, message)
        # An unknown error is a bug: its traceback, once per attempt, which the growing delay keeps rare.
        log = logger.warning if isinstance(error, NetBoxError | ApiException) else logger.exception
        suffix = f" ({unreported})" if unreported else ""
        log("Cluster %s/%s not synced, %s: %s%s", namespace, name, reason, message, suffix)

    def _report_failure(self, cluster: Mapping[str, Any], reason: str, message: str) -> str:
        """The annotation and a Warning Event, each tried on its own; what could not be written, or ''."""
        unreported = []
        try:
            self._report(cluster, {"error": reason, "message": message}, None, "", "")
        except Exception as error:
            unreported.append(f"sync-status not written: {_brief(error)}")
        try:
            post_event(self.kube, cluster, "Warning", reason, message)
        except Exception as error:
            unreported.append(f"Event not posted: {_brief(error)}")
        return "; ".join(unreported)

    def _credentials(self, cluster: Mapping[str, Any]) -> BMCCredentials | str:
        named = (cluster["metadata"].get("annotations") or {}).get(CREDENTIALS_ANNOTATION)
        if named:
            key = (cluster["metadata"]["namespace"], named)
        elif self.settings.default_bmc_credentials is not None:
            key = (self.settings.default_bmc_credentials.namespace, self.settings.default_bmc_credentials.name)
        else:
            return f"no {CREDENTIALS_ANNOTATION} annotation and no default (ARGORA_DEFAULT_BMC_CREDENTIALS)"
        try:
            return read_credentials(self.kube, *key)
        except CredentialsError as error:
            return str(error)

    @staticmethod
    def _prune_policy(annotations: Mapping[str, str]) -> PrunePolicy:
        cap = annotations.get(MAX_PRUNE_ANNOTATION, "")
        return PrunePolicy(
            enabled=annotations.get(PRUNE_ANNOTATION, "").lower() == "true",
            cap=int(cap) if cap.isdigit() else None,
        )

    @staticmethod
    def _summary(netbox_cluster: str, devices: int, the_plan: Plan, result: ConvergeResult) -> dict[str, Any]:
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

    def _report(
        self, cluster: Mapping[str, Any], summary: dict[str, Any], event_type: str | None, reason: str, message: str
    ) -> None:
        summary = {"lastSyncTime": now().isoformat().replace("+00:00", "Z"), **summary}
        body = {
            "metadata": {
                "name": cluster["metadata"]["name"],
                "namespace": cluster["metadata"]["namespace"],
                "annotations": {SYNC_STATUS_ANNOTATION: json.dumps(summary, separators=(",", ":"))},
            }
        }
        self.kube.apply(CAPI_CLUSTER, body)
        if event_type:
            post_event(self.kube, cluster, event_type, reason, message)

    def _post_events(self, cluster: Mapping[str, Any], the_plan: Plan, result: ConvergeResult) -> None:
        def event(event_type: str, reason: str, message: str) -> None:
            post_event(self.kube, cluster, event_type, reason, message)

        if result.created:
            event("Normal", "Registered", f"BareMetalHosts {short_list(result.created)}")
        if result.updated:
            event("Normal", "Updated", f"BareMetalHosts {short_list(result.updated)}")
        if result.adopted:
            event("Normal", "Adopted", f"took over the original operator's BareMetalHosts {short_list(result.adopted)}")
        if result.pruned:
            event("Normal", "Pruned", f"deleted BareMetalHosts {short_list(result.pruned)}")
        if result.held_back:
            event(
                "Warning", "DevicesLeft",
                f"{short_list(result.held_back)} left the NetBox cluster; kept: {result.held_back_reason}",
            )  # fmt: skip
        if result.drifted:
            devices = [problem.device for problem in result.drifted]
            event(
                "Warning", "RegistrationDrift",
                f"NetBox differs from registered fields of {short_list(devices)}; not forced",
            )  # fmt: skip
        problems = [*the_plan.problems, *result.failed]
        if problems:
            event("Warning", "DevicesSkipped", reason_summary(problems))
        if the_plan.notes:
            event("Warning", "DevicesIncomplete", reason_summary(the_plan.notes))


def _kube_unavailable(error: Exception) -> bool:
    """The API server could not be reached or answered 408/429/5xx: worth retrying, nothing to report."""
    return isinstance(error, HTTPError) or (isinstance(error, ApiException) and is_transient(error))


def _failure(error: Exception) -> tuple[str, str]:
    """Reason and message of a failed pass, for the sync-status annotation and the Event."""
    if isinstance(error, NetBoxError):
        return "NetBoxUnavailable", f"{error}; existing hosts are left as they are"
    if isinstance(error, ApiException):
        return "KubernetesRejected", f"the Kubernetes API refused a request: HTTP {error.status}: {api_message(error)}"
    return "InternalError", f"{type(error).__name__}: {error}"


def _brief(error: Exception) -> str:
    return f"HTTP {error.status}" if isinstance(error, ApiException) else f"{type(error).__name__}: {error}"
