"""A delta read of an inventory (and of the devices' boot ports): what NetBox's changes name, read again on
top of the last full read.

The devices a change may concern (the device itself, its BMC ports and their MACs, its OOB IP and the
addresses on its ports) are read again as a full read reads them, in a few requests whatever the size
of the inventory; changed sites are read again too. Which of the re-read devices are selected is decided
here the way NetBox's device filters decide it for a full read (cluster, status, role), so that the
result is the inventory a full read would give. A change to a cluster itself may change which devices
every selector holds: then, as when the changes name more than half of the devices, nothing is patched
and the caller reads NetBox whole.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, SITE, ChangeSet
from argora_common.crds import ClusterSelector
from argora_common.inventory import BootInterfaces, Inventory, SelectedDevice, read_bmc_interfaces
from argora_common.netbox import NetBox
from argora_common.netbox_schema import DEVICES, SITES, Cluster, Device


def affected_devices(inventory: Inventory, changes: ChangeSet) -> set[int] | None:
    """The ids of the devices whose NetBox facts `changes` may have changed (selected before or not);
    None when a change may change more than those (a cluster itself changed)."""
    if any(object_type == CLUSTER for object_type, _ in changes.changed):
        return None
    devices = changes.ids(DEVICE)
    # Whose facts each port and address is: the port's device, and the device whose OOB IP is on it.
    by_interface: dict[int, set[int]] = {}
    by_address: dict[int, set[int]] = {}
    for device_id, interfaces in inventory.bmc_interfaces.items():
        for interface in interfaces:
            by_interface.setdefault(interface.id, set()).add(device_id)
            for address in inventory.bmc_addresses.get(interface.id, ()):
                by_address.setdefault(address.id, set()).add(device_id)
    for selected in inventory.devices:
        oob = selected.device.oob_ip
        if oob is None:
            continue
        by_address.setdefault(oob.id, set()).add(selected.device.id)
        port = inventory.oob_interfaces.get(oob.id)
        if port is not None:
            by_interface.setdefault(port.id, set()).add(selected.device.id)
    for interface_id in changes.ids(INTERFACE):
        devices |= by_interface.get(interface_id, set())
    for address_id in changes.ids(IP_ADDRESS):
        devices |= by_address.get(address_id, set())
    return devices


def cheaper_to_read_whole(concerned: int, devices: int) -> bool:
    """Whether reading again `concerned` devices of a last read of `devices` costs more than reading NetBox
    whole: when more than half of them are concerned, past the first 50 (a small inventory's delta read is a
    few requests whatever share of it is concerned)."""
    return 2 * concerned > devices + 100


def selects(
    device: Device, clusters: Collection[Cluster], selector: ClusterSelector, default_statuses: Sequence[str]
) -> bool:
    """Whether a full read would give `device` for the selector that matched `clusters`: the device filters
    of inventory._device_filters, applied here."""
    statuses = selector.statuses or default_statuses
    return (
        device.cluster is not None
        and device.cluster.id in {cluster.id for cluster in clusters}
        and device.status in statuses
        and (selector.role is None or (device.role is not None and device.role.slug == selector.role))
    )


def select_devices(
    devices: Sequence[Device],
    clusters_by_selector: Sequence[Sequence[Cluster]],
    selectors: Sequence[ClusterSelector],
    default_statuses: Sequence[str],
) -> list[SelectedDevice]:
    """The devices selected, each with its first selector and the others that select it too."""
    selected: dict[int, SelectedDevice] = {}
    for index, (selector, clusters) in enumerate(zip(selectors, clusters_by_selector, strict=True)):
        for device in sorted(devices, key=lambda device: device.id):
            if not selects(device, clusters, selector, default_statuses):
                continue
            entry = selected.setdefault(device.id, SelectedDevice(device, index))
            if entry.selector_index != index:
                entry.also_selected_by.append(index)
    return list(selected.values())


def merged(last: Inventory, fresh: Inventory, device_ids: Collection[int]) -> Inventory:
    """`last` with everything of `device_ids` replaced by what `fresh` read of them (pure)."""
    old = [selected for selected in last.devices if selected.device.id in device_ids]
    old_interfaces = {interface.id for s in old for interface in last.bmc_interfaces.get(s.device.id, ())}
    old_oob = {s.device.oob_ip.id for s in old if s.device.oob_ip is not None}
    kept = [selected for selected in last.devices if selected.device.id not in device_ids]
    return Inventory(
        clusters_by_selector=last.clusters_by_selector,
        # A full read's order: by first selector, then by id.
        devices=sorted([*kept, *fresh.devices], key=lambda s: (s.selector_index, s.device.id)),
        sites={**last.sites, **fresh.sites},
        selector_errors=last.selector_errors,
        bmc_interfaces={
            **{device_id: ports for device_id, ports in last.bmc_interfaces.items() if device_id not in device_ids},
            **fresh.bmc_interfaces,
        },
        bmc_addresses={
            **{port: addresses for port, addresses in last.bmc_addresses.items() if port not in old_interfaces},
            **fresh.bmc_addresses,
        },
        oob_interfaces={
            **{ip_id: port for ip_id, port in last.oob_interfaces.items() if ip_id not in old_oob},
            **fresh.oob_interfaces,
        },
    )


@dataclass(frozen=True)
class InventoryDelta:
    inventory: Inventory  # as a full read would give it now
    device_ids: frozenset[int]  # the devices read again, selected or not (any more)


def patch_inventory(
    netbox: NetBox,
    last: Inventory,
    selectors: Sequence[ClusterSelector],
    default_statuses: Sequence[str],
    changes: ChangeSet,
    also: Collection[int] = (),
) -> InventoryDelta | None:
    """The inventory a full read would give now, from `last` and a read of what `changes` name and of the
    devices `also` (whose other facts the caller knows they change); None when a full read is needed (see
    the module's docstring)."""
    affected = affected_devices(last, changes)
    if affected is None or cheaper_to_read_whole(len(affected | set(also)), len(last.devices)):
        return None
    device_ids = frozenset(affected | set(also))
    changed_sites = changes.ids(SITE) & set(last.sites)
    devices, sites = netbox.both(
        lambda: netbox.list_by_ids(DEVICES, "id", device_ids),
        lambda: netbox.list_by_ids(SITES, "id", changed_sites),
    )
    selected = select_devices(devices, last.clusters_by_selector, selectors, default_statuses)
    known_sites = {**last.sites, **{site.id: site for site in sites}}
    new_sites = {s.device.site.id for s in selected} - set(known_sites)
    known_sites |= {site.id: site for site in netbox.list_by_ids(SITES, "id", new_sites)}
    fresh = Inventory(last.clusters_by_selector, selected, known_sites, last.selector_errors)
    if selected:
        read_bmc_interfaces(netbox, fresh, set(), by_ids=True)
    return InventoryDelta(merged(last, fresh, device_ids), device_ids)


def boot_devices(boot: BootInterfaces, changes: ChangeSet) -> set[int]:
    """The devices whose boot port (or a member of it, a LAG) or primary address `changes` name."""
    by_interface: dict[int, int] = {}
    for device_id, interface in boot.primary.items():
        by_interface[interface.id] = device_id
        for member in boot.lag_members.get(interface.id, ()):
            by_interface[member.id] = device_id
    by_address = {address.id: device_id for device_id, address in boot.primary_address.items()}
    return {by_interface[i] for i in changes.ids(INTERFACE) if i in by_interface} | {
        by_address[a] for a in changes.ids(IP_ADDRESS) if a in by_address
    }


def merged_boot(last: BootInterfaces, fresh: BootInterfaces, device_ids: Collection[int]) -> BootInterfaces:
    """`last` with the boot ports of `device_ids` replaced by what `fresh` read of them (pure)."""
    old_lags = {last.primary[device_id].id for device_id in device_ids if device_id in last.primary}
    return BootInterfaces(
        primary={**{d: port for d, port in last.primary.items() if d not in device_ids}, **fresh.primary},
        primary_address={
            **{d: address for d, address in last.primary_address.items() if d not in device_ids},
            **fresh.primary_address,
        },
        lag_members={
            **{lag: members for lag, members in last.lag_members.items() if lag not in old_lags},
            **fresh.lag_members,
        },
    )
