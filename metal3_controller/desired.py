"""Pure planning: a Cluster API Cluster, NetBox facts and credentials in, BareMetalHosts and Secrets out."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from argora_common.bmc import DeviceSkippedError, bmc_access, topology_labels
from argora_common.converge import Problems, name_devices
from argora_common.crds import ClusterSelector, DeviceProblem
from argora_common.credentials import BMCCredentials
from argora_common.inventory import BootInterfaces, Inventory
from argora_common.kube import ARGORA_DOMAIN, Kind, Owner, label_value
from argora_common.netbox import Device, Interface, Prefix
from metal3_controller.network_data import network_data
from metal3_controller.settings import Metal3Settings

FIELD_MANAGER: Final = "argora-metal3"
BARE_METAL_HOST: Final = Kind("metal3.io", "v1alpha1", "BareMetalHost", "baremetalhosts", namespaced=True)
CAPI_CLUSTER: Final = Kind("cluster.x-k8s.io", "v1beta2", "Cluster", "clusters", namespaced=True)

NETBOX_CLUSTER_ANNOTATION: Final = f"{ARGORA_DOMAIN}/netbox-cluster"
CREDENTIALS_ANNOTATION: Final = f"{ARGORA_DOMAIN}/bmc-credentials"
PRUNE_ANNOTATION: Final = f"{ARGORA_DOMAIN}/prune"
MAX_PRUNE_ANNOTATION: Final = f"{ARGORA_DOMAIN}/max-prune-per-pass"
SYNC_STATUS_ANNOTATION: Final = f"{ARGORA_DOMAIN}/sync-status"
# The original Argora operator's opt-in: the value is the NetBox cluster type, the name the Cluster's.
CLUSTER_ROLE_LABEL: Final = "discovery.inf.sap.cloud/clusterRole"
PAUSED_ANNOTATION: Final = "cluster.x-k8s.io/paused"
CLUSTER_NAME_LABEL: Final = "cluster.x-k8s.io/cluster-name"
# Metal3 refuses to change these once the host is registered: drift is reported, never forced.
REGISTRATION_FIELDS: Final = (("bmc", "address"), ("bootMACAddress",))


def netbox_selector(cluster: Mapping[str, Any]) -> ClusterSelector | None:
    """Which NetBox cluster a Cluster asks for, or None when it did not opt in."""
    metadata = cluster["metadata"]
    annotated = (metadata.get("annotations") or {}).get(NETBOX_CLUSTER_ANNOTATION)
    if annotated:
        return ClusterSelector(name=annotated)
    cluster_type = (metadata.get("labels") or {}).get(CLUSTER_ROLE_LABEL)
    if cluster_type:
        return ClusterSelector(name=metadata["name"], type=cluster_type)
    return None


def is_paused(cluster: Mapping[str, Any]) -> bool:
    annotations = cluster["metadata"].get("annotations") or {}
    return bool((cluster.get("spec") or {}).get("paused")) or PAUSED_ANNOTATION in annotations


@dataclass
class DesiredHost:
    device_id: int
    device_name: str
    name: str
    host: dict[str, Any]
    secret: dict[str, Any]
    network_secret: dict[str, Any] | None = None


@dataclass
class Plan:
    hosts: list[DesiredHost] = field(default_factory=list)
    problems: list[DeviceProblem] = field(default_factory=list)
    selected_device_ids: set[int] = field(default_factory=set)


def boot_mac(device: Device, boot: BootInterfaces) -> str | None:
    """The MAC of the interface carrying the primary IP, or of the first member of that LAG."""
    interface: Interface | None = boot.primary.get(device.id)
    if interface is not None and interface.type == "lag":
        members = sorted(boot.lag_members.get(interface.id, []), key=lambda member: member.name)
        interface = next((member for member in members if member.mac_address), None)
    return interface.mac_address.lower() if interface and interface.mac_address else None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_name(host_name: str) -> str:
    return f"{host_name}-bmc-secret"


def network_secret_name(host_name: str) -> str:
    return f"{host_name}-network-data"


def plan(
    cluster: Mapping[str, Any],
    inventory: Inventory,
    boot: BootInterfaces,
    credentials: BMCCredentials | str,
    settings: Metal3Settings,
    prefixes: Sequence[Prefix] = (),
) -> Plan:
    namespace, cluster_name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    owner = Owner(namespace, cluster_name, FIELD_MANAGER)
    result = Plan()
    problems = Problems(selected.device for selected in inventory.devices)
    # A host's name is also a label value (its Secrets' names derive from it): at most 63 characters.
    names = name_devices((selected.device for selected in inventory.devices), problems, max_length=63)
    for selected in inventory.devices:
        device = selected.device
        result.selected_device_ids.add(device.id)
        name = names.get(device.id)
        if name is None:
            continue
        if isinstance(credentials, str):
            problems.add(device.id, "CredentialsUnavailable", credentials)
            continue
        try:
            access = bmc_access(device, inventory)
        except DeviceSkippedError as skipped:
            problems.add(device.id, skipped.reason, str(skipped))
            continue
        labels = {
            **{key: label_value(value) for key, value in topology_labels(device, inventory).items() if value},
            CLUSTER_NAME_LABEL: label_value(cluster_name),
            f"{settings.label_prefix}/device-id": str(device.id),
            **(
                {f"{settings.label_prefix}/role": label_value(device.role.slug)}
                if device.role and device.role.slug
                else {}
            ),
            **owner.labels(),
        }
        spec: dict[str, Any] = {
            "online": True,
            "bmc": {
                "address": settings.bmc_address(device.device_type.manufacturer.slug or "", str(access.ip)),
                "credentialsName": secret_name(name),
                "disableCertificateVerification": settings.disable_certificate_verification,
            },
        }
        mac = boot_mac(device, boot)
        if mac:
            spec["bootMACAddress"] = mac
        hints = settings.root_device_hints.get(device.device_type.slug)
        if hints is not None:
            spec["rootDeviceHints"] = hints.model_dump(exclude_none=True)
        secret = {
            "metadata": {"name": secret_name(name), "namespace": namespace, "labels": labels},
            "type": "Opaque",
            "data": {"username": _b64(credentials.username), "password": _b64(credentials.password.get_secret_value())},
        }
        network_secret = None
        data = network_data(device, boot, prefixes, settings.gateway_custom_field) if settings.network_data else None
        if data is not None:
            network_secret = {
                "metadata": {"name": network_secret_name(name), "namespace": namespace, "labels": labels},
                "type": "Opaque",
                "data": {"networkData": _b64(json.dumps(data, sort_keys=True))},
            }
            spec["networkData"] = {"name": network_secret_name(name), "namespace": namespace}
        host = {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}
        result.hosts.append(DesiredHost(device.id, device.name or "", name, host, secret, network_secret))
    result.problems = problems.items
    return result


def registration_drift(desired: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields Metal3 will not change once registered, where NetBox and the host disagree: path -> (want, have)."""
    drift: dict[str, tuple[Any, Any]] = {}
    for path in REGISTRATION_FIELDS:
        want: Any = desired["spec"]
        have: Any = live.get("spec") or {}
        for key in path:
            want = want.get(key) if isinstance(want, Mapping) else None
            have = have.get(key) if isinstance(have, Mapping) else None
        if have is not None and want != have:
            drift[".".join(("spec", *path))] = (want, have)
    return drift


def keep_registered(desired: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    """`desired` with the live values of the registration fields (applying new ones would be refused)."""
    kept: dict[str, Any] = {**desired, "spec": {**desired["spec"], "bmc": dict(desired["spec"]["bmc"])}}
    live_spec = live.get("spec") or {}
    kept["spec"]["bmc"]["address"] = (live_spec.get("bmc") or {}).get("address", kept["spec"]["bmc"]["address"])
    if "bootMACAddress" in live_spec:
        kept["spec"]["bootMACAddress"] = live_spec["bootMACAddress"]
    return kept
