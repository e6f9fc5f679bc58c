from typing import Any

from argora_common.crds import UpdateSpec
from argora_common.inventory import SelectedDevice
from argora_common.netbox_schema import Device, Interface, IPAddress, Ref
from update_controller.desired import Action, plan_updates

SPEC = UpdateSpec.model_validate({"clusters": [{"name": "c"}]})


def device(device_id: int, oob_ip_id: int | None = None, platform: str | None = None) -> SelectedDevice:
    return SelectedDevice(
        Device.model_validate(
            {
                "id": device_id,
                "name": f"node{device_id}",
                "status": "active",
                "site": {"id": 1},
                "device_type": {"id": 1, "slug": "t", "manufacturer": {"id": 1, "slug": "dell"}},
                "oob_ip": {"id": oob_ip_id, "address": "10.0.0.1/24"} if oob_ip_id else None,
                "platform": {"id": 9, "slug": platform} if platform else None,
            }
        ),
        0,
    )


def iface(interface_id: int, device_id: int, name: str) -> Interface:
    return Interface.model_validate({"id": interface_id, "device": {"id": device_id}, "name": name})


def ip(ip_id: int, interface_id: int, address: str = "10.0.0.9/24") -> IPAddress:
    return IPAddress.model_validate(
        {"id": ip_id, "address": address, "assigned_object_type": "dcim.interface", "assigned_object_id": interface_id}
    )


def actions(result: Any) -> list[tuple[str, int, str, str]]:
    return [(c.action.value, c.object_id, c.before, c.after) for d in result.devices for c in d.changes]


def test_rename_oob_and_vmk_removal_for_one_device() -> None:
    result = plan_updates(
        [device(1)],
        {1: [iface(10, 1, "idrac"), iface(11, 1, "vmk0"), iface(12, 1, "eth0")]},
        {10: [ip(100, 10, "10.0.0.5/24")], 11: [ip(101, 11, "10.9.0.1/24")]},
        SPEC,
        None,
    )
    assert result.problems == []
    assert actions(result) == [
        ("rename", 10, "idrac", "remoteboard"),
        ("oob_ip", 1, "-", "10.0.0.5/24"),
        ("ip_deleted", 101, "10.9.0.1/24 on vmk0", "-"),
        ("interface_deleted", 11, "vmk0", "-"),
    ]


def test_nothing_to_do_is_an_empty_plan() -> None:
    result = plan_updates(
        [device(1, oob_ip_id=100)], {1: [iface(10, 1, "remoteboard")]}, {10: [ip(100, 10)]}, SPEC, None
    )
    assert result.devices == [] and result.problems == []


def test_conflicts_leave_the_device_as_it_is() -> None:
    result = plan_updates(
        [device(1), device(2)],
        {1: [iface(10, 1, "iDRAC"), iface(11, 1, "remoteboard")], 2: [iface(20, 2, "iLO"), iface(21, 2, "XCC")]},
        {},
        SPEC,
        None,
    )
    assert actions(result) == []
    assert [(p.device, p.reason) for p in result.problems] == [
        ("node1", "TargetNameTaken"),
        ("node2", "SeveralBMCInterfaces"),
    ]


def test_oob_ip_needs_exactly_one_ip() -> None:
    result = plan_updates(
        [device(1), device(2)],
        {1: [iface(10, 1, "remoteboard")], 2: [iface(20, 2, "remoteboard")]},
        {20: [ip(200, 20), ip(201, 20, "10.0.0.10/24")]},
        SPEC,
        None,
    )
    assert actions(result) == []
    assert [p.reason for p in result.problems] == ["OOBIPNotSet", "OOBIPNotSet"]


def test_platform_and_protected_bmc_interface() -> None:
    spec = SPEC.model_copy(update={"platform": "esxi", "remove_interface_prefixes": ["i", "vmk"]})
    result = plan_updates(
        [device(1, oob_ip_id=100, platform="ubuntu")],
        {1: [iface(10, 1, "iDRAC")]},
        {10: [ip(100, 10)]},
        spec,
        Ref(id=3, slug="esxi"),
    )
    # The BMC interface matches the prefix "i" but is never planned for deletion.
    assert [c.action for d in result.devices for c in d.changes] == [Action.RENAME, Action.PLATFORM]


def test_no_bmc_interface_is_reported_and_leftovers_still_go() -> None:
    result = plan_updates([device(1)], {1: [iface(11, 1, "vmk1"), iface(12, 1, "eth0")]}, {}, SPEC, None)
    assert [(p.reason, p.device) for p in result.problems] == [("NoBMCInterface", "node1")]
    assert actions(result) == [("interface_deleted", 11, "vmk1", "-")]


def test_the_bmc_interface_is_never_removed_even_with_a_leftover_prefix() -> None:
    spec = UpdateSpec.model_validate({"clusters": [{"name": "c"}], "removeInterfacePrefixes": ["remote", "vmk"]})
    result = plan_updates(
        [device(1, oob_ip_id=100)],
        {1: [iface(10, 1, "remoteboard"), iface(11, 1, "vmk0")]},
        {10: [ip(100, 10, "10.0.0.1/24")]},
        spec,
        None,
    )
    assert result.problems == []
    assert actions(result) == [("interface_deleted", 11, "vmk0", "-")]
    (planned,) = result.devices
    assert [change.interface_id for change in planned.deletions] == [11]
