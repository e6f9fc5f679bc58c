"""Replacing the original Argora operator's IP updater by argora-ipaddress: the IPAddresses it reconciled,
as it left them (its finalizer on each, its annotations written by its field manager `manager`, its
pools without labels), and the NetBox addresses it created (no tag, no description).

Checked as a platform team would after the switch: every IPAddress that was in sync still is, with the
same NetBox address and the same primary IP; every IPAddress can be deleted; the addresses the original
created are released when their IPAddress goes, those it did not create or that moved are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kubeobjects import IPAM_ADDRESSES, Machines, Pools, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_servers, fresh_network
from tests.e2e.test_ipaddress import CONFLICTED, DEVICE_ID, INTERFACE_ID, SYNC, synced

pytestmark = pytest.mark.integration

ORIGINAL_MANAGER = "manager"
ORIGINAL_FINALIZER = "ipupdate.argora.cloud.sap.com/finalizer"


class Original:
    """What the original operator did to an IPAddress it reconciled: its finalizer first, then the
    NetBox address on the device's LAG and the device's primary IP, then its annotations."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def _patch(self, name: str, metadata: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            *IPAM_ADDRESSES, self.namespace, "ipaddresses", name, {"metadata": metadata},
            field_manager=ORIGINAL_MANAGER,
        )  # fmt: skip

    def took(self, name: str) -> None:
        self._patch(name, {"finalizers": [ORIGINAL_FINALIZER]})

    def recorded(self, name: str, device: dict[str, Any], interface: dict[str, Any]) -> None:
        self._patch(name, {"annotations": {DEVICE_ID: str(device["id"]), INTERFACE_ID: str(interface["id"])}})

    def conflicted(self, name: str, what: str) -> None:
        self._patch(name, {"annotations": {CONFLICTED: what}})


@pytest.fixture
def machines(api_client: client.ApiClient) -> Machines:
    return Machines(api_client)


def test_argora_ipaddress_takes_over_the_original_ipaddresses_and_their_netbox_addresses(
    api_client: client.ApiClient,
    machines: Machines,
    seeder: NetBoxSeeder,
    namespace: str,
    prefix: str,
    start_operator: Callable[..., OperatorProcess],
    netbox: NetBoxServer,
) -> None:
    topology = Topology(seeder, prefix, manufacturer="Dell", shared_vendor=True)
    # Production-shaped devices: an iDRAC port with several MACs, LAGs of which LAG10 is one the original's
    # one-digit rule never saw, a plain port.
    servers = add_servers(
        topology, None, [f"{prefix}-n{i}" for i in range(6)], interface_name="iDRAC", mac_shape="assigned",
        tenant=topology.tenant["id"],
    )  # fmt: skip
    lags: dict[str, dict[str, dict[str, Any]]] = {}
    for server in servers:
        made = seeder.create(
            "dcim/interfaces",
            [
                {"device": server.device["id"], "name": name, "type": kind}
                for name, kind in (("LAG1", "lag"), ("LAG2", "lag"), ("LAG10", "lag"), ("eth0", "10gbase-t"))
            ],
        )
        lags[server.name] = {item["name"]: item for item in made}
    network = fresh_network()
    vrf = seeder.create_one("ipam/vrfs", name=f"{prefix}-vrf")
    seeder.create_one(
        "ipam/prefixes", prefix=str(network), vrf=vrf["id"], scope_type="dcim.site", scope_id=topology.site["id"]
    )
    # The original's pool: no labels, so no argora-ippool pool; the original recorded every pool's addresses.
    pool = f"{prefix}-transit"
    Pools(api_client).create(
        pool, {"addresses": [str(network)], "prefix": 24, "gateway": str(network.network_address + 1)}
    )
    host = {name: str(network.network_address + offset) for offset, name in enumerate("abcdefgn", start=10)}
    # Another machine of the cluster that stays: with every IPAddress gone the release breaker would hold.
    neighbours = f"{namespace[:50]}-others"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": neighbours}})
    machines.address(neighbours, "neighbour", pool, str(network.network_address + 200), 24)

    def netbox_address(name: str) -> dict[str, Any] | None:
        found = seeder.get("ipam/ip-addresses", address=host[name])
        assert len(found) <= 1, f"NetBox holds {host[name]} {len(found)} times"
        return found[0] if found else None

    def primary(server: Server) -> int | None:
        return (seeder.get("dcim/devices", id=server.device["id"])[0].get("primary_ip4") or {}).get("id")

    original = Original(api_client, namespace)
    a, b, c, d, g = servers[:5]
    fresh_server = servers[5]
    in_sync = {"a": (a, "LAG2"), "b": (b, "LAG2"), "b2": (b, "LAG2"), "d": (d, "LAG2"), "g": (g, "LAG2")}
    host["b2"] = str(network.network_address + 30)
    recorded: dict[str, dict[str, Any]] = {}
    for server in servers:
        machines.server(server.name)
    for name, (server, lag) in in_sync.items():
        machines.claim(namespace, name, server.name, pool)
        machines.address(namespace, name, pool, host[name], 24)
        original.took(name)
        recorded[name] = seeder.create_one(
            "ipam/ip-addresses", address=f"{host[name]}/24", vrf=vrf["id"], tenant=topology.tenant["id"],
            assigned_object_type="dcim.interface", assigned_object_id=lags[server.name][lag]["id"],
        )  # fmt: skip
        seeder.update("dcim/devices", server.device["id"], primary_ip4=recorded[name]["id"])
        original.recorded(name, server.device, lags[server.name][lag])
    # c: planned in NetBox on no interface, which the original reported as a conflict.
    machines.claim(namespace, "c", c.name, pool)
    machines.address(namespace, "c", pool, host["c"], 24)
    original.took("c")
    planned = seeder.create_one("ipam/ip-addresses", address=f"{host['c']}/24", description="planned by hand")
    original.conflicted("c", "interface")
    # d: once a conflict the original recorded, since fixed in NetBox (the address is on LAG2 now).
    original.conflicted("d", "interface")
    # g: someone moved the address to eth0 after the original recorded it on LAG2.
    seeder.update("ipam/ip-addresses", recorded["g"]["id"], assigned_object_id=lags[g.name]["eth0"]["id"])
    primaries_before = {server.name: primary(server) for server in (a, b, d)}
    assert primaries_before[b.name] == recorded["b2"]["id"]  # the last address the original synced

    operator = start_operator("ipaddress", {"ARGORA_NETBOX_TOKEN": netbox.v2_token, "ARGORA_RETRY_BASE_SECONDS": "1"})

    # In sync before, in sync now: same NetBox address, same interface, same primary; adopted by its tag.
    for name in ("a", "b", "b2", "d"):
        annotations = synced(machines, namespace, name)
        server, lag = in_sync[name]
        assert (annotations[DEVICE_ID], annotations[INTERFACE_ID]) == (
            str(server.device["id"]), str(lags[server.name][lag]["id"]),
        )  # fmt: skip
        assert CONFLICTED not in annotations
        found = netbox_address(name)
        assert found is not None and found["id"] == recorded[name]["id"]
        assert found["assigned_object_id"] == lags[server.name][lag]["id"]
        assert [tag["slug"] for tag in found["tags"]] == ["argora-ipaddress"]
    assert {server.name: primary(server) for server in (a, b, d)} == primaries_before
    annotations = synced(machines, namespace, "c", "Conflict")
    assert (annotations[CONFLICTED], "Unassigned" in annotations[SYNC]) == ("interface", True)
    moved = synced(machines, namespace, "g", "Conflict")
    assert moved[CONFLICTED] == "interface"
    still_planned = netbox_address("c")
    assert still_planned is not None and still_planned["id"] == planned["id"]
    assert (still_planned["assigned_object_id"], still_planned["description"]) == (None, "planned by hand")

    # Argora adds no finalizer of its own; the original's stays until its release is done.
    machines.claim(namespace, "n", fresh_server.name, pool)
    machines.address(namespace, "n", pool, host["n"], 24)
    synced(machines, namespace, "n")
    assert not (machines.get_address(namespace, "n") or {})["metadata"].get("finalizers")
    assert (machines.get_address(namespace, "a") or {})["metadata"]["finalizers"] == [ORIGINAL_FINALIZER]

    # Every IPAddress can be deleted. The original's release: an address it recorded where NetBox still
    # has it goes; one that moved (g) or that it never held (c) stays.
    for name in ("a", "c", "g"):
        machines.delete_address(namespace, name)
    for name in ("a", "c", "g"):
        wait_for(lambda name=name: machines.get_address(namespace, name) is None, what=f"IPAddress {name} gone")  # type: ignore[misc]
    assert netbox_address("a") is None
    kept = netbox_address("g")
    assert kept is not None and kept["assigned_object_id"] == lags[g.name]["eth0"]["id"]
    assert netbox_address("c") is not None

    # Someone took the original's finalizer off by hand: adopted, the address is released all the same.
    original.custom.patch_namespaced_custom_object(
        *IPAM_ADDRESSES, namespace, "ipaddresses", "b2", {"metadata": {"finalizers": None}}
    )
    machines.delete_address(namespace, "b2")
    wait_for(lambda: netbox_address("b2") is None, what="adopted address released")
    assert netbox_address("b") is not None

    for item in machines.list_addresses(namespace):
        machines.delete_address(namespace, item["metadata"]["name"])
    wait_for(lambda: not machines.list_addresses(namespace), what="every IPAddress gone")
    for name in ("b", "d", "n"):
        wait_for(lambda name=name: netbox_address(name) is None, what=f"{name} released")  # type: ignore[misc]
    assert netbox_address("c") is not None and netbox_address("g") is not None
    assert "Traceback" not in operator.log()
