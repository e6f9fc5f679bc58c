"""argora-ipaddress as a process against the real API server (Cluster API IPAM and metal-operator CRDs)
and NetBox, with the chain of objects a machine really has: BMC, Server, ServerClaim, IPAddressClaim."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Machines, Pools, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Topology, fresh_network

pytestmark = pytest.mark.integration

SYNC = "argora.cloud.sap/sync-status"
DEVICE_ID = "netbox.argora.cloud.sap/device-id"
INTERFACE_ID = "netbox.argora.cloud.sap/interface-id"
CONFLICTED = "netbox.argora.cloud.sap/conflicted"
IPPOOL_LABELS = {"app.kubernetes.io/managed-by": "argora-ippool"}


@pytest.fixture(scope="module")
def machines(api_client: client.ApiClient) -> Machines:
    return Machines(api_client)


@pytest.fixture(scope="module")
def ipaddress_operator(
    kube: KubeCluster, netbox: NetBoxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One argora-ipaddress for the module, with a NetBox token that may write."""
    env = operator_environment(kube, netbox, netbox.v2_token, ARGORA_RETRY_BASE_SECONDS="1")
    operator = OperatorProcess("ipaddress", tmp_path_factory.mktemp("ipaddress"), env).start()
    yield operator
    operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


class Rack:
    """A NetBox device with LAG1, LAG2 (both LAG-typed), a virtual `LAG3` and eth0; its BMC, Server and a
    pool of Argora's for one network, which NetBox holds as a prefix in a VRF."""

    def __init__(
        self, seeder: NetBoxSeeder, machines: Machines, pools: Pools, prefix: str, *, label_device: bool = True
    ) -> None:
        self.seeder = seeder
        self.machines = machines
        self.topology = Topology(seeder, prefix)
        self.device = self.topology.devices(None, [f"{prefix}-node"], tenant=self.topology.tenant["id"])[0]
        self.interfaces = {
            item["name"]: item
            for item in seeder.create(
                "dcim/interfaces",
                [
                    {"device": self.device["id"], "name": name, "type": kind}
                    for name, kind in (("LAG1", "lag"), ("LAG2", "lag"), ("LAG3", "virtual"), ("eth0", "10gbase-t"))
                ],
            )
        }
        self.network = fresh_network()
        self.vrf = seeder.create_one("ipam/vrfs", name=f"{prefix}-vrf")
        seeder.create_one("ipam/prefixes", prefix=str(self.network), vrf=self.vrf["id"])
        self.pool = f"{prefix}-pool"
        pools.create(
            self.pool,
            {"addresses": [str(self.network)], "prefix": 24, "gateway": str(self.network.network_address + 1)},
            labels=IPPOOL_LABELS,
        )
        labels = {"kubernetes.metal.cloud.sap/device-id": str(self.device["id"])} if label_device else {}
        machines.server(self.device["name"], labels)

    def host(self, offset: int) -> str:
        return str(self.network.network_address + offset)

    def netbox_address(self, offset: int) -> dict[str, Any] | None:
        found = self.seeder.get("ipam/ip-addresses", address=self.host(offset))
        return found[0] if found else None

    def neighbour(self, namespace: str) -> None:
        """Another machine's IPAddress that stays: a cluster whose IPAddresses all went trips the release
        breaker (a wrong kubeconfig more likely than every machine gone)."""
        self.machines.address(namespace, "neighbour", self.pool, self.host(200), 24)

    def primary_ip4(self) -> int | None:
        device = self.seeder.get("dcim/devices", id=self.device["id"])[0]
        return (device.get("primary_ip4") or {}).get("id")


@pytest.fixture
def rack(seeder: NetBoxSeeder, machines: Machines, pools: Pools, prefix: str) -> Rack:
    return Rack(seeder, machines, pools, prefix)


@pytest.fixture(scope="module")
def pools(api_client: client.ApiClient) -> Pools:
    return Pools(api_client)


def synced(machines: Machines, namespace: str, name: str, state: str = "Synced") -> dict[str, str]:
    def probe() -> dict[str, str] | None:
        annotations = machines.annotations(namespace, name)
        return annotations if f"state={state}" in annotations.get(SYNC, "") else None

    return wait_for(probe, timeout=60, what=f"IPAddress {namespace}/{name} {state}")


def test_new_address_goes_on_the_highest_lag_and_becomes_primary(
    ipaddress_operator: OperatorProcess, machines: Machines, rack: Rack, namespace: str
) -> None:
    machines.claim(namespace, "m1", rack.device["name"], rack.pool)
    machines.address(namespace, "m1", rack.pool, rack.host(10), 24)
    annotations = synced(machines, namespace, "m1")
    assert annotations[DEVICE_ID] == str(rack.device["id"])
    assert annotations[INTERFACE_ID] == str(rack.interfaces["LAG2"]["id"])
    assert CONFLICTED not in annotations
    recorded = rack.netbox_address(10)
    assert recorded is not None
    assert recorded["address"] == f"{rack.host(10)}/24"
    assert recorded["assigned_object_id"] == rack.interfaces["LAG2"]["id"]
    # The VRF of the one prefix that is exactly the address's network, the device's tenant, our tag.
    assert recorded["vrf"]["id"] == rack.vrf["id"]
    assert recorded["tenant"]["id"] == rack.topology.tenant["id"]
    assert [tag["slug"] for tag in recorded["tags"]] == ["argora-ipaddress"]
    assert rack.primary_ip4() == recorded["id"]

    # Nothing changed: a later pass writes nothing.
    written = ipaddress_operator.metric(
        "argora_objects_written_total", controller="ipaddress", kind="IPAddress", action="create"
    )
    machines.claim(namespace, "other", None, rack.pool)
    machines.address(namespace, "other", rack.pool, rack.host(11), 24)
    synced(machines, namespace, "other", "Pending")
    assert (
        ipaddress_operator.metric(
            "argora_objects_written_total", controller="ipaddress", kind="IPAddress", action="create"
        )
        == written
    )
    assert rack.netbox_address(11) is None


def test_an_existing_unassigned_address_is_a_conflict_and_the_name_rule_finds_the_device(
    ipaddress_operator: OperatorProcess, machines: Machines, seeder: NetBoxSeeder, pools: Pools, prefix: str,
    namespace: str,
) -> None:  # fmt: skip
    # No device-id label on the BMC (the original operator's BMCs): the device named like the BMC.
    rack = Rack(seeder, machines, pools, prefix, label_device=False)
    # Planned in NetBox on no interface: someone's, as the original operator held it; nothing is assigned.
    existing = seeder.create_one("ipam/ip-addresses", address=f"{rack.host(20)}/24")
    machines.claim(namespace, "m1", rack.device["name"], rack.pool)
    machines.address(namespace, "m1", rack.pool, rack.host(20), 24)
    annotations = synced(machines, namespace, "m1", "Conflict")
    assert annotations[CONFLICTED] == "interface"
    assert "Unassigned" in annotations[SYNC]
    assert annotations[DEVICE_ID] == str(rack.device["id"])
    recorded = rack.netbox_address(20)
    assert recorded is not None and recorded["id"] == existing["id"] and recorded["assigned_object_id"] is None
    assert rack.primary_ip4() is None

    # Assigned in NetBox where the machine needs it: in sync, and still not ours to release.
    seeder.update(
        "ipam/ip-addresses", existing["id"], assigned_object_type="dcim.interface",
        assigned_object_id=rack.interfaces["LAG2"]["id"],
    )  # fmt: skip
    machines.delete_address(namespace, "m1")
    machines.address(namespace, "m1", rack.pool, rack.host(20), 24)
    annotations = synced(machines, namespace, "m1")
    assert CONFLICTED not in annotations
    assert rack.primary_ip4() == existing["id"]
    machines.delete_address(namespace, "m1")
    wait_for(lambda: machines.get_address(namespace, "m1") is None, what="IPAddress gone")
    machines.claim(namespace, "m2", rack.device["name"], rack.pool)
    machines.address(namespace, "m2", rack.pool, rack.host(21), 24)
    synced(machines, namespace, "m2")
    assert rack.netbox_address(20) is not None


def test_an_address_on_another_device_is_a_conflict_and_nothing_is_written(
    ipaddress_operator: OperatorProcess, machines: Machines, rack: Rack, seeder: NetBoxSeeder, prefix: str,
    namespace: str,
) -> None:  # fmt: skip
    other = rack.topology.devices(None, [f"{prefix}-other"])[0]
    port = seeder.create_one("dcim/interfaces", device=other["id"], name="eth9", type="10gbase-t")
    taken = seeder.create_one(
        "ipam/ip-addresses", address=f"{rack.host(30)}/24", assigned_object_type="dcim.interface",
        assigned_object_id=port["id"],
    )  # fmt: skip
    machines.claim(namespace, "m1", rack.device["name"], rack.pool)
    machines.address(namespace, "m1", rack.pool, rack.host(30), 24)
    annotations = synced(machines, namespace, "m1", "Conflict")
    assert annotations[CONFLICTED] == "device"
    assert "OnAnotherDevice" in annotations[SYNC]
    recorded = rack.netbox_address(30)
    assert recorded is not None and recorded["assigned_object_id"] == port["id"] and recorded["id"] == taken["id"]
    assert rack.primary_ip4() is None


def test_a_claim_not_yet_bound_waits_then_syncs(
    ipaddress_operator: OperatorProcess, machines: Machines, rack: Rack, namespace: str
) -> None:
    machines.claim(namespace, "m1", None, rack.pool)
    machines.address(namespace, "m1", rack.pool, rack.host(40), 24)
    annotations = synced(machines, namespace, "m1", "Pending")
    assert "ServerClaimNotBound" in annotations[SYNC]
    assert rack.netbox_address(40) is None
    # Bound later, as metal-operator does: picked up by the retry, no event on the IPAddress needed.
    machines.bind(namespace, "m1", rack.device["name"])
    synced(machines, namespace, "m1")
    assert rack.netbox_address(40) is not None


def test_release_deletes_only_what_argora_created_and_still_owns(
    ipaddress_operator: OperatorProcess, machines: Machines, rack: Rack, seeder: NetBoxSeeder, namespace: str
) -> None:
    rack.neighbour(namespace)
    for name, offset in (("m1", 50), ("m2", 51)):
        machines.claim(namespace, name, rack.device["name"], rack.pool)
        machines.address(namespace, name, rack.pool, rack.host(offset), 24)
        synced(machines, namespace, name)
    # Someone moved m2's address to eth0 by hand: no longer where Argora put it.
    moved = rack.netbox_address(51)
    assert moved is not None
    seeder.update("ipam/ip-addresses", moved["id"], assigned_object_id=rack.interfaces["eth0"]["id"])
    for name in ("m1", "m2"):
        machines.delete_address(namespace, name)
    # The IPAddresses go at once: argora-ipaddress puts no finalizer on them.
    wait_for(lambda: machines.get_address(namespace, "m2") is None, what="IPAddresses gone")
    wait_for(lambda: rack.netbox_address(50) is None, what="released NetBox address deleted")
    kept = rack.netbox_address(51)
    assert kept is not None and kept["assigned_object_id"] == rack.interfaces["eth0"]["id"]


def test_the_address_keeps_the_mask_the_pool_hands_out(
    ipaddress_operator: OperatorProcess, machines: Machines, rack: Rack, namespace: str
) -> None:
    """The address is recorded with the mask the pool hands out, whatever the pool's mask."""
    machines.claim(namespace, "m1", rack.device["name"], rack.pool)
    machines.address(namespace, "m1", rack.pool, rack.host(60), 26)
    synced(machines, namespace, "m1")
    recorded = rack.netbox_address(60)
    assert recorded is not None and ipaddress.ip_interface(recorded["address"]).network.prefixlen == 26
