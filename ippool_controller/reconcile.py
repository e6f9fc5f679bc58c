"""The steps of an IPPoolImport's pass (read NetBox, plan, converge, report) for the shared skeleton,
and the delete path."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Final

from argora_common import crds
from argora_common.changes import PREFIX, SITE, ChangeSet, Interest
from argora_common.crds import MAX_PROBLEMS, IPPoolImportCounts, IPPoolImportSpec, IPPoolImportStatus
from argora_common.errors import Decision
from argora_common.kinds import GLOBAL_POOL
from argora_common.kube import Kube, Owner, argora_kind
from argora_common.netbox import NetBox
from argora_common.passes import Body, ControllerSteps, Log, PassRunner, Tracking
from argora_common.prefixes import PrefixSelection, read_prefixes
from argora_common.status import (
    Event,
    make_condition,
    merge_conditions,
    now,
    reason_summary,
    report_counted,
    report_failure,
    short_list,
)
from ippool_controller.apply import PoolConverger, PoolResult, allocations
from ippool_controller.delta import patch_selection
from ippool_controller.desired import FIELD_MANAGER, Plan, plan
from ippool_controller.settings import IPPoolSettings

IPPOOL_IMPORT: Final = argora_kind(crds.IPPOOL_IMPORT)
# Any prefix may come to match a selector (a new one, a role or status changed), and so may the prefixes
# of a site moved into a selector's region, though none of them was selected before.
INTEREST: Final = Interest(frozenset({PREFIX, SITE}), everyone=frozenset({PREFIX, SITE}))


def owner_of(body: Body) -> Owner:
    return Owner(body["metadata"]["namespace"], body["metadata"]["name"], FIELD_MANAGER)


def spec_of(body: Body) -> IPPoolImportSpec:
    return IPPoolImportSpec.model_validate(body.get("spec") or {})


@dataclass
class Facts:
    spec: IPPoolImportSpec
    selection: PrefixSelection


def unmatched_message(index: int, selection: PrefixSelection) -> str:
    error = selection.selector_errors.get(index)
    return f"spec.ippools[{index}] matched no NetBox prefix" + (f": {error}" if error else "")


class IPPoolSteps(ControllerSteps[IPPoolSettings]):
    """read -> plan -> converge -> report of one IPPoolImport."""

    kind = IPPOOL_IMPORT.kind
    kept = "existing pools are left as they are"

    def read(self, body: Body) -> Facts:
        spec = spec_of(body)
        return Facts(spec, read_prefixes(self.netbox, spec.ippools))

    def patch(self, body: Body, facts: Facts, changes: ChangeSet) -> Facts | None:
        """The last read with the prefixes `changes` name read again; None: read NetBox whole.

        The pass then plans and converges every pool, as a full one: for 500 pools that took 40-50 ms of
        plan and 100-130 ms of converge (two lists, no write) against a real API server on a loaded 2-core
        machine, and which prefix gets which pool name or address range depends on all of them."""
        selection = patch_selection(self.netbox, facts.selection, facts.spec.ippools, changes)
        return None if selection is None else Facts(facts.spec, selection)

    def plan(self, body: Body, facts: Facts) -> Plan:
        return plan(
            facts.selection, facts.spec, owner_of(body), self.settings.label_prefix, self.settings.gateway_custom_field
        )

    def converge(self, body: Body, planned: Plan) -> PoolResult:
        spec = spec_of(body)
        converger = PoolConverger(self.kube, owner_of(body), spec, self.settings.label_prefix)
        return converger.converge(planned)

    def report(self, body: Body, facts: Facts, planned: Plan, result: PoolResult) -> str:
        status = import_status(body, facts, planned, result)
        return report_counted(
            self.kube, IPPOOL_IMPORT, body, status, status.counts, import_events(facts, planned, result)
        )

    def report_failure(self, body: Body, decision: Decision) -> None:
        report_failure(self.kube, IPPOOL_IMPORT, body, IPPoolImportStatus, decision)


def import_status(body: Body, facts: Facts, planned: Plan, result: PoolResult) -> IPPoolImportStatus:
    previous = IPPoolImportStatus.model_validate(body.get("status") or {})
    problems = sorted(
        [*planned.problems, *result.unplaced, *result.failed, *result.in_use], key=lambda p: (p.prefix, p.reason)
    )
    counts = IPPoolImportCounts(
        prefixes=len(facts.selection.prefix_ids),
        created=len(result.created),
        updated=len(result.updated),
        adopted=len(result.adopted),
        unchanged=result.unchanged,
        pruned=len(result.pruned),
        prune_held_back=len(result.held_back),
        in_use=len(result.in_use),
        skipped=len(planned.problems) + len(result.unplaced),
        failed=len(result.failed),
    )
    unmatched = [unmatched_message(index, facts.selection) for index in planned.unmatched_selectors]
    generation = body["metadata"].get("generation")
    condition = partial(make_condition, generation=generation)
    bad = counts.skipped + counts.failed
    conditions = merge_conditions(previous.conditions, [
        condition("Ready", True, "Synced" if not bad else "SyncedWithProblems",
                  f"{counts.prefixes} prefixes, {bad} with problems" if bad else f"{counts.prefixes} prefixes"),
        condition("NetBoxReachable", True, "Read"),
        condition("PrefixesSynced", not bad, "AllSynced" if not bad else "PrefixesWithProblems",
                  f"{counts.skipped} skipped, {counts.failed} failed: see status.problems" if bad else ""),
        condition("SelectorsMatched", not unmatched, "AllMatched" if not unmatched else "NoPrefixMatched",
                  "; ".join(unmatched)),
        condition("PoolsInSync", not result.in_use, "InSync" if not result.in_use else "InUse",
                  f"{len(result.in_use)} pools in use differ from NetBox: see status.problems"
                  if result.in_use else ""),
        condition("PruneComplete", not result.held_back, "Complete" if not result.held_back else "HeldBack",
                  f"{len(result.held_back)} pools kept: {result.held_back_reason}" if result.held_back else ""),
    ])  # fmt: skip
    return IPPoolImportStatus(
        state="Ready",
        observed_generation=generation,
        conditions=conditions,
        last_sync_time=now(),
        counts=counts,
        problems=problems[:MAX_PROBLEMS],
    )


def import_events(facts: Facts, planned: Plan, result: PoolResult) -> list[Event]:
    events: list[Event] = []
    for names, reason, template in (
        (result.created, "Created", "GlobalInClusterIPPool {names}"),
        (result.updated, "Updated", "GlobalInClusterIPPool {names}"),
        (result.adopted, "Adopted", "took over the original operator's GlobalInClusterIPPool {names}"),
        (result.pruned, "Pruned", "deleted GlobalInClusterIPPool {names}"),
    ):
        if names:
            events.append(Event("Normal", reason, template.format(names=short_list(names))))
    if result.held_back:
        events.append(
            Event("Warning", "PruneHeldBack", f"kept {short_list(result.held_back)}: {result.held_back_reason}")
        )
    if result.in_use:
        pools = short_list([problem.pool for problem in result.in_use])
        events.append(Event("Warning", "InUse", f"NetBox changed the prefix of {pools}, which hand out addresses"))
    problems = [*planned.problems, *result.unplaced, *result.failed]
    if problems:
        events.append(Event("Warning", "PrefixesSkipped", reason_summary(problems, "prefixes")))
    for index in planned.unmatched_selectors:
        events.append(Event("Warning", "NoPrefixMatched", unmatched_message(index, facts.selection)))
    return events


class Reconciler:
    """What the handlers of one argora-ippool process call."""

    def __init__(self, settings: IPPoolSettings, netbox: NetBox, kube: Kube) -> None:
        self.kube = kube
        self.steps = IPPoolSteps(settings, netbox, kube)
        # Everything a pass reads is NetBox's: a resync reuses it as it is.
        tracking = Tracking[Facts](
            touched=lambda facts: facts.selection.refs(), refresh=lambda _body, facts: facts, patch=self.steps.patch
        )
        self.passes = PassRunner.from_settings(self.steps, settings, kube.controller, tracking)

    def delete(self, body: Body, logger: Log) -> None:
        owner = owner_of(body)
        spec = spec_of(body)

        def remove() -> str:
            if spec.deletion_policy == "Orphan":
                return "deletionPolicy Orphan: the pools are left in place"
            in_use = allocations(self.kube)
            deleted, kept = [], []
            for pool in self.kube.list(GLOBAL_POOL, label_selector=owner.selector()):
                name = pool["metadata"]["name"]
                if in_use[name]:
                    kept.append(name)
                elif self.kube.delete(GLOBAL_POOL, name, uid=pool["metadata"]["uid"]):
                    deleted.append(name)
            message = f"deletionPolicy Delete: deleted {len(deleted)} pools"
            return message + (f", kept {short_list(kept)} (addresses allocated)" if kept else "")

        self.passes.delete(body, logger, remove)
