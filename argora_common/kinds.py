"""The upstream kinds more than one controller reads or writes: where each lives in the API."""

from __future__ import annotations

from typing import Final

from argora_common.kube import Kind

METAL_GROUP: Final = "metal.ironcore.dev"
IPAM_GROUP: Final = "ipam.cluster.x-k8s.io"

BMC: Final = Kind(METAL_GROUP, "v1alpha1", "BMC", "bmcs", namespaced=False)
BMC_SECRET: Final = Kind(METAL_GROUP, "v1alpha1", "BMCSecret", "bmcsecrets", namespaced=False)
SERVER: Final = Kind(METAL_GROUP, "v1alpha1", "Server", "servers", namespaced=False)
SERVER_CLAIM: Final = Kind(METAL_GROUP, "v1alpha1", "ServerClaim", "serverclaims", namespaced=True)
GLOBAL_POOL: Final = Kind(IPAM_GROUP, "v1alpha2", "GlobalInClusterIPPool", "globalinclusterippools", namespaced=False)


def ip_address(version: str) -> Kind:
    """Cluster API's IPAddress at `version` (v1beta2 since Cluster API 1.11, v1beta1 before)."""
    return Kind(IPAM_GROUP, version, "IPAddress", "ipaddresses", namespaced=True)


def ip_address_claim(version: str) -> Kind:
    return Kind(IPAM_GROUP, version, "IPAddressClaim", "ipaddressclaims", namespaced=True)
