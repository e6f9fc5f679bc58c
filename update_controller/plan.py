"""Pure planning: NetBox facts and an Update's rules in, the corrections to make out.

Safety rules live here: rename only a single vendor-named BMC interface when nothing holds the target
name yet; set the OOB IP only from exactly one IP on that interface; never plan to delete the BMC
interface itself. Everything else (re-checks before deletes, caps, dry run) is the apply step's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from argora_common.crds import DeviceProblem, UpdateSpec
from argora_common.inventory import SelectedDevice
from argora_common.netbox_schema import Interface, IPAddress, Ref


class Action(StrEnum):
    RENAME = "rename"
    OOB_IP = "oob_ip"
    PLATFORM = "platform"
    INTERFACE_DELETED = "interface_deleted"
    IP_DELETED = "ip_deleted"


@dataclass(frozen=True)
class Change:
    action: Action
    device_id: int
    device: str
    object_id: int  # the interface, IP or device the change is made to
    before: str
    after: str
    value: int | str | None = None  # what is written: a new name, an IP's or a platform's id
    interface_id: int | None = None  # for deletes: the interface the object must still belong to


@dataclass
class DevicePlan:
    device_id: int
    device: str
    changes: list[Change] = field(default_factory=list)

    @property
    def deletions(self) -> list[Change]:
        return [c for c in self.changes if c.action in {Action.IP_DELETED, Action.INTERFACE_DELETED}]


@dataclass
class Plan:
    devices: list[DevicePlan] = field(default_factory=list)
    problems: list[DeviceProblem] = field(default_factory=list)


def plan_updates(
    devices: Sequence[SelectedDevice],
    interfaces: Mapping[int, Sequence[Interface]],
    addresses: Mapping[int, Sequence[IPAddress]],
    spec: UpdateSpec,
    platform: Ref | None,
) -> Plan:
    """`interfaces` by device id, `addresses` by interface id; `platform` resolved from spec.platform."""
    result = Plan()
    vendor_names = {name.lower() for name in spec.bmc_interface_names}
    for selected in devices:
        device = selected.device
        name = device.name or f"#{device.id}"
        device_plan = DevicePlan(device.id, name)

        def problem(reason: str, message: str, device_id: int = device.id, device_name: str = name) -> None:
            result.problems.append(
                DeviceProblem(device=device_name, device_id=device_id, reason=reason, message=message)
            )

        own = interfaces.get(device.id, [])
        vendor_named = [iface for iface in own if iface.name.lower() in vendor_names]
        holders = [iface for iface in own if iface.name == spec.target_interface_name]
        bmc: Interface | None = None
        if vendor_named and holders:
            problem(
                "TargetNameTaken", f"{vendor_named[0].name} not renamed: {spec.target_interface_name} exists already"
            )
        elif len(vendor_named) > 1:
            problem("SeveralBMCInterfaces", f"not renamed: {', '.join(sorted(i.name for i in vendor_named))}")
        elif vendor_named:
            bmc = vendor_named[0]
            device_plan.changes.append(
                Change(
                    Action.RENAME,
                    device.id,
                    name,
                    bmc.id,
                    bmc.name,
                    spec.target_interface_name,
                    spec.target_interface_name,
                )
            )
        elif holders:
            bmc = holders[0]
        if spec.set_oob_ip and bmc is not None:
            ips = addresses.get(bmc.id, [])
            current = device.oob_ip.address if device.oob_ip else ""
            if len(ips) == 1:
                if device.oob_ip is None or device.oob_ip.id != ips[0].id:
                    device_plan.changes.append(
                        Change(Action.OOB_IP, device.id, name, device.id, current or "-", ips[0].address, ips[0].id)
                    )
            else:
                found = ", ".join(sorted(ip.address for ip in ips)) or "none"
                problem(
                    "OOBIPNotSet", f"{len(ips)} IPs on {bmc.name} ({found}); the OOB IP is left at {current or '-'}"
                )
        elif spec.set_oob_ip and not vendor_named and not holders:
            problem("NoBMCInterface", f"no interface named {spec.target_interface_name} or a vendor BMC name")
        if platform is not None and (device.platform is None or device.platform.id != platform.id):
            before = device.platform.slug or "" if device.platform else "-"
            device_plan.changes.append(
                Change(Action.PLATFORM, device.id, name, device.id, before, platform.slug or "", platform.id)
            )
        protected = {iface.id for iface in (*vendor_named, *holders)}
        for iface in own:
            if iface.id in protected or not any(iface.name.startswith(p) for p in spec.remove_interface_prefixes):
                continue
            for ip in addresses.get(iface.id, []):
                device_plan.changes.append(
                    Change(
                        Action.IP_DELETED,
                        device.id,
                        name,
                        ip.id,
                        f"{ip.address} on {iface.name}",
                        "-",
                        interface_id=iface.id,
                    )
                )
            device_plan.changes.append(
                Change(Action.INTERFACE_DELETED, device.id, name, iface.id, iface.name, "-", interface_id=iface.id)
            )
        if device_plan.changes:
            result.devices.append(device_plan)
    return result
