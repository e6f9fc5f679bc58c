"""Converge the GlobalInClusterIPPools of one IPPoolImport to its plan: server-side apply what differs,
never change or delete a pool that addresses are allocated from, prune with guards."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from argora_common.apiserver import api_message, is_transient
from argora_common.converge import delete_counted, taken_by_another, write_counted
from argora_common.crds import IPPoolImportSpec, PrefixProblem
from argora_common.kinds import GLOBAL_POOL
from argora_common.kube import Kube, Owner, WriteOutcome, is_ignored
from argora_common.prune import OwnedObject, decide_prune
from ippool_controller.desired import IP_ADDRESS, DesiredPool, Plan
from ippool_controller.placement import resolve


@dataclass
class PoolResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # the original Argora operator's pools, taken over
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)
    held_back_reason: str = ""
    in_use: list[PrefixProblem] = field(default_factory=list)  # NetBox moved the prefix of a pool in use
    # Prefixes `resolve` gave no pool: PrefixInOtherPool, or NameCollision on the name they would share.
    unplaced: list[PrefixProblem] = field(default_factory=list)
    failed: list[PrefixProblem] = field(default_factory=list)


def allocations(kube: Kube) -> Counter[str]:
    """How many IPAddresses each GlobalInClusterIPPool has handed out, by pool name."""
    counts: Counter[str] = Counter()
    for address in kube.list(IP_ADDRESS):
        ref = (address.get("spec") or {}).get("poolRef") or {}
        if ref.get("kind") == GLOBAL_POOL.kind and ref.get("apiGroup", GLOBAL_POOL.group) == GLOBAL_POOL.group:
            counts[ref.get("name", "")] += 1
    return counts


def _network(pool: Mapping[str, Any]) -> tuple[Any, Any]:
    spec = pool.get("spec") or {}
    return spec.get("addresses"), spec.get("prefix")


class PoolConverger:
    """One pass over one IPPoolImport's pools."""

    def __init__(self, kube: Kube, owner: Owner, spec: IPPoolImportSpec, label_prefix: str) -> None:
        self.kube = kube
        self.owner = owner
        self.spec = spec
        self.prefix_id_label = f"{label_prefix}/prefix-id"
        self.result = PoolResult()

    def converge(self, plan: Plan) -> PoolResult:
        live = {pool["metadata"]["name"]: pool for pool in self.kube.list(GLOBAL_POOL)}
        in_use = allocations(self.kube)
        resolution = resolve(plan.pools, live.values(), self.owner, self.prefix_id_label)
        self.result.unplaced = resolution.problems
        for desired in resolution.pools:
            try:
                self._converge_pool(desired, live.get(desired.name), in_use[desired.name])
            except ApiException as error:
                # The API server refusing one pool is that prefix's problem; the others go on.
                if is_transient(error):
                    raise
                self._fail(desired, "Rejected", f"the API server refused it: HTTP {error.status} {api_message(error)}")
        self._prune(plan, resolution.pools, live, in_use)
        return self.result

    def _fail(self, desired: DesiredPool, reason: str, message: str) -> None:
        self.result.failed.append(
            PrefixProblem(
                prefix=desired.prefix, prefix_id=desired.prefix_id, pool=desired.name, reason=reason, message=message
            )
        )

    def _converge_pool(self, desired: DesiredPool, live: dict[str, Any] | None, allocated: int) -> None:
        if is_ignored(live):
            self.result.unchanged += 1
            return
        taken = taken_by_another(self.owner, GLOBAL_POOL, live, adopt=desired.adopt)
        if taken:
            self._fail(desired, "NameTaken", taken)
            return
        body = desired.body
        if live is not None and allocated and _network(live) != _network(desired.body):
            # The provider would hand out addresses of the new network next to the allocated old ones:
            # keep the pool as it is (labels aside) and report, someone must move the machines first.
            body = copy.deepcopy(desired.body)
            body["spec"] = copy.deepcopy(live.get("spec") or {})
            addresses, prefix = _network(live)
            self.result.in_use.append(
                PrefixProblem(
                    prefix=desired.prefix,
                    prefix_id=desired.prefix_id,
                    pool=desired.name,
                    reason="InUse",
                    message=f"NetBox has {desired.prefix}, the pool has {addresses} /{prefix} with {allocated} "
                    "addresses allocated: not changed until they are released",
                )
            )
        outcome = write_counted(self.kube, GLOBAL_POOL, body, live)
        if desired.adopt:
            self.result.adopted.append(desired.name)
        elif outcome is WriteOutcome.UNCHANGED:
            self.result.unchanged += 1
        else:
            (self.result.created if outcome is WriteOutcome.CREATED else self.result.updated).append(desired.name)

    def _prune(
        self, plan: Plan, placed: list[DesiredPool], live: Mapping[str, dict[str, Any]], in_use: Counter[str]
    ) -> None:
        owned = [
            OwnedObject.of(GLOBAL_POOL, pool, self.prefix_id_label)
            for name, pool in live.items()
            if self.owner.owns(pool) and not is_ignored(pool)
        ]
        decision = decide_prune(
            owned,
            # The names `resolve` placed the pools under: an adopted pool keeps the original's name.
            desired_names={pool.name for pool in placed},
            selected_device_ids=plan.selected_prefix_ids,
            named_device_ids={pool.prefix_id for pool in placed},
            enabled=self.spec.prune and not plan.prune_blocked,
            disabled_reason=plan.prune_blocked or "pruning is off (spec.prune: false)",
            cap=self.spec.max_prune_per_pass,
        )
        # A pool with addresses allocated stays: deleting it would orphan the machines' addresses.
        busy = [obj.name for obj in decision.delete if in_use[obj.name]]
        for obj in decision.delete:
            if not in_use[obj.name] and delete_counted(self.kube, GLOBAL_POOL, obj.name, uid=obj.uid):
                self.result.pruned.append(obj.name)
        self.result.held_back = [*busy, *(obj.name for obj in decision.held_back)]
        reasons = [f"{len(busy)} with addresses allocated"] if busy else []
        if decision.reason:
            reasons.append(decision.reason)
        self.result.held_back_reason = "; ".join(reasons)
