"""Metal3's networkData (OpenStack network_data.json) for a host's primary IP, from NetBox facts.

The link is the interface carrying the primary IP (a bond of its members when it is a LAG); the VLAN
is the prefix's (else the interface's untagged one) and is tagged on the host only when NetBox says
the switch port is tagged; the gateway is the containing prefix's custom field (`gateway` by default).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from argora_common.inventory import AmbiguousMACError, BootInterfaces, interface_mac
from argora_common.netbox_schema import Device, Interface, Prefix

TAGGED_MODES = ("tagged", "tagged-all")


def containing_prefix(
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface, prefixes: Sequence[Prefix]
) -> Prefix | None:
    """The most specific NetBox prefix that contains `address`."""
    best: tuple[int, Prefix] | None = None
    for prefix in prefixes:
        try:
            network = ipaddress.ip_network(prefix.prefix, strict=False)
        except ValueError:
            continue
        if (
            network.version == address.version
            and address.ip in network
            and (best is None or network.prefixlen > best[0])
        ):
            best = (network.prefixlen, prefix)
    return best[1] if best else None


def known_mac(interface: Interface) -> str | None:
    """The interface's MAC, None when NetBox has none or several without a primary (reported elsewhere)."""
    try:
        return interface_mac(interface)
    except AmbiguousMACError:
        return None


def network_data(
    device: Device, boot: BootInterfaces, prefixes: Sequence[Prefix], gateway_field: str
) -> dict[str, Any] | None:
    """None when NetBox does not say where the primary IP lives."""
    interface = boot.primary.get(device.id)
    address = boot.primary_address.get(device.id)
    if interface is None or address is None:
        return None
    ip = ipaddress.ip_interface(address.address)
    links: list[dict[str, Any]] = []
    if interface.type == "lag":
        members = sorted(boot.lag_members.get(interface.id, []), key=lambda member: member.name)
        links.extend({"id": m.name, "type": "phy", "ethernet_mac_address": known_mac(m) or ""} for m in members)
        mac = next((found for found in map(known_mac, members) if found), None)
        links.append(
            {
                "id": interface.name,
                "type": "bond",
                "bond_links": [m.name for m in members],
                "bond_mode": "802.3ad",
                "ethernet_mac_address": mac,
            }
        )
    else:
        mac = known_mac(interface)
        links.append({"id": interface.name, "type": "phy", "ethernet_mac_address": mac})
    if interface.mtu:
        links[-1]["mtu"] = interface.mtu
    prefix = containing_prefix(ip, prefixes)
    vlan = prefix.vlan if prefix and prefix.vlan else interface.untagged_vlan
    link_id = interface.name
    if vlan is not None and interface.mode in TAGGED_MODES:
        link_id = f"{interface.name}.{vlan.vid}"
        links.append(
            {"id": link_id, "type": "vlan", "vlan_link": interface.name, "vlan_id": vlan.vid, "vlan_mac_address": mac}
        )
    network: dict[str, Any] = {
        "id": "network0",
        "type": f"ipv{ip.version}",
        "link": link_id,
        "ip_address": str(ip.ip),
        "netmask": str(ip.network.netmask),
        "routes": [],
    }
    gateway = str((prefix.custom_fields.get(gateway_field) if prefix else None) or "").split("/")[0]
    if gateway:
        default = "0.0.0.0" if ip.version == 4 else "::"
        network["routes"].append({"network": default, "netmask": default, "gateway": gateway})
    return {"links": links, "networks": [network], "services": []}
