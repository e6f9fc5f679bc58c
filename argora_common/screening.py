"""The first half of every device plan: which selected devices can be used, under which name, with
which credentials and BMC access, and why the others cannot (shared by the controllers that register
BMCs, so both skip a device for the same reasons)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from argora_common.bmc import BMCAccess, DeviceSkippedError, bmc_access
from argora_common.converge import Problems, name_devices
from argora_common.crds import DeviceProblem
from argora_common.credentials import BMCCredentials, CredentialsProblem
from argora_common.inventory import Inventory, SelectedDevice
from argora_common.netbox_schema import Device
from argora_common.status import short_list


@dataclass
class DevicePlan:
    """What every plan of per-device objects reports besides the objects themselves."""

    problems: list[DeviceProblem] = field(default_factory=list)  # devices skipped
    # Devices whose objects are written, but with something left out (a MAC NetBox is unclear about).
    notes: list[DeviceProblem] = field(default_factory=list)
    # Every device NetBox selected, usable or not: objects of a skipped device are kept, never pruned.
    selected_device_ids: set[int] = field(default_factory=set)
    # Built on a delta read (NetBox's changes read again on top of the last read): the devices whose
    # objects are planned as last time need no convergence.
    delta: bool = False


@dataclass(frozen=True)
class UsableDevice:
    selected: SelectedDevice
    name: str  # its Kubernetes name
    credentials: BMCCredentials
    access: BMCAccess

    @property
    def device(self) -> Device:
        return self.selected.device


class Screening:
    """Screens the devices of an inventory once; `problems` and `notes` collect what was found."""

    def __init__(self, inventory: Inventory, *, max_name_length: int = 253) -> None:
        self.inventory = inventory
        devices = [selected.device for selected in inventory.devices]
        self.problems = Problems(devices)
        self.notes = Problems(devices)
        self.names = name_devices(devices, self.problems, max_name_length)

    def usable(
        self,
        credentials: Callable[[SelectedDevice], BMCCredentials | CredentialsProblem],
        access: Callable[[Device, Inventory], BMCAccess] = bmc_access,
    ) -> Iterator[UsableDevice]:
        """The devices with a name, credentials (or why there are none) and a BMC address no other
        device has, in NetBox order."""
        candidates: list[UsableDevice] = []
        for selected in self.inventory.devices:
            device = selected.device
            name = self.names.get(device.id)
            if name is None:
                continue
            creds = credentials(selected)
            if isinstance(creds, CredentialsProblem):
                self.problems.add(device.id, creds.reason, creds.message)
                continue
            try:
                found = access(device, self.inventory)
            except DeviceSkippedError as skipped:
                self.problems.add(device.id, skipped.reason, str(skipped))
                continue
            candidates.append(UsableDevice(selected, name, creds, found))
        # Two devices at one BMC address (the same address in two VRFs, or on another device's port) would
        # be one BMC registered twice, with each device's credentials: which device it is, is unknown.
        by_ip: dict[str, list[UsableDevice]] = defaultdict(list)
        for candidate in candidates:
            by_ip[str(candidate.access.ip)].append(candidate)
        for candidate in candidates:
            sharing = by_ip[str(candidate.access.ip)]
            if len(sharing) == 1:
                yield candidate
                continue
            others = sorted(other.device.name or f"#{other.device.id}" for other in sharing if other is not candidate)
            self.problems.add(
                candidate.device.id,
                "DuplicateOOBIP",
                f"BMC address {candidate.access.ip} is also that of device(s) {short_list(others)}",
            )

    def finish[P: DevicePlan](self, plan: P) -> P:
        plan.problems = self.problems.items
        plan.notes = self.notes.items
        plan.selected_device_ids = {selected.device.id for selected in self.inventory.devices}
        return plan
