"""What a user does with kubectl, for the tests: create, read, wait, request a sync."""

from __future__ import annotations

import ipaddress
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.credentials import OPT_IN_LABEL
from argora_common.kube import OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL
from argora_common.names import name_label_value

ARGORA = ("argora.cloud.sap", "v1alpha1")
METAL = ("metal.ironcore.dev", "v1alpha1")
PLURALS = {"ClusterImport": "clusterimports", "Update": "updates", "IPPoolImport": "ippoolimports"}


def _owner_selector(namespace: str, name: str) -> str:
    """The label selector of the objects an Argora resource owns."""
    return f"{OWNER_NAMESPACE_LABEL}={namespace},{OWNER_NAME_LABEL}={name_label_value(name)}"


def ensure_secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    """A namespace with one BMC credentials Secret in it (opted in), shared by a module's tests (left as it
    is when it exists)."""
    core = client.CoreV1Api(api)
    _unless_exists(core.create_namespace, {"metadata": {"name": namespace}})
    metadata = {"name": name, "labels": {OPT_IN_LABEL: "true"}}
    _unless_exists(core.create_namespaced_secret, namespace, {"metadata": metadata, "stringData": data})


def _unless_exists(create: Callable[..., object], *args: object) -> None:
    try:
        create(*args)
    except ApiException as error:
        if error.status != 409:
            raise


def wait_for[T](probe: Callable[[], T | None], timeout: float = 60, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; its last value is in the error otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise TimeoutError(f"{what} not reached in {timeout:.0f}s; last seen: {last!r}")


class Objects:
    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def create_secret(self, namespace: str, name: str, data: dict[str, str], *, bmc_credentials: bool = True) -> None:
        """`bmc_credentials`: labelled as a Secret that may serve as BMC credentials, as users label theirs."""
        labels = {OPT_IN_LABEL: "true"} if bmc_credentials else {}
        self.core.create_namespaced_secret(
            namespace, {"metadata": {"name": name, "labels": labels}, "stringData": data, "type": "Opaque"}
        )

    def replace_secret_data(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.core.patch_namespaced_secret(name, namespace, {"stringData": data})

    def create_import(self, namespace: str, name: str, spec: dict[str, Any], kind: str = "ClusterImport") -> None:
        body = {"apiVersion": "/".join(ARGORA), "kind": kind, "metadata": {"name": name}, "spec": spec}
        self.custom.create_namespaced_custom_object(*ARGORA, namespace, PLURALS[kind], body)

    def patch_import(self, namespace: str, name: str, patch: dict[str, Any], kind: str = "ClusterImport") -> None:
        self.custom.patch_namespaced_custom_object(*ARGORA, namespace, PLURALS[kind], name, patch)

    def get_import(self, namespace: str, name: str, kind: str = "ClusterImport") -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(*ARGORA, namespace, PLURALS[kind], name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def delete_import(self, namespace: str, name: str, kind: str = "ClusterImport") -> None:
        self.custom.delete_namespaced_custom_object(*ARGORA, namespace, PLURALS[kind], name)

    def synced_import(
        self, namespace: str, name: str, after: str | None = None, timeout: float = 90, kind: str = "ClusterImport"
    ) -> dict[str, Any]:
        """The resource once a pass of its current generation finished (after `after`, if given)."""

        def probe() -> dict[str, Any] | None:
            obj = self.get_import(namespace, name, kind)
            status = (obj or {}).get("status") or {}
            if not obj or status.get("observedGeneration") != obj["metadata"]["generation"]:
                return None
            if after is not None and (status.get("lastSyncTime") or "") <= after:
                return None
            return obj

        return wait_for(probe, timeout, f"{kind} {namespace}/{name} synced")

    def request_sync(self, namespace: str, name: str, kind: str = "ClusterImport") -> str:
        """Ask for a pass now, as a user would with `kubectl annotate`; returns the previous sync time."""
        obj = self.get_import(namespace, name, kind) or {}
        previous = str(((obj.get("status") or {}).get("lastSyncTime")) or "")
        # lastSyncTime has a resolution of one second: make sure the next pass stamps a later one.
        time.sleep(1.05)
        annotation = {"metadata": {"annotations": {"argora.cloud.sap/sync-requested": uuid.uuid4().hex}}}
        self.patch_import(namespace, name, annotation, kind)
        return previous

    def resync(self, namespace: str, name: str, kind: str = "ClusterImport") -> dict[str, Any]:
        return self.synced_import(namespace, name, after=self.request_sync(namespace, name, kind), kind=kind)

    def list_metal(self, plural: str, label_selector: str = "") -> dict[str, dict[str, Any]]:
        items = self.custom.list_cluster_custom_object(*METAL, plural, label_selector=label_selector)["items"]
        return {item["metadata"]["name"]: item for item in items}

    def get_metal(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_cluster_custom_object(*METAL, plural, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def owned(self, plural: str, namespace: str, name: str) -> dict[str, dict[str, Any]]:
        return self.list_metal(plural, _owner_selector(namespace, name))

    def events(self, namespace: str, name: str) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the Events on an object, oldest first."""
        events = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return [(event.type, event.reason, event.message) for event in events]


CAPI = ("cluster.x-k8s.io", "v1beta2")
METAL3 = ("metal3.io", "v1alpha1")
SYNC_STATUS = "argora.cloud.sap/sync-status"


class Clusters:
    """Cluster API Clusters and Metal3 BareMetalHosts, as a user would look at them."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def create(
        self,
        namespace: str,
        name: str,
        annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        paused: bool = False,
    ) -> None:
        body = {
            "apiVersion": "/".join(CAPI),
            "kind": "Cluster",
            "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
            "spec": {"paused": paused},
        }
        self.custom.create_namespaced_custom_object(*CAPI, namespace, "clusters", body)

    def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(*CAPI, namespace, "clusters", name, patch)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(*CAPI, namespace, "clusters", name)
        return found

    def sync_status(self, namespace: str, name: str) -> dict[str, Any] | None:
        raw = (self.get(namespace, name)["metadata"].get("annotations") or {}).get(SYNC_STATUS)
        return json.loads(raw) if raw else None

    def synced(self, namespace: str, name: str, after: str = "", timeout: float = 90) -> dict[str, Any]:
        """The sync-status summary of the first pass that finished after `after` (a lastSyncTime)."""

        def probe() -> dict[str, Any] | None:
            status = self.sync_status(namespace, name)
            return status if status and status["lastSyncTime"] > after else None

        return wait_for(probe, timeout, f"Cluster {namespace}/{name} synced")

    def resync(self, namespace: str, name: str) -> dict[str, Any]:
        previous = (self.sync_status(namespace, name) or {}).get("lastSyncTime", "")
        time.sleep(1.05)  # lastSyncTime has a resolution of one second
        self.patch(
            namespace, name, {"metadata": {"annotations": {"argora.cloud.sap/sync-requested": uuid.uuid4().hex}}}
        )
        return self.synced(namespace, name, after=previous)

    def hosts(self, namespace: str) -> dict[str, dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(*METAL3, namespace, "baremetalhosts")["items"]
        return {item["metadata"]["name"]: item for item in items}

    def secret(self, namespace: str, name: str) -> Any:
        return self.core.read_namespaced_secret(name, namespace)

    def secret_names(self, namespace: str) -> list[str]:
        return [secret.metadata.name for secret in self.core.list_namespaced_secret(namespace).items]

    def events(self, namespace: str, name: str) -> list[tuple[str, str, str]]:
        events = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return [(event.type, event.reason, event.message) for event in events]


IPAM_POOLS = ("ipam.cluster.x-k8s.io", "v1alpha2")
IPAM_ADDRESSES = ("ipam.cluster.x-k8s.io", "v1beta2")


class Pools:
    """GlobalInClusterIPPools and the IPAddresses the in-cluster IPAM provider hands out of them."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)

    def owned(self, namespace: str, name: str) -> dict[str, dict[str, Any]]:
        selector = _owner_selector(namespace, name)
        items = self.custom.list_cluster_custom_object(*IPAM_POOLS, "globalinclusterippools", label_selector=selector)
        return {item["metadata"]["name"]: item for item in items["items"]}

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_cluster_custom_object(*IPAM_POOLS, "globalinclusterippools", name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def create(self, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> None:
        body = {
            "apiVersion": "/".join(IPAM_POOLS),
            "kind": "GlobalInClusterIPPool",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": spec,
        }
        self.custom.create_cluster_custom_object(*IPAM_POOLS, "globalinclusterippools", body)

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        patch = {"metadata": {"annotations": annotations}}
        self.custom.patch_cluster_custom_object(*IPAM_POOLS, "globalinclusterippools", name, patch)

    def allocate(self, namespace: str, pool: str, address: str, prefix: int) -> None:
        """An IPAddress out of `pool`, as the provider writes one for a claim."""
        name = f"{pool}-{address.replace('.', '-').replace(':', '-')}"
        body = {
            "apiVersion": "/".join(IPAM_ADDRESSES),
            "kind": "IPAddress",
            "metadata": {"name": name},
            "spec": {
                "address": address,
                "prefix": prefix,
                "claimRef": {"name": name},
                "poolRef": {"apiGroup": IPAM_POOLS[0], "kind": "GlobalInClusterIPPool", "name": pool},
            },
        }
        self.custom.create_namespaced_custom_object(*IPAM_ADDRESSES, namespace, "ipaddresses", body)


def first_free(pool_spec: Mapping[str, Any]) -> tuple[str, int]:
    """The address the in-cluster provider hands out first from a GlobalInClusterIPPool's spec while none
    is handed out: its lowest that is neither its network's first or last address, nor the gateway, nor
    excluded; and the prefix length the IPAddress gets."""
    prefix = int(pool_spec["prefix"])
    taken = [_span(entry) for entry in pool_spec.get("excludedAddresses") or []]
    if pool_spec.get("gateway"):
        taken.append(_span(pool_spec["gateway"]))
    for first, last in (_span(entry) for entry in pool_spec["addresses"]):
        for value in range(first, last + 1):
            candidate = ipaddress.ip_address(value)
            network = ipaddress.ip_network((candidate, prefix), strict=False)
            reserved = candidate in (network.network_address, network.broadcast_address)
            if not reserved and not any(low <= value <= high for low, high in taken):
                return str(candidate), prefix
    raise ValueError(f"no address to hand out in {pool_spec['addresses']}")


def ipaddress_state(address: Mapping[str, Any]) -> str:
    """The state argora-ipaddress's sync-status annotation gives an IPAddress (Synced, Pending, ...); ''
    before a pass has seen it."""
    status = ((address.get("metadata") or {}).get("annotations") or {}).get(SYNC_STATUS, "")
    match = re.match(r"state=(\w+)", status)
    return match[1] if match else ""


def _span(entry: str) -> tuple[int, int]:
    """The first and last address of a pool entry: an address, a CIDR or a range `first-last`."""
    if "-" in entry:
        first, last = entry.split("-", 1)
        return int(ipaddress.ip_address(first)), int(ipaddress.ip_address(last))
    network = ipaddress.ip_network(entry, strict=False)
    return int(network.network_address), int(network.broadcast_address)


class Machines:
    """The chain metal-operator and Cluster API build for one machine: BMC, Server, ServerClaim, the
    IPAddressClaim it owns, and the IPAddress the IPAM provider writes for that claim."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)

    def server(self, name: str, device_labels: dict[str, str] | None = None) -> None:
        """A BMC (named like its NetBox device, as the original operator's rule wants) and its Server."""
        bmc = {
            "apiVersion": "/".join(METAL), "kind": "BMC",
            "metadata": {"name": name, "labels": device_labels or {}},
            "spec": {"access": {"ip": "192.0.2.1"}, "bmcSecretRef": {"name": name},
                     "protocol": {"name": "Redfish", "port": 443}},
        }  # fmt: skip
        self.custom.create_cluster_custom_object(*METAL, "bmcs", bmc)
        self.server_of(name)

    def server_of(self, bmc: str) -> None:
        """The Server metal-operator makes for a BMC (one of argora-ironcore's, say), named like it."""
        server = {
            "apiVersion": "/".join(METAL), "kind": "Server", "metadata": {"name": bmc},
            "spec": {"systemUUID": str(uuid.uuid4()), "bmcRef": {"name": bmc}},
        }  # fmt: skip
        self.custom.create_cluster_custom_object(*METAL, "servers", server)

    def machine(self, namespace: str, name: str, bmc: str, pool: str, address: str, prefix: int) -> None:
        """The rest of the chain for an existing BMC: its Server, a ServerClaim `name` bound to it with its
        IPAddressClaim, and the IPAddress the provider wrote for that claim."""
        self.server_of(bmc)
        self.claim(namespace, name, bmc, pool)
        self.address(namespace, name, pool, address, prefix)

    def claim(self, namespace: str, name: str, server: str | None, pool: str) -> None:
        """A ServerClaim (bound to `server`, or not yet) and the IPAddressClaim it owns."""
        server_claim = {
            "apiVersion": "/".join(METAL), "kind": "ServerClaim", "metadata": {"name": name},
            "spec": {"image": "example/os:1", "power": "On", **({"serverRef": {"name": server}} if server else {})},
        }  # fmt: skip
        made = self.custom.create_namespaced_custom_object(*METAL, namespace, "serverclaims", server_claim)
        owner = {"apiVersion": "/".join(METAL), "kind": "ServerClaim", "name": name, "uid": made["metadata"]["uid"]}
        ip_claim = {
            "apiVersion": "/".join(IPAM_ADDRESSES), "kind": "IPAddressClaim",
            "metadata": {"name": name, "ownerReferences": [owner]},
            "spec": {"poolRef": {"apiGroup": IPAM_POOLS[0], "kind": "GlobalInClusterIPPool", "name": pool}},
        }  # fmt: skip
        self.custom.create_namespaced_custom_object(*IPAM_ADDRESSES, namespace, "ipaddressclaims", ip_claim)

    def bind(self, namespace: str, name: str, server: str) -> None:
        self.custom.patch_namespaced_custom_object(
            *METAL, namespace, "serverclaims", name, {"spec": {"serverRef": {"name": server}}}
        )

    def address(self, namespace: str, claim: str, pool: str, address: str, prefix: int) -> str:
        """The IPAddress the provider writes for `claim`, named after it; returns its name."""
        body = {
            "apiVersion": "/".join(IPAM_ADDRESSES), "kind": "IPAddress", "metadata": {"name": claim},
            "spec": {"address": address, "prefix": prefix, "claimRef": {"name": claim},
                     "poolRef": {"apiGroup": IPAM_POOLS[0], "kind": "GlobalInClusterIPPool", "name": pool}},
        }  # fmt: skip
        self.custom.create_namespaced_custom_object(*IPAM_ADDRESSES, namespace, "ipaddresses", body)
        return claim

    def get_address(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                *IPAM_ADDRESSES, namespace, "ipaddresses", name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def list_addresses(self, namespace: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            *IPAM_ADDRESSES, namespace, "ipaddresses"
        )["items"]
        return found

    def delete_address(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(*IPAM_ADDRESSES, namespace, "ipaddresses", name)

    def annotations(self, namespace: str, name: str) -> dict[str, str]:
        found = self.get_address(namespace, name) or {}
        return dict((found.get("metadata") or {}).get("annotations") or {})
