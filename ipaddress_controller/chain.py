"""Which NetBox device an IPAddress is for, from the Kubernetes objects between them:
IPAddress → IPAddressClaim → its owner ServerClaim → Server → BMC, whose label argora-ironcore wrote
names the device. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from argora_common.bmc import DeviceNote

type Key = tuple[str, str]  # (namespace, name) of an IPAddress


def key_of(obj: Mapping[str, Any]) -> Key:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


@dataclass(frozen=True)
class Chain:
    """The NetBox device an IPAddress belongs to, by id when argora-ironcore labelled the BMC."""

    device_id: int | None
    device_name: str


class Unresolved(DeviceNote):
    """Why the chain from an IPAddress to its device is not complete (yet)."""


@dataclass(frozen=True)
class Cluster:
    """The Kubernetes objects between an IPAddress and its BMC, by key (servers and BMCs by name)."""

    claims: Mapping[Key, Mapping[str, Any]]
    server_claims: Mapping[Key, Mapping[str, Any]]
    servers: Mapping[str, Mapping[str, Any]]
    bmcs: Mapping[str, Mapping[str, Any]]


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _ref_name(obj: Mapping[str, Any], ref: str) -> str:
    return str((spec(obj).get(ref) or {}).get("name") or "")


def resolve(address: Mapping[str, Any], cluster: Cluster, device_id_label: str) -> Chain | Unresolved:
    """IPAddress → IPAddressClaim → its owner ServerClaim → Server → BMC → the NetBox device."""
    namespace = address["metadata"]["namespace"]
    claim_name = _ref_name(address, "claimRef")
    claim = cluster.claims.get((namespace, claim_name))
    if claim is None:
        return Unresolved("ClaimNotFound", f"IPAddressClaim {namespace}/{claim_name} does not exist")
    owners = claim["metadata"].get("ownerReferences") or []
    server_claim_name = next((o["name"] for o in owners if o.get("kind") == "ServerClaim"), None)
    if server_claim_name is None:
        return Unresolved("NoServerClaim", f"IPAddressClaim {namespace}/{claim_name} is owned by no ServerClaim")
    server_claim = cluster.server_claims.get((namespace, server_claim_name))
    if server_claim is None:
        return Unresolved("ServerClaimNotFound", f"ServerClaim {namespace}/{server_claim_name} does not exist")
    server_name = _ref_name(server_claim, "serverRef")
    if not server_name:
        return Unresolved(
            "ServerClaimNotBound", f"ServerClaim {namespace}/{server_claim_name} is bound to no Server yet"
        )
    server = cluster.servers.get(server_name)
    if server is None:
        return Unresolved("ServerNotFound", f"Server {server_name} does not exist")
    bmc_name = _ref_name(server, "bmcRef")
    if not bmc_name:
        return Unresolved("NoBMC", f"Server {server_name} has no bmcRef")
    bmc = cluster.bmcs.get(bmc_name) or {}
    label = ((bmc.get("metadata") or {}).get("labels") or {}).get(device_id_label, "")
    return Chain(int(label) if label.isdigit() else None, bmc_name)
