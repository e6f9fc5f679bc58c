"""argora-update's delta passes, the pure parts and what a patch asks of NetBox: which devices NetBox's
changes concern, how the devices read again are merged into the last read, and that the devices our own
passes wrote to are read again. Against real NetBox: tests/e2e/test_update_delta.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import pytest
from kubernetes import client

from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, PLATFORM, ChangeSet, NetBoxId
from argora_common.crds import UpdateSpec
from argora_common.inventory import SelectedDevice, Selection
from argora_common.kube import Kube
from argora_common.netbox import NetBox, NetBoxUnavailableError
from argora_common.netbox_schema import DEVICES, Cluster, Device, Endpoint, Interface, IPAddress
from tests.unit.test_update_apply import RecordingNetBox
from tests.unit.test_update_apply import device as plan_of
from tests.unit.test_update_desired import iface, ip
from update_controller.desired import Plan
from update_controller.facts import Facts, OwnWrites, concerned_devices, merged
from update_controller.reconcile import FIELD_MANAGER, Planned, UpdateSteps

SPEC = UpdateSpec.model_validate({"clusters": [{"name": "c"}], "platform": "os"})
NETBOX_CLUSTER = Cluster.model_validate({"id": 7, "name": "c", "type": {"id": 1, "slug": "t"}})
BODY = {"metadata": {"namespace": "ns", "name": "fix", "generation": 1}, "spec": SPEC.model_dump(by_alias=True)}


def device(device_id: int, oob_ip_id: int | None = None, **fields: Any) -> Device:
    return Device.model_validate(
        {
            "id": device_id,
            "name": f"node{device_id}",
            "status": "active",
            "site": {"id": 1},
            "cluster": {"id": 7},
            "device_type": {"id": 1, "slug": "t", "manufacturer": {"id": 1, "slug": "dell"}},
            "oob_ip": {"id": oob_ip_id, "address": "10.0.0.1/24"} if oob_ip_id else None,
            **fields,
        }
    )


def changes(*named: NetBoxId, changed: tuple[NetBoxId, ...] = ()) -> ChangeSet:
    return ChangeSet(frozenset(changed or named[:1]), frozenset(named))


def last_read() -> Facts:
    """Devices 1-3: 1 with its BMC port 10 (an IP, its OOB IP 100) and a VMK port 11 (IP 101), 2 with a
    port 20 and OOB IP 200 on device 1's port 12, 3 without ports."""
    devices = [SelectedDevice(device(1, 100), 0), SelectedDevice(device(2, 200), 0), SelectedDevice(device(3), 0)]
    interfaces = {
        1: [iface(10, 1, "remoteboard"), iface(11, 1, "vmk0"), iface(12, 1, "eth0")],
        2: [iface(20, 2, "iDRAC")],
    }
    addresses = {10: [ip(100, 10)], 11: [ip(101, 11)]}
    return Facts(SPEC, Selection([[NETBOX_CLUSTER]], devices, {}), interfaces, addresses, None, 0)


def test_a_change_concerns_the_devices_it_names_and_the_owners_of_the_ports_and_ips_it_names() -> None:
    last = last_read()
    assert concerned_devices(last, changes((DEVICE, 3))) == {3}
    # A new IP names its port: the port's device.
    assert concerned_devices(last, changes((IP_ADDRESS, 999), (INTERFACE, 11))) == {1}
    assert concerned_devices(last, changes((IP_ADDRESS, 101))) == {1}
    # An OOB IP on another device's port: the device it is the OOB IP of.
    assert concerned_devices(last, changes((IP_ADDRESS, 200))) == {2}
    assert concerned_devices(last, changes((INTERFACE, 20), (DEVICE, 4))) == {2, 4}
    # What no device of the read holds concerns none of them.
    assert concerned_devices(last, changes((INTERFACE, 99))) == set()


def test_a_change_to_a_cluster_or_a_platform_needs_a_full_read() -> None:
    last = last_read()
    assert concerned_devices(last, changes((CLUSTER, 7))) is None
    assert concerned_devices(last, changes((PLATFORM, 3))) is None
    # A device naming its cluster or platform is a change of the device only.
    assert concerned_devices(last, changes((DEVICE, 4), (CLUSTER, 7), changed=((DEVICE, 4),))) == {4}


def test_a_merged_read_replaces_all_of_the_devices_read_again_and_keeps_the_rest() -> None:
    last = last_read()
    # Device 1 lost its VMK port, 2 left the cluster, 4 joined it under a second selector.
    fresh = [SelectedDevice(device(1, 100), 0), SelectedDevice(device(4), 1)]
    interfaces = {1: [iface(10, 1, "remoteboard")], 4: [iface(40, 4, "iLO")]}
    result = merged(last, fresh, interfaces, {40: [ip(400, 40)]}, {1, 2, 4}, 5)
    # A full read's order: by first selector, then by id.
    assert [(s.device.id, s.selector_index) for s in result.selection.devices] == [(1, 0), (3, 0), (4, 1)]
    assert result.interfaces == interfaces
    assert result.addresses == {40: [ip(400, 40)]}
    assert result.writes_seen == 5
    assert (result.spec, result.platform, result.selection.clusters_by_selector) == (
        SPEC,
        None,
        [[NETBOX_CLUSTER]],
    )


def test_own_writes_say_which_devices_a_read_has_not_seen_written() -> None:
    writes = OwnWrites()
    before = writes.count()
    writes.wrote([1, 2])
    between = writes.count()
    writes.wrote([2, 3])
    assert writes.since(before) == {1, 2, 3}
    assert writes.since(between) == {2, 3}
    assert writes.since(writes.count()) == set()


class MemoryNetBox:
    """The devices, interfaces and IPs a patch reads, by the filters it reads them with; counts requests."""

    def __init__(self, devices: list[Device], interfaces: list[Interface], addresses: list[IPAddress]) -> None:
        self.devices = devices
        self.interfaces = interfaces
        self.addresses = addresses
        self.requests: list[tuple[str, str, list[int]]] = []

    def list_by_ids(self, endpoint: Endpoint[Any], id_filter: str, ids: Iterable[int]) -> list[Any]:
        wanted = sorted(set(ids))
        self.requests.append((endpoint.name, id_filter, wanted))
        if endpoint is DEVICES:
            return [d for d in self.devices if d.id in wanted]
        if endpoint.name == "interfaces":
            return [i for i in self.interfaces if i.device.id in wanted]
        owners = {i.id for i in self.interfaces if i.device.id in wanted}
        return [a for a in self.addresses if a.assigned_object_id in owners]


def steps_on(netbox: MemoryNetBox) -> UpdateSteps:
    return UpdateSteps(cast(NetBox, netbox), Kube(client.ApiClient(), FIELD_MANAGER))


def test_a_single_device_change_is_three_requests_and_reads_that_device_whole() -> None:
    last = last_read()
    # NetBox now: device 3 has a vendor-named port with an IP.
    netbox = MemoryNetBox([device(3)], [iface(30, 3, "iLO"), iface(31, 3, "eth1")], [ip(300, 30)])
    patched = steps_on(netbox).patch(BODY, last, changes((DEVICE, 3)))
    assert patched is not None
    assert netbox.requests == [
        ("devices", "id", [3]),
        ("interfaces", "device_id", [3]),
        ("ip-addresses", "device_id", [3]),
    ]
    # eth1 changes no correction: it is not kept.
    assert [i.id for i in patched.interfaces[3]] == [30]
    assert patched.addresses[30] == [ip(300, 30)]
    assert patched.interfaces[1] == last.interfaces[1]


def test_devices_our_passes_wrote_to_since_the_read_are_read_again() -> None:
    last = last_read()
    netbox = MemoryNetBox([device(1, 100), device(2, 200), device(3)], [], [])
    steps = steps_on(netbox)
    # A pass renamed device 2's port; another Update's pass wrote to device 9, which this one does not select.
    steps.own_writes.wrote([2, 9])
    patched = steps.patch(BODY, last, changes((DEVICE, 3)))
    assert patched is not None
    assert netbox.requests[0] == ("devices", "id", [2, 3])
    assert patched.writes_seen == 1
    # Built on the patched read, a pass reads them again only after the next write.
    netbox.requests.clear()
    steps.patch(BODY, patched, changes((DEVICE, 3)))
    assert netbox.requests[0] == ("devices", "id", [3])


def test_a_cluster_change_or_most_of_the_devices_concerned_need_a_full_read() -> None:
    last = last_read()
    netbox = MemoryNetBox([], [], [])
    steps = steps_on(netbox)
    assert steps.patch(BODY, last, changes((CLUSTER, 7))) is None
    many = [(DEVICE, device_id) for device_id in range(100, 160)]
    assert steps.patch(BODY, last, changes(*many)) is None
    assert netbox.requests == []


def test_a_pass_tells_which_devices_it_wrote_to_and_a_failed_one_every_device_of_its_plan() -> None:
    plan = Plan([plan_of(1, [1]), plan_of(2, [])])
    steps = UpdateSteps(cast(NetBox, RecordingNetBox(plan)), Kube(client.ApiClient(), FIELD_MANAGER))
    steps.converge(BODY, Planned(SPEC, plan, 3))
    assert steps.own_writes.since(0) == {1, 2}
    # A dry run writes nothing.
    steps.converge(BODY, Planned(SPEC.model_copy(update={"dry_run": True}), plan, 3))
    assert steps.own_writes.since(1) == set()
    # NetBox failing part way: whether it made the write under way is unknown.
    failing = Plan([plan_of(4, [1]), plan_of(5, [])])
    steps.netbox = cast(NetBox, RecordingNetBox(failing, fail_ip_deletes=True))
    with pytest.raises(NetBoxUnavailableError):
        steps.converge(BODY, Planned(SPEC, failing, 2))
    assert steps.own_writes.since(1) == {4, 5}
