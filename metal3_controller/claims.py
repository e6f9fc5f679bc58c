"""Which Cluster API Cluster has which NetBox cluster, kept where only argora-metal3 writes.

BareMetalHosts are namespaced: two Clusters asking for one NetBox cluster would register every machine
twice, each host driving the same BMC, so one Cluster holds each NetBox cluster. The holder is recorded
in a ConfigMap in the operator's own namespace (`ARGORA_OWN_NAMESPACE`), not on the Clusters: whoever
may annotate a Cluster could otherwise forge the record and take another tenant's machines.

A recorded holder keeps the NetBox cluster while it exists (same uid) and asks for it. An unrecorded
NetBox cluster goes to the oldest Cluster asking for it (the API server sets creationTimestamp; nobody
can forge it). Once, when there is no record yet (the upgrade from an operator that kept the claim on
the Cluster), the Cluster whose sync-status says it imported the NetBox cluster keeps it; where several
say so, none is trusted and the NetBox cluster is disputed until all but one stop asking for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict, ValidationError

from argora_common.errors import BadInputError
from argora_common.kube import Kind, Kube
from metal3_controller.desired import imported_netbox_cluster

CONFIG_MAP: Final = Kind("", "v1", "ConfigMap", "configmaps", namespaced=True)
CLAIMS_CONFIG_MAP: Final = "argora-metal3-claims"
CLAIMS_KEY: Final = "claims.json"
WRITE_ATTEMPTS: Final = 3

type Body = Mapping[str, Any]


class Holder(BaseModel):
    """One Cluster, by namespace, name and uid: a Cluster deleted and created again is another one."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, cluster: Body) -> Holder:
        metadata = cluster["metadata"]
        return cls(namespace=metadata["namespace"], name=metadata["name"], uid=metadata.get("uid", ""))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Claim(BaseModel):
    holder: Holder | None = None
    disputed: list[Holder] = []


class Claims(BaseModel):
    """The ConfigMap's record: NetBox cluster name -> its claim."""

    clusters: dict[str, Claim] = {}


@dataclass(frozen=True)
class Asker:
    """A live Cluster asking for a NetBox cluster, with what decides between askers."""

    holder: Holder
    created: str
    says_imported: bool

    def order(self) -> tuple[str, str, str]:
        return (self.created, self.holder.namespace, self.holder.name)


def settle(claim: Claim | None, askers: Iterable[Asker], *, first_record: bool) -> Claim:
    """The claim on one NetBox cluster, given the live Clusters asking for it now (pure).

    `first_record`: no record exists yet, so the Clusters' own sync-status is the only evidence of who
    imported it (written by the operator before this record existed)."""
    live = {asker.holder: asker for asker in askers}
    if claim is not None and claim.holder is not None and claim.holder in live:
        return claim
    if claim is not None and claim.disputed:
        remaining = [holder for holder in claim.disputed if holder in live]
        if len(remaining) > 1:
            return Claim(disputed=remaining)
        if remaining:
            return Claim(holder=remaining[0])
    if not live:
        return Claim()
    if first_record:
        importers = sorted((asker for asker in live.values() if asker.says_imported), key=Asker.order)
        if len(importers) > 1:
            return Claim(disputed=[asker.holder for asker in importers])
        if importers:
            return Claim(holder=importers[0].holder)
    return Claim(holder=min(live.values(), key=Asker.order).holder)


def asker(cluster: Body, netbox_cluster: str) -> Asker:
    return Asker(
        Holder.of(cluster),
        cluster["metadata"].get("creationTimestamp") or "",
        imported_netbox_cluster(cluster) == netbox_cluster,
    )


def record(current: Claims | None, wanted: str, this: Holder, asking: Mapping[str, Iterable[Asker]]) -> Claims:
    """The record once Cluster `this` asks for NetBox cluster `wanted` (pure). `asking`: the live Clusters
    asking for each NetBox cluster, `this` among them; all of them for the first record, which settles
    every NetBox cluster asked for at once (the sync-status evidence is read only then)."""
    first_record = current is None
    # What `this` held under another name it no longer asks for.
    clusters = {
        name: claim
        for name, claim in (current.clusters if current else {}).items()
        if name == wanted or claim.holder != this
    }
    for name in {wanted, *asking} if first_record else {wanted}:
        clusters[name] = settle(clusters.get(name), asking.get(name, ()), first_record=first_record)
    return Claims(clusters={name: claim for name, claim in clusters.items() if claim.holder or claim.disputed})


def released(current: Claims | None, gone: Holder) -> Claims | None:
    """The record without what `gone` (deleted, or no longer asking) held; None when nothing changes."""
    if current is None or not any(claim.holder == gone for claim in current.clusters.values()):
        return None
    return Claims(clusters={name: claim for name, claim in current.clusters.items() if claim.holder != gone})


class ClaimStore:
    """Reads and writes the claims ConfigMap; a write that raced another (409) is done again on a fresh
    read. One lock per process: passes of several Clusters run at once."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._lock = threading.Lock()

    def read(self) -> tuple[Claims | None, str | None]:
        """The record and its resourceVersion; (None, None) when there is no ConfigMap yet."""
        found = self.kube.get(CONFIG_MAP, CLAIMS_CONFIG_MAP, self.namespace)
        if found is None:
            return None, None
        raw = (found.get("data") or {}).get(CLAIMS_KEY) or "{}"
        try:
            claims = Claims.model_validate_json(raw)
        except ValidationError as error:
            raise BadInputError(
                "ClaimsUnreadable",
                f"ConfigMap {self.namespace}/{CLAIMS_CONFIG_MAP} has no readable {CLAIMS_KEY}: "
                f"{error.error_count()} problems; nothing was written",
            ) from error
        return claims, found["metadata"].get("resourceVersion")

    def update(self, change: Callable[[Claims | None], Claims | None]) -> Claims | None:
        """Apply `change` to the record read now and write it if it differs (None: nothing to write)."""
        with self._lock:
            for _ in range(WRITE_ATTEMPTS - 1):
                try:
                    return self._update_once(change)
                except ApiException as error:
                    if error.status != 409:
                        raise
            return self._update_once(change)

    def _update_once(self, change: Callable[[Claims | None], Claims | None]) -> Claims | None:
        current, version = self.read()
        wanted = change(current)
        if wanted is None:
            return current
        if wanted != current:
            self._write(wanted, version)
        return wanted

    def _write(self, claims: Claims, version: str | None) -> None:
        data = {CLAIMS_KEY: json.dumps(claims.model_dump(exclude_defaults=True), indent=1, sort_keys=True)}
        metadata: dict[str, Any] = {"name": CLAIMS_CONFIG_MAP, "namespace": self.namespace}
        if version is None:
            self.kube.create(CONFIG_MAP, {"metadata": metadata, "data": data})
        else:
            # The resourceVersion makes the apply conditional: a record written since our read is a 409.
            self.kube.apply(CONFIG_MAP, {"metadata": {**metadata, "resourceVersion": version}, "data": data})
