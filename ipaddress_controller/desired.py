"""What NetBox should record for the IPAddresses Cluster API handed out, from Kubernetes and NetBox
facts alone: the device of each address, its interface, what to create, adopt or make primary, which of
Argora's NetBox addresses were released, and the releases the original operator's finalizer still asks
for. Pure: no I/O, unit-tested on its own."""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from argora_common.identity import ARGORA_IPADDRESS
from argora_common.kube import ARGORA_DOMAIN
from argora_common.netbox_schema import Device, Interface, IPAddress, Prefix
from ipaddress_controller.chain import Chain, Key, Unresolved, key_of, spec

FIELD_MANAGER: Final = ARGORA_IPADDRESS.field_manager
# The original operator's annotations, which users' tooling reads.
DEVICE_ID_ANNOTATION: Final = "netbox.argora.cloud.sap/device-id"
INTERFACE_ID_ANNOTATION: Final = "netbox.argora.cloud.sap/interface-id"
CONFLICTED_ANNOTATION: Final = "netbox.argora.cloud.sap/conflicted"
# The original operator put this finalizer on every IPAddress it saw and released the NetBox address when
# the IPAddress went: argora-ipaddress does that release for the IPAddresses that still carry it, then
# removes it. It never adds it (or a finalizer of its own).
ORIGINAL_FINALIZER: Final = "ipupdate.argora.cloud.sap.com/finalizer"
SYNC_STATUS_ANNOTATION: Final = f"{ARGORA_DOMAIN}/sync-status"
# Every annotation argora-ipaddress writes (it owns them by server-side apply: one it leaves out goes).
ANNOTATIONS: Final = (SYNC_STATUS_ANNOTATION, DEVICE_ID_ANNOTATION, INTERFACE_ID_ANNOTATION, CONFLICTED_ANNOTATION)
# How a NetBox address records the interface argora-ipaddress put it on: a release deletes it only there.
_CREATED_ON: Final = re.compile(r"on interface (\d+)$")
# Releases of a pass up to this many never trip the release breaker: machines come and go in small numbers.
RELEASE_BREAKER_MINIMUM: Final = 5


class State(StrEnum):
    SYNCED = "Synced"
    PENDING = "Pending"  # the chain to a NetBox device is not complete yet: retried
    CONFLICT = "Conflict"  # NetBox holds the address elsewhere: nothing written


def target_interface(interfaces: Sequence[Interface], pattern: re.Pattern[str]) -> Interface | None:
    """The LAG-typed interface matching `pattern` with the highest number (the original's rule)."""
    numbered = [
        (int(match.group(1)), interface)
        for interface in interfaces
        if interface.type == "lag" and (match := pattern.match(interface.name))
    ]
    return max(numbered, key=lambda pair: pair[0])[1] if numbered else None


def host(address: str) -> str:
    return str(ipaddress.ip_interface(address).ip)


def original_interface(address: Mapping[str, Any]) -> int | None:
    """The interface the original operator recorded on an IPAddress it synced (its interface-id
    annotation), when that record is the original's: the IPAddress carries its finalizer, or another field
    manager than ours owns the annotation. None for an IPAddress only argora-ipaddress annotated."""
    metadata = address.get("metadata") or {}
    recorded = str((metadata.get("annotations") or {}).get(INTERFACE_ID_ANNOTATION, ""))
    if not recorded.isdigit():
        return None
    by_original = ORIGINAL_FINALIZER in (metadata.get("finalizers") or []) or any(
        manager != FIELD_MANAGER for manager, _ in annotation_writers(address, INTERFACE_ID_ANNOTATION)
    )
    return int(recorded) if by_original else None


def annotation_writers(obj: Mapping[str, Any], name: str) -> set[tuple[str, str]]:
    """(field manager, operation) of each write that owns annotation `name`, from the object's managedFields."""
    field = f"f:{name}"
    return {
        (str(entry.get("manager")), str(entry.get("operation")))
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
        if field in (((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:annotations") or {})
    }


def is_deleting(address: Mapping[str, Any]) -> bool:
    return bool((address.get("metadata") or {}).get("deletionTimestamp"))


def cidr(address: Mapping[str, Any]) -> str:
    """An IPAddress's address with its mask, as NetBox stores it."""
    wanted = spec(address)
    return str(ipaddress.ip_interface(f"{wanted.get('address')}/{wanted.get('prefix')}"))


@dataclass
class AddressPlan:
    """What one IPAddress needs in NetBox, and what its annotations say."""

    key: Key
    address: str  # with mask
    state: State
    reason: str = ""
    message: str = ""
    device: Device | None = None
    interface: Interface | None = None
    existing: IPAddress | None = None  # the NetBox address, when there is one
    create: dict[str, Any] | None = None  # fields of the NetBox address to create
    # The existing address is one the original operator recorded on this interface: tag it as ours, so
    # that it is released like the addresses argora-ipaddress created.
    adopt: bool = False
    primary: bool = False  # the device's primary IP of its family, once this pass is done
    make_primary: bool = False  # ... and NetBox does not say so yet
    conflicted: str = ""  # the original's annotation value: device, interface or address

    def annotations(self) -> dict[str, str]:
        status = {"state": self.state.value, "reason": self.reason, "message": self.message}
        annotations = {SYNC_STATUS_ANNOTATION: _compact(status)}
        if self.device is not None:
            annotations[DEVICE_ID_ANNOTATION] = str(self.device.id)
        if self.interface is not None:
            annotations[INTERFACE_ID_ANNOTATION] = str(self.interface.id)
        if self.conflicted:
            annotations[CONFLICTED_ANNOTATION] = self.conflicted
        return annotations


def _compact(status: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in status.items() if value)


@dataclass(frozen=True)
class Release:
    """A NetBox address argora-ipaddress created whose IPAddress is gone."""

    address: IPAddress
    interface_id: int | None  # where we put it, from its description


@dataclass(frozen=True)
class Handover:
    """An IPAddress going away that still carries the original operator's finalizer: the release the
    original would have done (delete the NetBox address it recorded, when it is still on that interface),
    then the finalizer goes."""

    key: Key
    address: str  # with mask
    delete: IPAddress | None  # the NetBox address to delete first; None: nothing to delete
    interface_id: int | None  # where the original recorded it
    note: str = ""  # why nothing is deleted


@dataclass
class Plan:
    addresses: list[AddressPlan] = field(default_factory=list)
    handovers: list[Handover] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    # Released addresses that moved since we created them: left in NetBox and reported.
    kept: list[Release] = field(default_factory=list)
    # Why no release goes this pass (the breaker tripped); "" when they may.
    release_hold: str = ""

    @property
    def pending(self) -> list[AddressPlan]:
        return [item for item in self.addresses if item.state is State.PENDING]


@dataclass(frozen=True)
class NetBoxFacts:
    devices_by_id: Mapping[int, Device]
    devices_by_name: Mapping[str, Sequence[Device]]
    interfaces: Mapping[int, Sequence[Interface]]  # by device id
    addresses_by_host: Mapping[str, Sequence[IPAddress]]
    prefixes: Sequence[Prefix]  # those equal to an address's network
    created: Sequence[IPAddress]  # every NetBox address carrying our tag


def description(key: Key, interface_id: int) -> str:
    return f"{FIELD_MANAGER}: {key[0]}/{key[1]} on interface {interface_id}"


def created_on(address: IPAddress) -> int | None:
    match = _CREATED_ON.search(address.description)
    return int(match.group(1)) if match else None


def _vrf(network: str, prefixes: Sequence[Prefix]) -> int | None:
    """The VRF of the single prefix that is exactly the address's network, else the global VRF."""
    exact = [prefix for prefix in prefixes if prefix.prefix == network]
    return exact[0].vrf.id if len(exact) == 1 and exact[0].vrf is not None else None


def _device(chain: Chain, facts: NetBoxFacts) -> Device | Unresolved:
    if chain.device_id is not None and chain.device_id in facts.devices_by_id:
        return facts.devices_by_id[chain.device_id]
    named = facts.devices_by_name.get(chain.device_name, [])
    if len(named) == 1:
        return named[0]
    if named:
        ids = sorted(device.id for device in named)
        return Unresolved("AmbiguousDevice", f"NetBox has several devices named {chain.device_name}: {ids}")
    return Unresolved("DeviceNotFound", f"NetBox has no device {chain.device_name}")


def plan_address(
    key: Key,
    address: str,
    chain: Chain | Unresolved,
    facts: NetBoxFacts,
    pattern: re.Pattern[str],
    *,
    tag_slug: str,
    recorded_on: int | None = None,
) -> AddressPlan:
    """`recorded_on`: the interface the original operator recorded on the IPAddress (`original_interface`);
    `tag_slug`: the tag on the NetBox addresses that are argora-ipaddress's."""
    item = AddressPlan(key, address, State.PENDING)
    if isinstance(chain, Unresolved):
        item.reason, item.message = chain.reason, chain.message
        return item
    device = _device(chain, facts)
    if isinstance(device, Unresolved):
        item.reason, item.message = device.reason, device.message
        return item
    item.device = device
    lags = facts.interfaces.get(device.id, [])
    existing = facts.addresses_by_host.get(host(address), [])
    # An address the original operator recorded on one of the device's LAGs stays where NetBox has it: its
    # rule (one-digit LAG numbers only) may have picked another LAG than ours, and moving it is no fix.
    interface = next(
        (
            lag
            for lag in lags
            if recorded_on == lag.id
            and [(found.assigned_object_type, found.assigned_object_id) for found in existing]
            == [("dcim.interface", lag.id)]
        ),
        None,
    ) or target_interface(lags, pattern)
    if interface is None:
        item.reason, item.message = (
            "NoLAGInterface",
            f"device {device.name} has no LAG interface named {pattern.pattern}",
        )
        return item
    item.interface = interface
    if len(existing) > 1:
        ids = sorted(ip.id for ip in existing)
        return _conflict(item, "address", "AmbiguousAddress", f"NetBox holds {host(address)} several times: {ids}")
    if not existing:
        network = str(ipaddress.ip_interface(address).network)
        item.create = {
            "address": address,
            "assigned_object_type": "dcim.interface",
            "assigned_object_id": interface.id,
            "tenant": device.tenant.id if device.tenant else None,
            "vrf": _vrf(network, facts.prefixes),
            "description": description(key, interface.id),
        }
    else:
        found = item.existing = existing[0]
        if found.address != address:
            return _conflict(item, "address", "MaskDiffers", f"NetBox holds {found.address} (#{found.id})")
        if found.assigned_object_id is None:
            # As the original operator: an address someone planned in NetBox is theirs, not handed out.
            where = f"{device.name} {interface.name}"
            message = f"NetBox holds {address} (#{found.id}) on no interface: assign it to {where} or delete it"
            return _conflict(item, "interface", "Unassigned", message)
        if found.assigned_object_type != "dcim.interface" or found.assigned_object_id != interface.id:
            owner = found.assigned_object.device if found.assigned_object else None
            if owner is not None and owner.id == device.id:
                where = f"interface #{found.assigned_object_id} of {device.name}"
                return _conflict(item, "interface", "OnAnotherInterface", f"{address} is on {where}")
            elsewhere = (
                owner.name if owner and owner.name else f"{found.assigned_object_type} #{found.assigned_object_id}"
            )
            return _conflict(item, "device", "OnAnotherDevice", f"{address} is assigned to {elsewhere}")
        item.adopt = recorded_on == interface.id and all(tag.slug != tag_slug for tag in found.tags)
    item.state = State.SYNCED
    return item


def _conflict(item: AddressPlan, conflicted: str, reason: str, message: str) -> AddressPlan:
    item.state, item.conflicted, item.reason, item.message = State.CONFLICT, conflicted, reason, message
    return item


def _choose_primaries(items: Sequence[AddressPlan]) -> None:
    """Each device's primary IPv4 and IPv6 among its synced addresses of that family: the one NetBox has
    as primary already (the original operator made the last address it synced primary), else the first
    by IPAddress key, so that two addresses of one device never take the primary from each other."""
    families: dict[tuple[int, int], list[AddressPlan]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.key):
        if item.state is State.SYNCED and item.device is not None:
            families[(item.device.id, ipaddress.ip_interface(item.address).version)].append(item)
    for (_, version), candidates in families.items():
        device = candidates[0].device
        assert device is not None
        current = device.primary_ip4 if version == 4 else device.primary_ip6
        chosen = next(
            (c for c in candidates if current is not None and c.existing is not None and c.existing.id == current.id),
            candidates[0],
        )
        chosen.primary = True
        chosen.make_primary = chosen.existing is None or current is None or current.id != chosen.existing.id


def handover(address: Mapping[str, Any], facts: NetBoxFacts, held: Mapping[str, Sequence[Key]]) -> Handover:
    """The original operator's release of an IPAddress that goes: its NetBox address is deleted when it is
    still on the interface the original recorded and no other IPAddress holds it; otherwise NetBox is
    left as it is. `held`: the IPAddresses not going away, by host."""
    key, wanted = key_of(address), cidr(address)
    interface_id = original_interface(address)

    def keep(note: str) -> Handover:
        return Handover(key, wanted, None, interface_id, note)

    if interface_id is None:
        return keep("the original operator recorded no interface on it")
    found = [ip for ip in facts.addresses_by_host.get(host(wanted), []) if ip.address == wanted]
    if not found:
        return keep(f"NetBox holds no {wanted}")
    if len(found) > 1:
        return keep(f"NetBox holds {wanted} several times: {sorted(ip.id for ip in found)}")
    if found[0].assigned_object_type != "dcim.interface" or found[0].assigned_object_id != interface_id:
        return keep(f"{wanted} is no longer on interface {interface_id}, where the original operator recorded it")
    others = [f"{namespace}/{name}" for namespace, name in held.get(host(wanted), []) if (namespace, name) != key]
    if others:
        return keep(f"{wanted} is handed out to {', '.join(others)} too")
    return Handover(key, wanted, found[0], interface_id)


def plan(
    addresses: Sequence[Mapping[str, Any]],
    every_address: Sequence[Mapping[str, Any]],
    chains: Mapping[Key, Chain | Unresolved],
    facts: NetBoxFacts,
    pattern: re.Pattern[str],
    *,
    tag_slug: str,
    release_breaker_percent: int,
) -> Plan:
    """`addresses`: the IPAddresses to record; `every_address`: all IPAddresses, of any pool, so that an
    address still handed out by some pool is never released, and those going away with the original
    operator's finalizer."""
    result = Plan(
        addresses=[
            plan_address(
                key_of(address), cidr(address), chains[key_of(address)], facts, pattern,
                recorded_on=original_interface(address), tag_slug=tag_slug,
            )
            for address in addresses
        ]
    )  # fmt: skip
    _choose_primaries(result.addresses)
    in_use: dict[str, list[Key]] = defaultdict(list)
    held: dict[str, list[Key]] = defaultdict(list)
    for address in every_address:
        in_use[host(cidr(address))].append(key_of(address))
        if not is_deleting(address):
            held[host(cidr(address))].append(key_of(address))
    result.handovers = [
        handover(address, facts, held)
        for address in every_address
        if is_deleting(address) and ORIGINAL_FINALIZER in (address["metadata"].get("finalizers") or [])
    ]
    for created in sorted(facts.created, key=lambda ip: ip.id):
        if in_use.get(host(created.address)):
            continue
        release = Release(created, created_on(created))
        still_there = (
            release.interface_id is not None
            and created.assigned_object_type == "dcim.interface"
            and created.assigned_object_id == release.interface_id
        )
        (result.releases if still_there else result.kept).append(release)
    result.release_hold = release_hold(
        len(result.releases), len(facts.created), len(every_address), release_breaker_percent
    )
    return result


def release_hold(releases: int, tagged: int, addresses: int, percent: int) -> str:
    """Why the releases of a pass are held back, "" when they may go. An IPAddress list that is empty, or
    that lost much of what NetBox records, more likely says the cluster is not the one it was (a wrong
    kubeconfig, a restore, a `clusterctl move`) than that the machines are gone: deleting their NetBox
    addresses, primary IPs included, cannot be undone. `percent` 100 turns the breaker off."""
    if not releases or percent >= 100:
        return ""
    if not addresses:
        return f"the cluster has no IPAddress at all while NetBox holds {tagged} addresses of ours"
    if releases > RELEASE_BREAKER_MINIMUM and releases * 100 > tagged * percent:
        return (
            f"{releases} of the {tagged} NetBox addresses of ours would go at once, more than"
            f" ARGORA_RELEASE_BREAKER_PERCENT ({percent}%)"
        )
    return ""
