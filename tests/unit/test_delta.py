"""Delta passes, the pure parts: which devices NetBox's changes concern, how a delta read is merged into the
last read, which devices a delta pass converges, and that it leaves the objects a full pass leaves.
Against real NetBox: tests/e2e/test_delta_reads.py."""

from __future__ import annotations

from typing import Any

from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, MAC_ADDRESS, ChangeSet, NetBoxId
from argora_common.converge import LastPlan
from argora_common.crds import ClusterSelector
from argora_common.inventory import Inventory, SelectedDevice
from argora_common.inventory_delta import affected_devices, merged, select_devices
from argora_common.kinds import BMC, BMC_SECRET
from argora_common.netbox_schema import Device, Interface, IPAddress
from ironcore_controller import desired as ironcore
from ironcore_controller.apply import ApplyResult, Converger
from tests.unit.memory_kube import MemoryKube
from tests.unit.test_converge import CLUSTER as NETBOX_CLUSTER
from tests.unit.test_converge import CREDS, OWNER, PREFIX, SETTINGS, SITE, device, inventory, spec


def device_with(device_id: int, **fields: Any) -> Device:
    return Device.model_validate({**device(device_id).model_dump(), **fields})


def changes(*named: NetBoxId, changed: tuple[NetBoxId, ...] = ()) -> ChangeSet:
    return ChangeSet(frozenset(changed or named[:1]), frozenset(named))


def port(interface_id: int, device_id: int) -> Interface:
    return Interface.model_validate({"id": interface_id, "device": {"id": device_id}, "name": "remoteboard"})


def address(address_id: int, interface_id: int) -> IPAddress:
    return IPAddress.model_validate(
        {"id": address_id, "address": "10.1.0.1/24", "assigned_object_type": "dcim.interface",
         "assigned_object_id": interface_id}
    )  # fmt: skip


def with_ports() -> Inventory:
    """Devices 1-3: 1 and 2 with an OOB IP (2's on device 3's port), 3 without, its port's address known."""
    the_inventory = inventory(device(1), device(2), device(3))
    the_inventory.devices[2] = SelectedDevice(device_with(3, oob_ip=None), 0)
    the_inventory.bmc_interfaces = {1: [port(11, 1)], 3: [port(13, 3)]}
    the_inventory.oob_interfaces = {101: port(11, 1), 102: port(13, 3)}
    the_inventory.bmc_addresses = {13: [address(500, 13)]}
    return the_inventory


def test_a_change_concerns_the_device_it_names_and_those_whose_ports_and_addresses_it_names() -> None:
    last = with_ports()
    assert affected_devices(last, changes((DEVICE, 2))) == {2}
    # A MAC names its port: the port's device, and the device whose OOB IP is on it.
    assert affected_devices(last, changes((MAC_ADDRESS, 9), (INTERFACE, 13))) == {2, 3}
    assert affected_devices(last, changes((IP_ADDRESS, 101))) == {1}
    assert affected_devices(last, changes((IP_ADDRESS, 500), (INTERFACE, 13))) == {2, 3}
    # What no device of the read holds concerns none of them.
    assert affected_devices(last, changes((INTERFACE, 99))) == set()
    # A cluster that changed itself may now hold other devices: only a full read can tell.
    assert affected_devices(last, changes((CLUSTER, 1))) is None
    assert affected_devices(last, changes((DEVICE, 4), (CLUSTER, 1), changed=((DEVICE, 4),))) == {4}


def test_devices_read_again_are_selected_as_netboxs_filters_select_them() -> None:
    selectors = [
        ClusterSelector.model_validate({"name": "cc-a1"}),
        ClusterSelector.model_validate({"name": "cc-a1", "statuses": ["offline"], "role": "storage"}),
    ]
    offline_storage = device_with(2, status="offline", role={"id": 2, "slug": "storage"})
    elsewhere = device_with(3, cluster={"id": 9, "name": "cc-b"})
    selected = select_devices([elsewhere, offline_storage, device(1)], [[NETBOX_CLUSTER]] * 2, selectors, ["active"])
    assert [(s.device.id, s.selector_index, s.also_selected_by) for s in selected] == [(1, 0, []), (2, 1, [])]


def test_a_merged_read_replaces_all_of_the_devices_read_again_and_keeps_the_rest() -> None:
    last = with_ports()
    fresh = Inventory([[NETBOX_CLUSTER]], [SelectedDevice(device(3), 0)], {5: SITE})
    fresh.bmc_interfaces = {3: [port(23, 3)]}
    fresh.oob_interfaces = {103: port(23, 3)}
    # Device 2 left the cluster: it was read again and is not in the fresh read.
    result = merged(last, fresh, {2, 3})
    assert [s.device.id for s in result.devices] == [1, 3]
    assert result.devices[1].device.oob_ip is not None
    assert result.bmc_interfaces == {1: [port(11, 1)], 3: [port(23, 3)]}
    assert result.oob_interfaces == {101: port(11, 1), 103: port(23, 3)}
    assert result.bmc_addresses == {}


def delta_converge(kube: MemoryKube, last: LastPlan, the_plan: ironcore.Plan) -> ApplyResult:
    scope = last.scope(the_plan.devices)
    carried: dict[tuple[str, str], dict[str, Any]] = {}
    return Converger(kube, OWNER, spec(), PREFIX).converge(the_plan, scope, carried)


def test_a_delta_pass_converges_the_devices_planned_otherwise_and_leaves_what_a_full_pass_leaves() -> None:
    full_kube, delta_kube = MemoryKube(), MemoryKube()
    before = ironcore.plan(inventory(*(device(i) for i in range(1, 6))), [CREDS], OWNER, SETTINGS)
    for kube in (full_kube, delta_kube):
        first = Converger(kube, OWNER, spec(), PREFIX).converge(before)
    last = LastPlan.of(before.devices, first)
    # NetBox: device 3 got another OOB IP, 5 left, 6 came.
    after_devices = [device(1), device(2), device(3, "10.0.9.3/24"), device(4), device(6)]
    after = ironcore.plan(inventory(*after_devices), [CREDS], OWNER, SETTINGS)
    assert last.scope(after.devices) == {3, 5, 6}
    full_kube.writes.clear()
    delta_kube.writes.clear()
    full = Converger(full_kube, OWNER, spec(), PREFIX).converge(after)
    result = delta_converge(delta_kube, last, after)
    for kind in (BMC, BMC_SECRET):
        assert delta_kube.objects(kind) == full_kube.objects(kind)
    # Device 3's new OOB IP is access drift (spec.access is immutable): reported, not written.
    assert sorted(w.name for w in delta_kube.writes) == ["node5-bb1", "node5-bb1", "node6-bb1", "node6-bb1"]
    assert (result.created, result.updated) == (["node6-bb1"], [])
    assert [p.device_id for p in result.drifted] == [3] and len(result.pruned) == 2
    # What the status says of the pass is what a full pass would say.
    counted = ("created", "updated", "adopted", "unchanged", "pruned", "held_back", "drifted", "failed")
    assert {name: getattr(result, name) for name in counted} == {name: getattr(full, name) for name in counted}


def test_devices_whose_last_write_failed_or_drifted_are_looked_at_again() -> None:
    planned = ironcore.plan(inventory(device(1), device(2)), [CREDS], OWNER, SETTINGS)
    result = ApplyResult()
    result.fail("node2-bb1", 2, "Rejected", "HTTP 422")
    assert LastPlan.of(planned.devices, result).scope(planned.devices) == {2}


def test_a_device_planned_the_same_is_out_of_the_scope() -> None:
    planned = ironcore.plan(inventory(device(1)), [CREDS], OWNER, SETTINGS)
    again = ironcore.plan(inventory(device(1)), [CREDS], OWNER, SETTINGS)
    assert LastPlan.of(planned.devices, ApplyResult()).scope(again.devices) == set()
