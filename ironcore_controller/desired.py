"""Pure planning: NetBox facts and credentials in, the BMC and BMCSecret objects we want out.

No I/O here: everything a pass decides about a device, and every reason to skip one, is computed
from plain data so it can be tested without servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from argora_common.bmc import BMCAccess, DeviceSkippedError, bmc_access, device_name_labels, topology_labels
from argora_common.converge import DesiredObjects
from argora_common.credentials import BMCCredentials, CredentialsProblem
from argora_common.identity import ARGORA_IRONCORE
from argora_common.inventory import Inventory, SelectedDevice
from argora_common.kube import (
    Owner,
    b64,
)
from argora_common.names import label_value
from argora_common.netbox_schema import Cluster, Device
from argora_common.screening import DevicePlan, Screening
from ironcore_controller.settings import IroncoreSettings

FIELD_MANAGER: Final = ARGORA_IRONCORE.field_manager


@dataclass
class DesiredDevice(DesiredObjects):
    bmc: dict[str, Any]


@dataclass
class Plan(DevicePlan):
    devices: list[DesiredDevice] = field(default_factory=list)
    unmatched_selectors: list[int] = field(default_factory=list)
    # Why nothing may be pruned: a selector NetBox refused (a renamed region or tag slug) says nothing about
    # its devices, whose BMCs would otherwise look gone from NetBox.
    prune_blocked: str = ""


def ipv4_access(device: Device, inventory: Inventory) -> BMCAccess:
    access = bmc_access(device, inventory)
    if access.ip.version != 4:
        raise DeviceSkippedError("IPv6OOBIP", f"OOB IP {access.ip} is IPv6; metal-operator BMC access needs IPv4")
    return access


def entry_credentials(
    selected: SelectedDevice, credentials: Sequence[BMCCredentials | CredentialsProblem]
) -> BMCCredentials | CredentialsProblem:
    """The credentials of the entries that selected the device; entries that disagree leave it without:
    which ones its BMC takes is unknown, and the first entry's would be a silent guess."""
    first = credentials[selected.selector_index]
    differing = [index for index in selected.also_selected_by if credentials[index] != first]
    if not differing:
        return first
    entries = ", ".join(f"spec.clusters[{index}]" for index in (selected.selector_index, *differing))
    return CredentialsProblem(
        reason="AmbiguousCredentials", message=f"selected by {entries}, whose BMC credentials differ"
    )


def device_labels(
    selected: SelectedDevice, cluster: Cluster | None, inventory: Inventory, settings: IroncoreSettings
) -> dict[str, str]:
    device = selected.device
    prefix = settings.label_prefix
    candidates = {
        **topology_labels(device, inventory),
        **device_name_labels(device, prefix),
        f"{prefix}/cluster": cluster.name if cluster else None,
        f"{prefix}/cluster-type": cluster.type.slug if cluster else None,
        f"{prefix}/role": device.role.slug if device.role else None,
        f"{prefix}/platform": device.platform.slug if device.platform else None,
        f"{prefix}/device-type": device.device_type.slug,
        # The original operator's name for the device type label; kept for users' selectors.
        f"{prefix}/type": device.device_type.slug,
        f"{prefix}/device-id": str(device.id),
    }
    return {key: label_value(value) for key, value in candidates.items() if value}


def desired_objects(
    name: str,
    selected: SelectedDevice,
    access: BMCAccess,
    labels: Mapping[str, str],
    credentials: BMCCredentials,
    settings: IroncoreSettings,
) -> tuple[dict[str, Any], dict[str, Any]]:
    metadata = {"name": name, "labels": dict(labels)}
    spec_access: dict[str, str] = {"ip": str(access.ip)}
    if access.mac:
        spec_access["macAddress"] = access.mac
    spec: dict[str, Any] = {
        "access": spec_access,
        "protocol": settings.protocol_for(selected.device.device_type.manufacturer.slug or "").model_dump(
            exclude_none=True
        ),
        "bmcSecretRef": {"name": name},
    }
    if access.hostname:
        spec["hostname"] = access.hostname
    secret = {
        "metadata": metadata,
        "data": {
            "username": b64(credentials.username),
            "password": b64(credentials.password.get_secret_value()),
        },
    }
    return {"metadata": metadata, "spec": spec}, secret


def plan(
    inventory: Inventory,
    credentials: Sequence[BMCCredentials | CredentialsProblem],
    owner: Owner,
    settings: IroncoreSettings,
) -> Plan:
    """`credentials[i]` serves spec.clusters[i]: the credentials, or why there are none."""
    result = Plan()
    result.unmatched_selectors = [i for i, clusters in enumerate(inventory.clusters_by_selector) if not clusters]
    if inventory.selector_errors:
        failed = ", ".join(f"spec.clusters[{index}]" for index in sorted(inventory.selector_errors))
        result.prune_blocked = f"NetBox refused {failed}; nothing is pruned"
    clusters = {cluster.id: cluster for group in inventory.clusters_by_selector for cluster in group}
    screening = Screening(inventory)
    for usable in screening.usable(lambda selected: entry_credentials(selected, credentials), ipv4_access):
        device, access = usable.device, usable.access
        if access.mac_note is not None:
            screening.notes.add(device.id, access.mac_note.reason, access.mac_note.message)
        cluster = clusters.get(device.cluster.id) if device.cluster else None
        labels = {**device_labels(usable.selected, cluster, inventory, settings), **owner.labels()}
        bmc, secret = desired_objects(usable.name, usable.selected, access, labels, usable.credentials, settings)
        result.devices.append(
            DesiredDevice(device_id=device.id, device_name=device.name or "", name=usable.name, secret=secret, bmc=bmc)
        )
    return screening.finish(result)
