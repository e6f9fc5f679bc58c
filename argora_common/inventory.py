"""What the controllers need to know of NetBox, read in bulk for a set of cluster selectors.

Requests per read: for each selector, the pages of its clusters and of their devices; then the pages
of the devices' sites and of the BMC-named interfaces at those sites (`remoteboard` or a vendor name,
filtered by site rather than by device ids); the OOB IPs in id chunks, to learn which interface each
one is assigned to (NetBox's own link from a device to its BMC port), and those interfaces when they
are not BMC-named; and, only for devices without an OOB IP, the addresses on their BMC interfaces in
id chunks. Interfaces come with their MAC objects (`mac_addresses`), so MACs cost no request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, SITE, NetBoxId
from argora_common.crds import DEFAULT_BMC_INTERFACE_NAMES, ClusterSelector
from argora_common.netbox import FilterValue, NetBox, NetBoxRejectedError, id_chunks
from argora_common.netbox_schema import (
    CLUSTERS,
    DEVICES,
    INTERFACES,
    IP_ADDRESSES,
    SITES,
    Cluster,
    Device,
    Interface,
    IPAddress,
    Site,
)

BMC_INTERFACE_NAME = "remoteboard"
# Names a BMC port has before argora-update renames it (or when it never runs), matched case-insensitively.
BMC_INTERFACE_NAMES = (BMC_INTERFACE_NAME, *DEFAULT_BMC_INTERFACE_NAMES)


class AmbiguousMACError(Exception):
    """An interface has several MAC addresses and none is marked primary: which one is meant is unknown."""


def interface_mac(interface: Interface) -> str | None:
    """An interface's MAC: its primary MAC, else its only assigned MAC (NetBox 4.2+ keeps MACs as objects,
    and interfaces made through the API or migrated with several MACs often have none marked primary)."""
    if interface.primary_mac_address is not None:
        return interface.primary_mac_address.mac_address.lower()
    if interface.mac_address:
        return interface.mac_address.lower()
    macs = sorted({mac.mac_address.lower() for mac in interface.mac_addresses})
    if len(macs) > 1:
        raise AmbiguousMACError(f"interface {interface.name} has MACs {', '.join(macs)} and none is primary")
    return macs[0] if macs else None


@dataclass
class SelectedDevice:
    """A device and the first selector (by index in spec.clusters) that selected it."""

    device: Device
    selector_index: int
    # Later selectors that selected it too (two entries matching one cluster): each names its credentials.
    also_selected_by: list[int] = field(default_factory=list)


@dataclass
class Inventory:
    clusters_by_selector: list[list[Cluster]]
    devices: list[SelectedDevice]
    sites: dict[int, Site]
    # Why a selector matched nothing when NetBox refused its query (a slug that does not exist).
    selector_errors: dict[int, str] = field(default_factory=dict)
    bmc_interfaces: dict[int, list[Interface]] = field(default_factory=dict)  # BMC-named, by device id
    bmc_addresses: dict[int, list[IPAddress]] = field(default_factory=dict)  # by interface id
    # The interface each OOB IP is assigned to, by IP id; it may belong to another device.
    oob_interfaces: dict[int, Interface] = field(default_factory=dict)

    @property
    def cluster_count(self) -> int:
        return len({cluster.id for clusters in self.clusters_by_selector for cluster in clusters})

    def refs(self) -> set[NetBoxId]:
        """The NetBox objects this read depends on: a change to any of them may change its result."""
        refs = selection_refs(self.clusters_by_selector, self.devices)
        refs |= {(SITE, site_id) for site_id in self.sites}
        refs |= {(INTERFACE, i.id) for interfaces in self.bmc_interfaces.values() for i in interfaces}
        refs |= {(INTERFACE, interface.id) for interface in self.oob_interfaces.values()}
        refs |= {(IP_ADDRESS, ip_id) for ip_id in self.oob_interfaces}
        refs |= {(IP_ADDRESS, selected.device.oob_ip.id) for selected in self.devices if selected.device.oob_ip}
        refs |= {(IP_ADDRESS, a.id) for addresses in self.bmc_addresses.values() for a in addresses}
        return refs


def selection_refs(
    clusters_by_selector: Sequence[Sequence[Cluster]], devices: Sequence[SelectedDevice]
) -> set[NetBoxId]:
    """The clusters selected and their devices: a device that joins or leaves names its cluster."""
    refs = {(CLUSTER, cluster.id) for clusters in clusters_by_selector for cluster in clusters}
    return refs | {(DEVICE, selected.device.id) for selected in devices}


def cluster_filters(selector: ClusterSelector) -> dict[str, FilterValue]:
    """The NetBox cluster query for one selector: only the criteria it sets (all must match)."""
    filters: dict[str, FilterValue] = {}
    for criterion in ("name", "region", "type", "site", "tenant"):
        value = getattr(selector, criterion)
        if value is not None:
            filters[criterion] = value
    if selector.tags:
        filters["tag"] = list(selector.tags)
    return filters


@dataclass
class Selection:
    """The clusters each selector matched and their devices (each once, with its first selector)."""

    clusters_by_selector: list[list[Cluster]]
    devices: list[SelectedDevice]
    selector_errors: dict[int, str]


@dataclass
class _SelectorRead:
    clusters: list[Cluster]
    devices: list[Device]
    error: str | None = None


def _device_filters(selector: ClusterSelector, default_statuses: Sequence[str]) -> dict[str, FilterValue]:
    filters: dict[str, FilterValue] = {"status": list(selector.statuses or default_statuses)}
    if selector.role is not None:
        filters["role"] = selector.role
    return filters


def cluster_id_chunks(clusters: Sequence[Cluster], page_size: int) -> list[list[int]]:
    """The clusters' ids in groups of about one page of devices (by NetBox's device counts), each group
    short enough for the request line: the groups are read side by side instead of page after page."""
    groups: list[list[int]] = []
    devices_in_last = page_size
    for cluster in sorted(clusters, key=lambda cluster: cluster.id):
        count = cluster.device_count if cluster.device_count is not None else page_size
        if devices_in_last + count > page_size:
            groups.append([])
            devices_in_last = 0
        groups[-1].append(cluster.id)
        devices_in_last += count
    return [chunk for group in groups for chunk in id_chunks(group, "cluster_id")]


def _devices_of(netbox: NetBox, clusters: Sequence[Cluster], filters: dict[str, FilterValue]) -> list[Device]:
    chunks = cluster_id_chunks(clusters, netbox.page_size)
    pages = netbox.in_parallel(lambda chunk: netbox.select(DEVICES, cluster_id=chunk, **filters), chunks)
    return sorted((device for page in pages for device in page), key=lambda device: device.id)


def _read_selector(netbox: NetBox, selector: ClusterSelector, default_statuses: Sequence[str]) -> _SelectorRead:
    try:
        clusters = netbox.select(CLUSTERS, **cluster_filters(selector))
    except NetBoxRejectedError as error:
        # NetBox answers 400 to a slug it does not know: this selector matches nothing.
        if error.status_code != 400:
            raise
        return _SelectorRead([], [], str(error))
    if not clusters:
        return _SelectorRead([], [])
    return _SelectorRead(clusters, _devices_of(netbox, clusters, _device_filters(selector, default_statuses)))


def _read_named(
    netbox: NetBox, selectors: Sequence[ClusterSelector], default_statuses: Sequence[str]
) -> list[_SelectorRead]:
    """Selectors that each name a cluster and agree on everything else, read as one: the clusters of all
    the names in one request, their devices in about one request per page."""
    names = {selector.name for selector in selectors if selector.name is not None}
    clusters = netbox.list_by_ids(CLUSTERS, "name", names)
    devices = _devices_of(netbox, clusters, _device_filters(selectors[0], default_statuses)) if clusters else []
    by_cluster: dict[int, list[Device]] = defaultdict(list)
    for device in devices:
        if device.cluster is not None:
            by_cluster[device.cluster.id].append(device)
    reads = []
    for selector in selectors:
        # NetBox's name filter is exact (case-sensitive), and so is this.
        named = [cluster for cluster in clusters if cluster.name == selector.name]
        selected = sorted((d for cluster in named for d in by_cluster[cluster.id]), key=lambda device: device.id)
        reads.append(_SelectorRead(named, selected))
    return reads


def shared_read_key(selector: ClusterSelector, default_statuses: Sequence[str]) -> tuple[object, ...] | None:
    """What selectors must agree on to be read together: they name one cluster and set no other
    cluster criterion, and select the same devices of it. None: the selector is read on its own."""
    if selector.name is None or selector.tags or any((selector.region, selector.type, selector.site, selector.tenant)):
        return None
    return (tuple(sorted(selector.statuses or default_statuses)), selector.role)


def read_selection(netbox: NetBox, selectors: Sequence[ClusterSelector], default_statuses: Sequence[str]) -> Selection:
    """Selectors that only name clusters are read together (one request for the clusters, not one per
    name), the others side by side; a device selected twice counts for the first selector."""
    groups: dict[object, list[int]] = defaultdict(list)
    for index, selector in enumerate(selectors):
        key = shared_read_key(selector, default_statuses)
        groups[key if key is not None else ("alone", index)].append(index)

    def read_group(indexes: list[int]) -> list[_SelectorRead]:
        if len(indexes) == 1:
            return [_read_selector(netbox, selectors[indexes[0]], default_statuses)]
        return _read_named(netbox, [selectors[index] for index in indexes], default_statuses)

    group_indexes = list(groups.values())
    reads: dict[int, _SelectorRead] = {}
    for indexes, group_reads in zip(group_indexes, netbox.in_parallel(read_group, group_indexes), strict=True):
        reads.update(zip(indexes, group_reads, strict=True))
    devices: dict[int, SelectedDevice] = {}
    for index in range(len(selectors)):
        for device in reads[index].devices:
            selected = devices.setdefault(device.id, SelectedDevice(device, index))
            if selected.selector_index != index:
                selected.also_selected_by.append(index)
    errors = {index: read.error for index, read in reads.items() if read.error is not None}
    return Selection([reads[index].clusters for index in range(len(selectors))], list(devices.values()), errors)


def read_inventory(netbox: NetBox, selectors: Sequence[ClusterSelector], default_statuses: Sequence[str]) -> Inventory:
    selection = read_selection(netbox, selectors, default_statuses)
    site_ids = {selected.device.site.id for selected in selection.devices}
    sites = {site.id: site for site in netbox.list_by_ids(SITES, "id", site_ids)} if site_ids else {}
    inventory = Inventory(selection.clusters_by_selector, selection.devices, sites, selection.selector_errors)
    if selection.devices:
        read_bmc_interfaces(netbox, inventory, site_ids)
    return inventory


def by_site_is_cheaper(netbox: NetBox, devices: int, sites: Sequence[Site]) -> bool:
    """Whether the BMC interfaces of `devices` devices cost fewer rounds of requests read by site (pages
    one after the other, about one interface per device of the sites) than by device ids (chunks side by
    side). Sites NetBox gave no device count for are read by site, as before NetBox counted them."""
    if any(site.device_count is None for site in sites):
        return True
    site_pages = -(-sum(site.device_count or 0 for site in sites) // netbox.page_size)
    chunks = sum(1 for _ in id_chunks(range(devices), "device_id"))
    return site_pages <= -(-chunks // netbox.reads_in_flight)


def read_bmc_interfaces(netbox: NetBox, inventory: Inventory, site_ids: set[int], *, by_ids: bool = False) -> None:
    """The BMC ports of the inventory's devices, their OOB IPs' ports and the addresses on ports of devices
    without an OOB IP; by the devices' ids when `by_ids` (a few devices of large sites), else by
    whichever way is cheaper."""
    wanted = {selected.device.id for selected in inventory.devices}
    names: dict[str, FilterValue] = {"name__ie": list(BMC_INTERFACE_NAMES)}
    sites = [inventory.sites[site_id] for site_id in site_ids if site_id in inventory.sites]

    def bmc_named() -> list[Interface]:
        if not by_ids and by_site_is_cheaper(netbox, len(wanted), sites):
            return netbox.list_by_ids(INTERFACES, "site_id", site_ids, **names)
        return netbox.list_by_ids(INTERFACES, "device_id", wanted, **names)

    oob_ids = {selected.device.oob_ip.id for selected in inventory.devices if selected.device.oob_ip is not None}

    def oob_addresses() -> list[IPAddress]:
        return netbox.list_by_ids(IP_ADDRESSES, "id", oob_ids)

    # Independent reads side by side: the interfaces and the OOB IPs, then what each of them leaves open.
    interfaces, oob = netbox.both(bmc_named, oob_addresses)
    by_device: dict[int, list[Interface]] = defaultdict(list)
    by_id: dict[int, Interface] = {}
    for interface in interfaces:
        by_id[interface.id] = interface
        if interface.device.id in wanted:
            by_device[interface.device.id].append(interface)
    inventory.bmc_interfaces = dict(by_device)
    assigned = {
        address.id: address.assigned_object_id
        for address in oob
        if address.assigned_object_type == "dcim.interface" and address.assigned_object_id is not None
    }
    missing = set(assigned.values()) - set(by_id)
    without_oob = [
        interface.id
        for selected in inventory.devices
        if selected.device.oob_ip is None
        for interface in by_device.get(selected.device.id, [])
    ]
    more_interfaces, bmc_addresses = netbox.both(
        lambda: netbox.list_by_ids(INTERFACES, "id", missing),
        lambda: netbox.list_by_ids(IP_ADDRESSES, "interface_id", without_oob),
    )
    known = {**by_id, **{iface.id: iface for iface in more_interfaces}}
    inventory.oob_interfaces = {
        ip_id: known[interface_id] for ip_id, interface_id in assigned.items() if interface_id in known
    }
    by_interface: dict[int, list[IPAddress]] = defaultdict(list)
    for address in bmc_addresses:
        if address.assigned_object_id is not None:
            by_interface[address.assigned_object_id].append(address)
    inventory.bmc_addresses = dict(by_interface)


@dataclass
class BootInterfaces:
    """Per device, the interface carrying its primary IP and, when that is a LAG, the LAG's members."""

    primary: dict[int, Interface] = field(default_factory=dict)  # by device id
    primary_address: dict[int, IPAddress] = field(default_factory=dict)  # by device id
    lag_members: dict[int, list[Interface]] = field(default_factory=dict)  # by LAG interface id

    def refs(self) -> set[NetBoxId]:
        refs = {(INTERFACE, interface.id) for interface in self.primary.values()}
        refs |= {(IP_ADDRESS, address.id) for address in self.primary_address.values()}
        return refs | {(INTERFACE, member.id) for members in self.lag_members.values() for member in members}


def read_boot_interfaces(netbox: NetBox, devices: Sequence[Device]) -> BootInterfaces:
    """Where each device boots from; requests: id chunks of primary IPs, their interfaces, LAG members."""
    primary_ip_ids = {
        ip.id for device in devices for ip in (device.primary_ip4 or device.primary_ip6,) if ip is not None
    }
    addresses = netbox.list_by_ids(IP_ADDRESSES, "id", primary_ip_ids)
    interface_ids = {
        address.assigned_object_id
        for address in addresses
        if address.assigned_object_type == "dcim.interface" and address.assigned_object_id is not None
    }
    interfaces = {iface.id: iface for iface in netbox.list_by_ids(INTERFACES, "id", interface_ids)}
    addresses_by_id = {address.id: address for address in addresses}
    result = BootInterfaces()
    for device in devices:
        ip = device.primary_ip4 or device.primary_ip6
        address = addresses_by_id.get(ip.id) if ip else None
        interface = interfaces.get(address.assigned_object_id or -1) if address else None
        if address is not None and interface is not None and interface.device.id == device.id:
            result.primary[device.id] = interface
            result.primary_address[device.id] = address
    lag_ids = [iface.id for iface in result.primary.values() if iface.type == "lag"]
    members: dict[int, list[Interface]] = defaultdict(list)
    for member in netbox.list_by_ids(INTERFACES, "lag_id", lag_ids):
        if member.lag is not None:
            members[member.lag.id].append(member)
    result.lag_members = dict(members)
    return result
