"""Pure planning: a Cluster API Cluster, NetBox facts and credentials in, BareMetalHosts and Secrets out."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from argora_common.bmc import device_name_labels, topology_labels
from argora_common.converge import DesiredObjects
from argora_common.crds import ClusterSelector
from argora_common.credentials import BMCCredentials, CredentialsProblem
from argora_common.identity import ARGORA_METAL3
from argora_common.inventory import AmbiguousMACError, BootInterfaces, Inventory, interface_mac
from argora_common.kube import ARGORA_DOMAIN, Kind, Owner, b64
from argora_common.names import label_value
from argora_common.netbox_schema import Device, Interface, Prefix
from argora_common.screening import DevicePlan, Screening
from metal3_controller.network_data import network_data
from metal3_controller.settings import Metal3Settings

FIELD_MANAGER: Final = ARGORA_METAL3.field_manager
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


def asked_netbox_cluster(cluster: Mapping[str, Any]) -> str | None:
    """The name of the NetBox cluster a Cluster asks for, or None when it did not opt in."""
    selector = netbox_selector(cluster)
    return selector.name if selector is not None else None


def imported_netbox_cluster(cluster: Mapping[str, Any]) -> str | None:
    """The NetBox cluster whose hosts the Cluster has, as its sync-status says."""
    raw = (cluster["metadata"].get("annotations") or {}).get(SYNC_STATUS_ANNOTATION)
    try:
        status = json.loads(raw) if raw else {}
    except ValueError:
        return None
    found = status.get("netboxCluster") if isinstance(status, dict) else None
    return found if isinstance(found, str) else None


def is_paused(cluster: Mapping[str, Any]) -> bool:
    annotations = cluster["metadata"].get("annotations") or {}
    return bool((cluster.get("spec") or {}).get("paused")) or PAUSED_ANNOTATION in annotations


@dataclass
class DesiredHost(DesiredObjects):
    host: dict[str, Any]
    network_secret: dict[str, Any] | None = None


@dataclass
class Plan(DevicePlan):
    hosts: list[DesiredHost] = field(default_factory=list)


def boot_mac(device: Device, boot: BootInterfaces) -> str | None:
    """The MAC of the interface carrying the primary IP, or of the first member of that LAG with one.

    Raises AmbiguousMACError when that interface has several MACs and none is primary."""
    interface: Interface | None = boot.primary.get(device.id)
    if interface is None or interface.type != "lag":
        return interface_mac(interface) if interface is not None else None
    for member in sorted(boot.lag_members.get(interface.id, []), key=lambda member: member.name):
        mac = interface_mac(member)
        if mac:
            return mac
    return None


def host_role(device: Device, role_tags: Mapping[str, str]) -> str | None:
    """The original operator's role label: from the first device tag in `role_tags` (by tag name or
    slug, case-insensitively), else the device role's slug."""
    tags = {value.lower() for tag in device.tags for value in (tag.name, tag.slug) if value}
    for tag, role in role_tags.items():
        if tag.lower() in tags:
            return role
    return device.role.slug if device.role else None


# The original operator's Secret names, so that replacing it finds its Secrets where it left them.
def secret_name(host_name: str) -> str:
    return f"bmc-secret-{host_name}"


def network_secret_name(host_name: str) -> str:
    return f"networkdata-{host_name}"


def plan(
    cluster: Mapping[str, Any],
    inventory: Inventory,
    boot: BootInterfaces,
    credentials: BMCCredentials | CredentialsProblem,
    settings: Metal3Settings,
    prefixes: Sequence[Prefix] = (),
) -> Plan:
    namespace, cluster_name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    owner = Owner(namespace, cluster_name, FIELD_MANAGER)
    result = Plan()
    netbox_cluster = inventory.clusters_by_selector[0][0].name if inventory.clusters_by_selector[0] else None
    prefix = settings.label_prefix
    # A host's name is also a label value (its Secrets' names derive from it): at most 63 characters.
    screening = Screening(inventory, max_name_length=63)
    for usable in screening.usable(lambda _: credentials):
        device, access, name = usable.device, usable.access, usable.name
        netbox_labels = {
            **topology_labels(device, inventory),
            **device_name_labels(device, prefix),
            f"{prefix}/cluster": netbox_cluster,
            f"{prefix}/role": host_role(device, settings.role_tags),
        }
        labels = {
            **{key: label_value(value) for key, value in netbox_labels.items() if value},
            CLUSTER_NAME_LABEL: label_value(cluster_name),
            f"{prefix}/device-id": str(device.id),
            **owner.labels(),
        }
        spec: dict[str, Any] = {
            "online": True,
            "bmc": {
                "address": settings.bmc_address(device.device_type.manufacturer.slug or "", str(access.ip)),
                "credentialsName": secret_name(name),
                "disableCertificateVerification": bool(settings.disable_certificate_verification),
            },
        }
        try:
            mac = boot_mac(device, boot)
        except AmbiguousMACError as error:
            screening.notes.add(device.id, "AmbiguousMAC", f"{error}; bootMACAddress is left out")
            mac = None
        if mac:
            spec["bootMACAddress"] = mac
        hints = settings.root_device_hints.get(device.device_type.slug)
        if hints is not None:
            spec["rootDeviceHints"] = hints.model_dump(exclude_none=True)
        secret = {
            "metadata": {"name": secret_name(name), "namespace": namespace, "labels": labels},
            "type": "Opaque",
            "data": {
                "username": b64(usable.credentials.username),
                "password": b64(usable.credentials.password.get_secret_value()),
            },
        }
        network_secret = None
        data = network_data(device, boot, prefixes, settings.gateway_custom_field) if settings.network_data else None
        if data is not None:
            network_secret = {
                "metadata": {"name": network_secret_name(name), "namespace": namespace, "labels": labels},
                "type": "Opaque",
                "data": {"networkData": b64(json.dumps(data, sort_keys=True))},
            }
            spec["networkData"] = {"name": network_secret_name(name), "namespace": namespace}
        host = {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}
        result.hosts.append(
            DesiredHost(
                device_id=device.id,
                device_name=device.name or "",
                name=name,
                secret=secret,
                host=host,
                network_secret=network_secret,
            )
        )
    return screening.finish(result)


def address_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP in a Metal3 BMC address such as `idrac-redfish://10.0.0.25/redfish/v1/...`."""
    try:
        host = urlsplit(address).hostname
        return ipaddress.ip_address(host) if host else None
    except ValueError:
        return None


def registration_drift(desired: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields Metal3 will not change once registered, where NetBox and the host disagree: path -> (want, have).

    A BMC address is NetBox's while its IP is: another driver (the original operator registered Dell
    hosts as `idrac-redfish://`) is no drift. A MAC NetBox does not know (or is unclear about) is none."""
    drift: dict[str, tuple[Any, Any]] = {}
    want_spec, have_spec = desired["spec"], live.get("spec") or {}
    want_address, have_address = want_spec["bmc"]["address"], (have_spec.get("bmc") or {}).get("address")
    if have_address is not None and address_ip(str(have_address)) != address_ip(want_address):
        drift["spec.bmc.address"] = (want_address, have_address)
    want_mac, have_mac = want_spec.get("bootMACAddress"), have_spec.get("bootMACAddress")
    if want_mac is not None and have_mac is not None and str(have_mac).lower() != want_mac:
        drift["spec.bootMACAddress"] = (want_mac, have_mac)
    return drift


def keep_registered(
    desired: Mapping[str, Any], live: Mapping[str, Any], *, keep_certificate_verification: bool
) -> dict[str, Any]:
    """`desired` with the live values of the registration fields (applying new ones would be refused) and,
    unless a setting says otherwise, the host's own certificate verification choice."""
    kept: dict[str, Any] = {**desired, "spec": {**desired["spec"], "bmc": dict(desired["spec"]["bmc"])}}
    live_spec = live.get("spec") or {}
    live_bmc = live_spec.get("bmc") or {}
    for key in ("address", *(("disableCertificateVerification",) if keep_certificate_verification else ())):
        if key in live_bmc:
            kept["spec"]["bmc"][key] = live_bmc[key]
    if "bootMACAddress" in live_spec:
        kept["spec"]["bootMACAddress"] = live_spec["bootMACAddress"]
    return kept
