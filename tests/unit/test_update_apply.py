"""The apply step's decisions that need no NetBox: the delete cap and the reported order (in a dry run,
which writes and re-reads nothing)."""

from update_controller.apply import Applier
from update_controller.plan import Action, Change, DevicePlan, Plan


def device(device_id: int, vmks: list[int]) -> DevicePlan:
    """A device with a rename and VMK interfaces carrying `vmks[i]` IPs each."""
    name = f"d{device_id}"
    plan = DevicePlan(device_id, name, [Change(Action.RENAME, device_id, name, device_id * 100, "iDRAC", "rb", "rb")])
    for n, ips in enumerate(vmks):
        interface = device_id * 100 + n + 1
        for ip in range(ips):
            plan.changes.append(
                Change(Action.IP_DELETED, device_id, name, interface * 10 + ip, "ip", "-", interface_id=interface)
            )
        plan.changes.append(
            Change(Action.INTERFACE_DELETED, device_id, name, interface, "vmk", "-", interface_id=interface)
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
