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
from argora_common.netbox_schema import Device, Interface, IPAddress, Ref


class Action(StrEnum):
    RENAME = "rename"
    OOB_IP = "oob_ip"
    PLATFORM = "platform"
    INTERFACE_DELETED = "interface_deleted"
    IP_DELETED = "ip_deleted"


@dataclass(frozen=True)
class Correction:
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
    changes: list[Correction] = field(default_factory=list)

    @property
    def deletions(self) -> list[Correction]:
        return [c for c in self.changes if c.action in {Action.IP_DELETED, Action.INTERFACE_DELETED}]


@dataclass
class Plan:
    devices: list[DevicePlan] = field(default_factory=list)
    problems: list[DeviceProblem] = field(default_factory=list)


@dataclass(frozen=True)
class Rules:
    """What an Update asks for, as the planners use it."""

    spec: UpdateSpec
    platform: Ref | None  # resolved from spec.platform

    @property
    def vendor_names(self) -> set[str]:
        return {name.lower() for name in self.spec.bmc_interface_names}


@dataclass
class DeviceFacts:
    """One device with its interfaces and their addresses, and what is planned for it so far."""

    device: Device
    interfaces: Sequence[Interface]
    addresses: Mapping[int, Sequence[IPAddress]]  # by interface id
    plan: DevicePlan
    problems: list[DeviceProblem]

    def change(
        self,
        action: Action,
        object_id: int,
        before: str,
        after: str,
        *,
        value: int | str | None = None,
        interface_id: int | None = None,
    ) -> None:
        self.plan.changes.append(
            Correction(action, self.device.id, self.plan.device, object_id, before, after, value, interface_id)
        )

    def problem(self, reason: str, message: str) -> None:
        self.problems.append(
            DeviceProblem(device=self.plan.device, device_id=self.device.id, reason=reason, message=message)
        )


def plan_updates(
    devices: Sequence[SelectedDevice],
    interfaces: Mapping[int, Sequence[Interface]],
    addresses: Mapping[int, Sequence[IPAddress]],
    spec: UpdateSpec,
    platform: Ref | None,
) -> Plan:
    """`interfaces` by device id, `addresses` by interface id; `platform` resolved from spec.platform."""
    result = Plan()
    rules = Rules(spec, platform)
    for selected in devices:
        device = selected.device
        facts = DeviceFacts(
            device,
            interfaces.get(device.id, []),
            addresses,
            DevicePlan(device.id, device.name or f"#{device.id}"),
            result.problems,
        )
        bmc = plan_bmc_rename(facts, rules)
        plan_oob_ip(facts, rules, bmc)
        plan_platform(facts, rules)
        plan_leftover_removal(facts, rules)
        if facts.plan.changes:
            result.devices.append(facts.plan)
    return result


def vendor_named(facts: DeviceFacts, rules: Rules) -> list[Interface]:
    return [iface for iface in facts.interfaces if iface.name.lower() in rules.vendor_names]


def target_holders(facts: DeviceFacts, rules: Rules) -> list[Interface]:
    return [iface for iface in facts.interfaces if iface.name == rules.spec.target_interface_name]


def plan_bmc_rename(facts: DeviceFacts, rules: Rules) -> Interface | None:
    """The rename of the single vendor-named BMC interface when nothing holds the target name; returns the
    BMC interface (renamed or already named so), or None when there is none or it is ambiguous."""
    target = rules.spec.target_interface_name
    vendor, holders = vendor_named(facts, rules), target_holders(facts, rules)
    if vendor and holders:
        facts.problem("TargetNameTaken", f"{vendor[0].name} not renamed: {target} exists already")
        return None
    if len(vendor) > 1:
        facts.problem("SeveralBMCInterfaces", f"not renamed: {', '.join(sorted(i.name for i in vendor))}")
        return None
    if vendor:
        facts.change(Action.RENAME, vendor[0].id, vendor[0].name, target, value=target)
        return vendor[0]
    return holders[0] if holders else None


def plan_oob_ip(facts: DeviceFacts, rules: Rules, bmc: Interface | None) -> None:
    """The OOB IP from exactly one IP on the BMC interface."""
    if not rules.spec.set_oob_ip:
        return
    if bmc is None:
        if not vendor_named(facts, rules) and not target_holders(facts, rules):
            facts.problem(
                "NoBMCInterface", f"no interface named {rules.spec.target_interface_name} or a vendor BMC name"
            )
        return
    device = facts.device
    ips = facts.addresses.get(bmc.id, [])
    current = device.oob_ip.address if device.oob_ip else ""
    if len(ips) != 1:
        found = ", ".join(sorted(ip.address for ip in ips)) or "none"
        facts.problem("OOBIPNotSet", f"{len(ips)} IPs on {bmc.name} ({found}); the OOB IP is left at {current or '-'}")
    elif device.oob_ip is None or device.oob_ip.id != ips[0].id:
        facts.change(Action.OOB_IP, device.id, current or "-", ips[0].address, value=ips[0].id)


def plan_platform(facts: DeviceFacts, rules: Rules) -> None:
    platform, device = rules.platform, facts.device
    if platform is not None and (device.platform is None or device.platform.id != platform.id):
        before = device.platform.slug or "" if device.platform else "-"
        facts.change(Action.PLATFORM, device.id, before, platform.slug or "", value=platform.id)


def plan_leftover_removal(facts: DeviceFacts, rules: Rules) -> None:
    """Interfaces with a prefix to remove (VMK leftovers) and their IPs; never the BMC interface."""
    protected = {iface.id for iface in (*vendor_named(facts, rules), *target_holders(facts, rules))}
    for iface in facts.interfaces:
        if iface.id in protected or not any(iface.name.startswith(p) for p in rules.spec.remove_interface_prefixes):
            continue
        for ip in facts.addresses.get(iface.id, []):
            facts.change(Action.IP_DELETED, ip.id, f"{ip.address} on {iface.name}", "-", interface_id=iface.id)
        facts.change(Action.INTERFACE_DELETED, iface.id, iface.name, "-", interface_id=iface.id)
