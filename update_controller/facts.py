"""What an Update's pass knows of NetBox, and how a delta read changes it (pure, but for the lock of
`OwnWrites`).

A change names objects; the devices it concerns are those it names and the owners, in the last read, of
the interfaces and IPs it names. A delta read reads them again and puts them in place of what the last
read held of them (`merged`). The change feed leaves out the process's own writes: `OwnWrites` says which
devices a read has not seen written.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from argora_common.changes import CLUSTER, DEVICE, INTERFACE, IP_ADDRESS, PLATFORM, ChangeSet, NetBoxId
from argora_common.crds import UpdateSpec
from argora_common.inventory import SelectedDevice, Selection, selection_refs
from argora_common.netbox_schema import Interface, IPAddress, Ref


@dataclass
class Facts:
    spec: UpdateSpec
    selection: Selection
    interfaces: dict[int, list[Interface]]  # by device id: those the corrections look at (`looked_at`)
    addresses: dict[int, list[IPAddress]]  # by interface id
    platform: Ref | None
    writes_seen: int  # the count of OwnWrites when the read began: later writes are not in it


class OwnWrites:
    """The devices the passes of this process wrote to (or NetBox refused a write of), each with the count
    of writing passes at its last: a read begun before is stale for it, and the change feed does not say so
    (it leaves out our own writes). One per process, as an Update's corrections may be devices another
    Update reads too; at most one entry per device."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._last: dict[int, int] = {}  # device id -> count at its last write

    def count(self) -> int:
        with self._lock:
            return self._count

    def wrote(self, device_ids: Iterable[int]) -> None:
        with self._lock:
            self._count += 1
            for device_id in device_ids:
                self._last[device_id] = self._count

    def since(self, count: int) -> set[int]:
        """The devices written to after `count`."""
        with self._lock:
            return {device_id for device_id, at in self._last.items() if at > count}


def looked_at(spec: UpdateSpec) -> Callable[[Interface], bool]:
    """Whether a correction looks at an interface: BMC-named (a vendor's name or the target) or to remove.
    A change of any other interface names its device, which a delta pass then reads again whole."""
    vendor_names = {name.lower() for name in spec.bmc_interface_names}
    prefixes = tuple(spec.remove_interface_prefixes)

    def check(interface: Interface) -> bool:
        name = interface.name
        return name.lower() in vendor_names or name == spec.target_interface_name or name.startswith(prefixes)

    return check


def touched(facts: Facts) -> set[NetBoxId]:
    devices = facts.selection.devices
    refs = selection_refs(facts.selection.clusters_by_selector, devices)
    refs |= {(INTERFACE, interface.id) for interfaces in facts.interfaces.values() for interface in interfaces}
    refs |= {(IP_ADDRESS, address.id) for addresses in facts.addresses.values() for address in addresses}
    # The OOB IPs, wherever they are assigned (the plan shows the current one), and the platforms the plan
    # compares with: a change to them names no device.
    refs |= {(IP_ADDRESS, s.device.oob_ip.id) for s in devices if s.device.oob_ip is not None}
    if facts.platform is not None:
        refs |= {(PLATFORM, facts.platform.id)}
        refs |= {(PLATFORM, s.device.platform.id) for s in devices if s.device.platform is not None}
    return refs


def concerned_devices(facts: Facts, changes: ChangeSet) -> set[int] | None:
    """The ids of the devices whose facts `changes` may have changed (selected before or not): those they
    name, and the owners in `facts` of the interfaces and IPs they name; None when a change may change
    more than those (a cluster's selection, the platform the plan compares with)."""
    if any(object_type in (CLUSTER, PLATFORM) for object_type, _ in changes.changed):
        return None
    owner_of_interface = {iface.id: device_id for device_id, ifaces in facts.interfaces.items() for iface in ifaces}
    owners_of_address: dict[int, set[int]] = defaultdict(set)
    for interface_id, addresses in facts.addresses.items():
        for address in addresses:
            owners_of_address[address.id].add(owner_of_interface[interface_id])
    for selected in facts.selection.devices:
        if selected.device.oob_ip is not None:
            owners_of_address[selected.device.oob_ip.id].add(selected.device.id)
    devices = changes.ids(DEVICE)
    devices |= {owner_of_interface[i] for i in changes.ids(INTERFACE) if i in owner_of_interface}
    for address_id in changes.ids(IP_ADDRESS):
        devices |= owners_of_address.get(address_id, set())
    return devices


def merged(
    last: Facts,
    selected: Sequence[SelectedDevice],
    interfaces: dict[int, list[Interface]],
    addresses: dict[int, list[IPAddress]],
    device_ids: Collection[int],
    writes_seen: int,
) -> Facts:
    """`last` with everything of `device_ids` replaced by what was read again of them: `selected` of them,
    and the selected ones' `interfaces` and `addresses`; the read again began at `writes_seen` (pure)."""
    old_interfaces = {iface.id for device_id in device_ids for iface in last.interfaces.get(device_id, ())}
    kept = [s for s in last.selection.devices if s.device.id not in device_ids]
    # A full read's order: by first selector, then by id.
    devices = sorted([*kept, *selected], key=lambda s: (s.selector_index, s.device.id))
    return Facts(
        last.spec,
        Selection(last.selection.clusters_by_selector, devices, last.selection.selector_errors),
        {**{d: ifaces for d, ifaces in last.interfaces.items() if d not in device_ids}, **interfaces},
        {**{i: found for i, found in last.addresses.items() if i not in old_interfaces}, **addresses},
        last.platform,
        writes_seen,
    )
