"""Where a device's BMC answers, from NetBox facts: shared by the controllers that register BMCs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from argora_common.inventory import Inventory
from argora_common.netbox import Device


@dataclass(frozen=True)
class BMCAccess:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    mac: str | None
    hostname: str | None


class DeviceSkippedError(Exception):
    """The device's NetBox data cannot be used; `reason` is machine-readable, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def bmc_access(device: Device, inventory: Inventory) -> BMCAccess:
    """NetBox's OOB IP, else the single IP on the `remoteboard` interface; that interface's MAC."""
    interfaces = inventory.bmc_interfaces.get(device.id, [])
    if len(interfaces) > 1:
        raise DeviceSkippedError("AmbiguousBMCInterface", f"{len(interfaces)} interfaces named remoteboard")
    interface = interfaces[0] if interfaces else None
    if device.oob_ip is not None:
        cidr, dns_name = device.oob_ip.address, device.oob_ip.dns_name
    else:
        addresses = inventory.bmc_addresses.get(interface.id, []) if interface else []
        if not addresses:
            raise DeviceSkippedError("NoOOBIP", "no OOB IP in NetBox and no IP on a remoteboard interface")
        if len(addresses) > 1:
            found = ", ".join(sorted(address.address for address in addresses))
            raise DeviceSkippedError("AmbiguousOOBIP", f"no OOB IP set and several IPs on remoteboard: {found}")
        cidr, dns_name = addresses[0].address, addresses[0].dns_name
    try:
        address = ipaddress.ip_interface(cidr).ip
    except ValueError as error:
        raise DeviceSkippedError("InvalidOOBIP", f"OOB IP {cidr!r} is not an IP address") from error
    mac = interface.mac_address.lower() if interface and interface.mac_address else None
    return BMCAccess(ip=address, mac=mac, hostname=dns_name or None)


def topology_labels(device: Device, inventory: Inventory) -> dict[str, str | None]:
    """Kubernetes' well-known region and zone labels: the site's region and the site."""
    site = inventory.sites.get(device.site.id)
    return {
        "topology.kubernetes.io/region": site.region.slug if site and site.region else None,
        "topology.kubernetes.io/zone": device.site.slug,
    }
