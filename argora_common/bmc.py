"""Where a device's BMC answers, from NetBox facts: shared by the controllers that register BMCs."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from argora_common.inventory import BMC_INTERFACE_NAME, AmbiguousMACError, Inventory, interface_mac
from argora_common.netbox_schema import Device, Interface


@dataclass(frozen=True)
class DeviceNote:
    """Something wrong with a device that does not stop its objects from being written."""

    reason: str
    message: str


@dataclass(frozen=True)
class BMCAccess:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    mac: str | None
    hostname: str | None
    # Why `mac` is left out although NetBox has a BMC port (several MACs, OOB IP on another device).
    mac_note: DeviceNote | None = None


class DeviceSkippedError(Exception):
    """The device's NetBox data cannot be used; `reason` is machine-readable, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def named_bmc_interface(device: Device, inventory: Inventory) -> Interface | None:
    """The `remoteboard` interface, else the single one still under a vendor's name (iDRAC, iLO, ...)."""
    candidates = inventory.bmc_interfaces.get(device.id, [])
    renamed = [iface for iface in candidates if iface.name == BMC_INTERFACE_NAME]
    chosen = renamed or candidates
    if len(chosen) > 1:
        names = ", ".join(sorted(iface.name for iface in chosen))
        raise DeviceSkippedError("AmbiguousBMCInterface", f"{len(chosen)} BMC interfaces: {names}")
    return chosen[0] if chosen else None


def bmc_interface(device: Device, inventory: Inventory) -> tuple[Interface | None, DeviceNote | None]:
    """The interface carrying the device's OOB IP (NetBox's own link), else the BMC-named one."""
    if device.oob_ip is not None:
        interface = inventory.oob_interfaces.get(device.oob_ip.id)
        if interface is not None and interface.device.id != device.id:
            owner = interface.device.name or f"#{interface.device.id}"
            return None, DeviceNote(
                "OOBIPOnOtherDevice",
                f"OOB IP {device.oob_ip.address} is assigned to interface {interface.name} of device {owner}; "
                "no BMC MAC is taken from it",
            )
        if interface is not None:
            return interface, None
    return named_bmc_interface(device, inventory), None


# IPv4's "this network" block: the `ipaddress` module calls only 0.0.0.0 itself unspecified.
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


def unreachable_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of address `address` is when no BMC can answer there (NetBox stores any of them on an
    interface), else None: a BMC at 127.0.0.1 would have metal-operator or Ironic talk to themselves."""
    if address.version == 4 and address in _THIS_NETWORK:
        return "in 0.0.0.0/8 (this network)"
    kinds = (
        ("unspecified", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a multicast address", address.is_multicast),
        # Link-local IPv6 needs the sender's interface (a zone) besides the address; IPv4's is never routed.
        ("a link-local address", address.is_link_local),
        ("a reserved address", address.is_reserved),
    )
    return next((kind for kind, applies in kinds if applies), None)


# Every pass plans every device, and parsing their addresses is a third of the plan's time at 10,000
# devices; the addresses seldom change between passes, so the answers are kept (not the refusals).
@functools.lru_cache(maxsize=1 << 16)
def usable_address(cidr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address of NetBox's `cidr` when a BMC can answer there."""
    try:
        address = ipaddress.ip_interface(cidr).ip
    except ValueError as error:
        raise DeviceSkippedError("InvalidOOBIP", f"OOB IP {cidr!r} is not an IP address") from error
    unusable = unreachable_kind(address)
    if unusable is not None:
        raise DeviceSkippedError("InvalidOOBIP", f"OOB IP {cidr} is {unusable}: no BMC can be reached there")
    return address


def bmc_access(device: Device, inventory: Inventory) -> BMCAccess:
    """NetBox's OOB IP, else the single IP on the BMC interface; that interface's MAC."""
    interface, note = bmc_interface(device, inventory)
    if device.oob_ip is not None:
        cidr, dns_name = device.oob_ip.address, device.oob_ip.dns_name
    else:
        addresses = inventory.bmc_addresses.get(interface.id, []) if interface else []
        if interface is None or not addresses:
            raise DeviceSkippedError("NoOOBIP", "no OOB IP in NetBox and no IP on a BMC interface")
        if len(addresses) > 1:
            found = ", ".join(sorted(address.address for address in addresses))
            raise DeviceSkippedError("AmbiguousOOBIP", f"no OOB IP set and several IPs on {interface.name}: {found}")
        cidr, dns_name = addresses[0].address, addresses[0].dns_name
    address = usable_address(cidr)
    mac = None
    if interface is not None:
        try:
            mac = interface_mac(interface)
        except AmbiguousMACError as error:
            note = DeviceNote("AmbiguousMAC", f"{error}; the BMC MAC is left out")
    return BMCAccess(ip=address, mac=mac, hostname=dns_name or None, mac_note=note)


def device_name_labels(device: Device, prefix: str) -> dict[str, str | None]:
    """The original operator's labels from a device name `<node>-<bb>`: name, nodename and bb."""
    name = device.name or ""
    parts = name.split("-")
    node, bb = (parts[0], parts[1]) if len(parts) == 2 and all(parts) else (None, None)
    return {f"{prefix}/name": name or None, f"{prefix}/nodename": node, f"{prefix}/bb": bb}


def topology_labels(device: Device, inventory: Inventory) -> dict[str, str | None]:
    """Kubernetes' well-known region and zone labels: the site's region and the site."""
    site = inventory.sites.get(device.site.id)
    return {
        "topology.kubernetes.io/region": site.region.slug if site and site.region else None,
        "topology.kubernetes.io/zone": device.site.slug,
    }
