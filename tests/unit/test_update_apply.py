"""The apply step's decisions that need no NetBox: the delete cap and the reported order (in a dry run,
which writes and re-reads nothing); the versions its deletes name, and what a pass NetBox failed in the
middle of its writes reports (against a stand-in for NetBox)."""

from collections.abc import Iterable, Mapping
from typing import Any, cast

import pytest

from argora_common.crds import UpdateSpec
from argora_common.errors import Decision, FailureKind
from argora_common.netbox import NetBox, NetBoxUnavailableError
from argora_common.netbox_schema import Endpoint, Ref
from update_controller.apply import (
    RECHECK_INTERFACES,
    Applier,
    ApplyResult,
    CheckedInterface,
    CheckedIP,
    interface_deletions,
)
from update_controller.desired import Action, Correction, DevicePlan, Plan
from update_controller.reconcile import Interrupted, Planned, interrupted_status


def device(device_id: int, vmks: list[int]) -> DevicePlan:
    """A device with a rename and VMK interfaces carrying `vmks[i]` IPs each."""
    name = f"d{device_id}"
    plan = DevicePlan(
        device_id, name, [Correction(Action.RENAME, device_id, name, device_id * 100, "iDRAC", "rb", "rb")]
    )
    for n, ips in enumerate(vmks):
        interface = device_id * 100 + n + 1
        for ip in range(ips):
            plan.changes.append(
                Correction(Action.IP_DELETED, device_id, name, interface * 10 + ip, "ip", "-", interface_id=interface)
            )
        plan.changes.append(
            Correction(Action.INTERFACE_DELETED, device_id, name, interface, "vmk", "-", interface_id=interface)
        )
    return plan


def test_an_interface_with_its_ips_waits_when_it_does_not_fit_and_a_smaller_one_after_it_still_goes() -> None:
    plan = Plan([device(1, [1]), device(2, [2]), device(3, [0])])
    result = Applier(None, max_deletes=3, dry_run=True).apply(plan)  # type: ignore[arg-type]
    assert [(c.device, c.action) for c in result.held_back] == [("d2", Action.IP_DELETED)] * 2 + [
        ("d2", Action.INTERFACE_DELETED)
    ]
    assert [(c.device, c.action.value) for c in result.applied] == [
        ("d1", "rename"), ("d1", "ip_deleted"), ("d1", "interface_deleted"),
        ("d2", "rename"),
        ("d3", "rename"), ("d3", "interface_deleted"),
    ]  # fmt: skip
    assert result.failed == []


class RecordingNetBox:
    """What the apply step asks of NetBox: the re-check reads what the plan says, with versions; a
    delete of IPs fails part way when `fail_ip_deletes` (NetBox took `took` before)."""

    def __init__(self, plan: Plan, fail_ip_deletes: bool = False, took: frozenset[int] = frozenset()) -> None:
        self.plan = plan
        self.fail_ip_deletes = fail_ip_deletes
        self.took = took
        self.deletes: list[tuple[str, list[int], dict[int, str]]] = []

    def list_by_ids(self, endpoint: Endpoint[Any], id_filter: str, ids: Iterable[int]) -> list[Any]:
        groups = interface_deletions(self.plan.devices)
        if endpoint is RECHECK_INTERFACES:
            return [
                CheckedInterface(
                    id=g.interface_id,
                    device=Ref(id=g.device.device_id),
                    name=g.planned_name or "",
                    last_updated=f"v{g.interface_id}",
                )
                for g in groups
            ]
        return [
            CheckedIP(
                id=i, assigned_object_type="dcim.interface", assigned_object_id=g.interface_id, last_updated=f"v{i}"
            )
            for g in groups
            for i in g.ip_ids
        ]

    def update_many(self, endpoint: Endpoint[Any], changes: list[dict[str, Any]]) -> dict[int, str]:
        return {}

    def delete_many(self, endpoint: Endpoint[Any], ids: list[int], versions: Mapping[int, str]) -> dict[int, str]:
        self.deletes.append((endpoint.name, ids, {i: versions[i] for i in ids if i in versions}))
        if endpoint.name == "ip-addresses" and self.fail_ip_deletes:
            error = NetBoxUnavailableError("NetBox: no answer after 3 attempts (HTTP 502)")
            error.written = self.took
            raise error
        return {}


def test_deletes_name_the_versions_the_recheck_read() -> None:
    plan = Plan([device(1, [2])])
    netbox = RecordingNetBox(plan)
    Applier(cast(NetBox, netbox), max_deletes=10, dry_run=False).apply(plan)
    assert netbox.deletes == [
        ("ip-addresses", [1010, 1011], {1010: "v1010", 1011: "v1011"}),
        ("interfaces", [101], {101: "v101"}),
    ]


def test_netbox_failing_part_way_leaves_what_it_took_in_the_result() -> None:
    plan = Plan([device(1, [1]), device(2, [1])])
    netbox = RecordingNetBox(plan, fail_ip_deletes=True, took=frozenset({1010}))
    applier = Applier(cast(NetBox, netbox), max_deletes=10, dry_run=False)
    with pytest.raises(NetBoxUnavailableError):
        applier.apply(plan)
    assert [(c.device, c.action.value) for c in applier.result.applied] == [
        ("d1", "rename"), ("d1", "ip_deleted"), ("d2", "rename"),
    ]  # fmt: skip


def test_a_pass_interrupted_in_its_writes_reports_them_with_the_failure() -> None:
    plan = Plan([device(1, [1]), device(2, [1])])
    result = ApplyResult(applied=[c for d in plan.devices for c in d.changes if c.action is Action.RENAME])
    body = {
        "metadata": {"name": "fix", "namespace": "ns", "generation": 3},
        "status": {"observedGeneration": 2, "lastSyncTime": "2026-11-27T03:00:00Z"},
    }
    decision = Decision(FailureKind.NETBOX_UNAVAILABLE, "NetBoxUnavailable", "NetBox: no answer", True)
    status, reported = interrupted_status(
        body, Interrupted(Planned(UpdateSpec.model_validate({"clusters": [{"name": "c"}]}), plan, 2), result), decision
    )
    conditions = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conditions == {
        "Ready": ("False", "NetBoxUnavailable"),
        "NetBoxReachable": ("False", "NetBoxUnavailable"),
        "NoConflicts": ("True", "None"),
        "DeletesComplete": ("False", "Interrupted"),
    }
    assert reported.message.startswith("NetBox: no answer; 2 changes were applied before")
    assert status.state == "Error" and status.description == reported.message
    assert (status.applied.rename, status.applied.ip_deleted, status.planned.ip_deleted) == (2, 0, 2)
    # Not a completed pass: the generation and the sync time stay the last completed pass's.
    assert status.observed_generation == 2 and status.last_sync_time is not None
    assert status.last_sync_time.isoformat().startswith("2026-11-27T03:00:00")
