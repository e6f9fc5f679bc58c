"""A delta read gives what a full read gives: random changes to a real NetBox, read back through its change
log the way argora-ironcore's (and argora-metal3's) change feed reads them, then the inventory patched with
what they name against the inventory read whole. Both are planned, and the objects planned must be the same.

The inventory is seeded as production NetBox looks: MAC objects assigned but not primary (and several per
port), vendor-named BMC ports, devices without an OOB IP, a second cluster whose devices move in and out.
Each round makes a few random edits; the random seed is in every failure message.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from pydantic import SecretStr

from argora_common.crds import ClusterSelector
from argora_common.credentials import BMCCredentials
from argora_common.inventory import Inventory, read_inventory
from argora_common.inventory_delta import patch_inventory
from argora_common.kube import Kube, Owner
from argora_common.netbox import NetBox
from argora_dev.changefeed import FeedRecorder, ServerEdits
from argora_dev.kubeobjects import Clusters, ensure_secret
from argora_dev.netbox import NetBoxServer
from argora_dev.seed import MacShape, NetBoxSeeder, Server, Topology, add_macs, add_servers, fresh_ipv4, fresh_mac
from ironcore_controller.desired import Plan, plan
from ironcore_controller.reconcile import DEFAULT_STATUSES, INTEREST
from ironcore_controller.settings import IroncoreSettings
from metal3_controller.desired import NETBOX_CLUSTER_ANNOTATION
from metal3_controller.reconcile import INTEREST as INTEREST_METAL3
from metal3_controller.reconcile import ClusterSteps
from metal3_controller.settings import Metal3Settings

pytestmark = pytest.mark.integration

ROUNDS = 8
OWNER = Owner("delta", "import", "argora-ironcore")
CREDENTIALS = BMCCredentials(username="u", password=SecretStr("p"))


def planned(inventory: Inventory, settings: IroncoreSettings) -> dict[str, Any]:
    """What a pass makes of an inventory, in an order that does not depend on how it was read."""
    result: Plan = plan(inventory, [CREDENTIALS, CREDENTIALS], OWNER, settings)
    return {
        "devices": sorted(((d.device_id, d.name, d.bmc, d.secret) for d in result.devices), key=repr),
        "problems": sorted(repr(p) for p in result.problems),
        "notes": sorted(repr(p) for p in result.notes),
        "selected": result.selected_device_ids,
        "unmatched": result.unmatched_selectors,
    }


class Edits(ServerEdits):
    """Random edits of the kinds NetBox users make, on the servers of two clusters."""

    def dns_name(self) -> None:
        server = self.any_server()
        self.seeder.update("ipam/ip-addresses", server.ip["id"], dns_name=f"x{self.rng.randrange(10**6)}.example.com")

    def port_name(self) -> None:
        server = self.any_server()
        name = self.rng.choice(["remoteboard", "iDRAC", "iLO", "eth0"])
        self.seeder.update("dcim/interfaces", server.interface["id"], name=name)

    def another_mac(self) -> None:
        server = self.any_server()
        self.seeder.create_one(
            "dcim/mac-addresses", mac_address=fresh_mac(), assigned_object_type="dcim.interface",
            assigned_object_id=server.interface["id"],
        )  # fmt: skip

    def drop_macs(self) -> None:
        server = self.any_server()
        self.seeder.update("dcim/interfaces", server.interface["id"], primary_mac_address=None)
        macs = self.seeder.get("dcim/mac-addresses", assigned_object_id=server.interface["id"])
        self.seeder.delete("dcim/mac-addresses", [mac["id"] for mac in macs])

    def primary_mac(self) -> None:
        server = self.any_server()
        macs = self.seeder.get("dcim/mac-addresses", assigned_object_id=server.interface["id"])
        if macs:
            mac = self.rng.choice(macs)
            self.seeder.update("dcim/interfaces", server.interface["id"], primary_mac_address=mac["id"])

    def oob_ip(self) -> None:
        server = self.any_server()
        if self.rng.random() < 0.5:
            self.seeder.update("dcim/devices", server.device["id"], oob_ip=None)
            return
        address = self.seeder.create_one(
            "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface",
            assigned_object_id=server.interface["id"],
        )  # fmt: skip
        self.seeder.update("dcim/devices", server.device["id"], oob_ip=address["id"])

    def new_server(self) -> None:
        self.added += 1
        name = f"{self.topology.prefix}-new{self.added}"
        shapes: list[MacShape] = ["primary", "assigned", "two-assigned", "none"]
        shape = self.rng.choice(shapes)
        self.servers += add_servers(self.topology, self.rng.choice(self.clusters), [name], mac_shape=shape)

    def site(self) -> None:
        self.seeder.update("dcim/sites", self.topology.site["id"], name=f"{self.topology.prefix}-s{self.rng.random()}")

    def all(self) -> list[Callable[[], None]]:
        return [
            self.status, self.move, self.dns_name, self.port_name, self.another_mac, self.drop_macs,
            self.primary_mac, self.oob_ip, self.rename, self.new_server, self.delete, self.site,
        ]  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_delta_read_plans_what_a_full_read_plans_after_random_changes(
    netbox: NetBoxServer, seeder: NetBoxSeeder, prefix: str, seed: int
) -> None:
    rng = random.Random(seed)
    topology = Topology(seeder, prefix)
    clusters = [topology.cluster("a"), topology.cluster("b"), topology.cluster("other")]
    edits = Edits(seeder, topology, clusters, rng)
    edits.servers = [
        *add_servers(topology, clusters[0], [f"{prefix}-p{i}" for i in range(4)]),
        *add_servers(topology, clusters[0], [f"{prefix}-v{i}" for i in range(3)], interface_name="iDRAC"),
        *add_servers(topology, clusters[1], [f"{prefix}-m{i}" for i in range(3)], mac_shape="two-assigned"),
        *add_servers(topology, clusters[1], [f"{prefix}-n{i}" for i in range(2)], set_oob_ip=False),
    ]
    add_macs(seeder, [server.interface for server in edits.servers[:2]], "assigned")
    settings = IroncoreSettings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.readonly_v2_token))
    client = NetBox(settings)
    # argora-ironcore's selectors of the two clusters; the third is where devices go to leave.
    selectors = [
        ClusterSelector.model_validate({"name": clusters[0]["name"]}),
        ClusterSelector.model_validate({"name": clusters[1]["name"], "statuses": ["active", "staged"]}),
    ]
    recorder = FeedRecorder(client, INTEREST, settings)
    last = read_inventory(client, selectors, DEFAULT_STATUSES)
    deltas = 0
    for round_number in range(ROUNDS):
        done = rng.sample(edits.all(), rng.randint(1, 4))
        changes = recorder.changes_after(done, last.refs())
        full = read_inventory(client, selectors, DEFAULT_STATUSES)
        delta = patch_inventory(client, last, selectors, DEFAULT_STATUSES, changes) if changes is not None else None
        patched = delta.inventory if delta is not None else (last if changes is None else None)
        context = f"seed {seed}, round {round_number}: {[edit.__name__ for edit in done]}"
        if patched is not None:
            deltas += 1
            assert planned(patched, settings) == planned(full, settings), context
        last = patched if patched is not None else full
    assert deltas >= ROUNDS // 2, "most rounds must be delta reads, or this tests little"


def boot_port(seeder: NetBoxSeeder, server: Server, rng: random.Random) -> dict[str, Any]:
    """A boot port with a MAC and the device's primary IP on it; every third a LAG of two members."""
    device = server.device["id"]
    lag = rng.random() < 0.33
    port = seeder.create_one(
        "dcim/interfaces", device=device, name="bond0" if lag else "eth0", type="lag" if lag else "10gbase-x-sfpp"
    )
    members = [
        seeder.create_one("dcim/interfaces", device=device, name=f"eth{i}", type="10gbase-x-sfpp", lag=port["id"])
        for i in range(2 if lag else 0)
    ]
    add_macs(seeder, members or [port], rng.choice(["primary", "assigned"]))
    address = seeder.create_one(
        "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface", assigned_object_id=port["id"]
    )
    seeder.update("dcim/devices", device, primary_ip4=address["id"])
    return port


def test_a_delta_read_of_a_cluster_plans_the_hosts_a_full_read_plans(
    netbox: NetBoxServer, seeder: NetBoxSeeder, api_client: client.ApiClient, namespace: str, prefix: str
) -> None:
    """The same for argora-metal3's Clusters: the devices' boot ports (LAGs with members), their primary
    IPs and MACs, and the prefixes of their sites (networkData) edited at random."""
    rng = random.Random(7)
    topology = Topology(seeder, prefix)
    cluster, elsewhere = topology.cluster("a"), topology.cluster("b")
    servers = add_servers(topology, cluster, [f"{prefix}-h{i}" for i in range(6)])
    ports = {server.device["id"]: boot_port(seeder, server, rng) for server in servers}
    network = seeder.create_one(
        "ipam/prefixes", prefix="10.77.0.0/24", scope_type="dcim.site", scope_id=topology.site["id"]
    )
    ensure_secret(api_client, namespace, "bmc", {"username": "u", "password": "p"})
    settings = Metal3Settings(
        netbox_url=netbox.url, netbox_token=SecretStr(netbox.readonly_v2_token), own_namespace=namespace,
        default_bmc_credentials=f"{namespace}/bmc", network_data=True,
    )  # fmt: skip
    client_ = NetBox(settings)
    steps = ClusterSteps(settings, client_, Kube(api_client, "argora-metal3"))
    Clusters(api_client).create(namespace, "capi", annotations={NETBOX_CLUSTER_ANNOTATION: cluster["name"]})
    body = Clusters(api_client).get(namespace, "capi")

    def mac_of_boot_port() -> None:
        port = ports[rng.choice(servers).device["id"]]
        seeder.create_one(
            "dcim/mac-addresses", mac_address=fresh_mac(), assigned_object_type="dcim.interface",
            assigned_object_id=port["id"],
        )  # fmt: skip

    def primary_ip() -> None:
        server = rng.choice(servers)
        address = seeder.create_one(
            "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface",
            assigned_object_id=ports[server.device["id"]]["id"],
        )  # fmt: skip
        seeder.update("dcim/devices", server.device["id"], primary_ip4=address["id"])

    def gateway() -> None:
        seeder.update("ipam/prefixes", network["id"], prefix=f"10.77.{rng.randrange(1, 250)}.0/24")

    def leave() -> None:
        seeder.update("dcim/devices", rng.choice(servers).device["id"], cluster=rng.choice([cluster, elsewhere])["id"])

    def status() -> None:
        seeder.update("dcim/devices", rng.choice(servers).device["id"], status=rng.choice(["active", "offline"]))

    recorder = FeedRecorder(client_, INTEREST_METAL3, settings)
    last = steps.read(body)
    deltas = 0
    for round_number in range(ROUNDS):
        done = rng.sample([mac_of_boot_port, primary_ip, gateway, leave, status], rng.randint(1, 3))
        changes = recorder.changes_after(done, last.refs())
        full = steps.read(body)
        patched = steps.patch(body, last, changes) if changes is not None else last
        context = f"round {round_number}: {[edit.__name__ for edit in done]}"
        if patched is not None:
            deltas += 1
            delta_plan, full_plan = steps.plan(body, patched), steps.plan(body, full)
            assert sorted(map(repr, delta_plan.hosts)) == sorted(map(repr, full_plan.hosts)), context
            assert sorted(map(repr, delta_plan.problems)) == sorted(map(repr, full_plan.problems)), context
        last = patched if patched is not None else full
    assert deltas >= ROUNDS // 2
