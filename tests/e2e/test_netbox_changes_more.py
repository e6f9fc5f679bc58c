"""NetBox changes reach the cluster without a sync request for argora-metal3, argora-update and
argora-ippool following NetBox's change log, and its webhooks, against the real API server and NetBox.

Each controller runs once for the module per path (the change log looked at every second; NetBox's
webhooks with the change log off); the resync is an hour away, so whatever happens within a test's
wait came from a NetBox change. What is checked is what a user sees: BareMetalHosts and their
Secrets, NetBox's own records, GlobalInClusterIPPools, and the operators' log lines of passes.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Clusters, Objects, Pools, ensure_secret, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess
from argora_dev.seed import (
    NetBoxSeeder,
    PrefixSeed,
    Server,
    Topology,
    add_prefixes,
    add_region,
    add_servers,
    ensure_gateway_field,
    fresh_mac,
    fresh_network,
    interface_names,
)
from argora_dev.webhooks import CHANGE_PATHS, start_following, stop_following

pytestmark = pytest.mark.integration

CREDENTIALS_NAMESPACE = "argora-changes-system"
NETBOX_CLUSTER = "argora.cloud.sap/netbox-cluster"
PRUNE = "argora.cloud.sap/prune"
ROLE_LABEL = "kubernetes.metal.cloud.sap/role"
# Long enough for several looks at the change log after a change (one a second).
QUIET_SECONDS = 4.0
# How long a NetBox change may take to show: generous, a look and a pass take about a second.
WAIT_SECONDS = 30


def passes_logged(operator: OperatorProcess, kind: str, namespace: str, name: str) -> int:
    return operator.log().count(f"{kind} {namespace}/{name} synced")


def settled_count(operator: OperatorProcess, kind: str, namespace: str, name: str) -> int:
    """The number of passes logged once it stopped growing over QUIET_SECONDS (failing when it does not)."""
    count = passes_logged(operator, kind, namespace, name)
    for _ in range(5):
        time.sleep(QUIET_SECONDS)
        now = passes_logged(operator, kind, namespace, name)
        if now == count:
            return count
        count = now
    raise AssertionError(f"{kind} {namespace}/{name}: passes keep coming ({count} so far)")


# ---- argora-metal3 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clusters(api_client: client.ApiClient) -> Clusters:
    return Clusters(api_client)


@pytest.fixture(scope="module", params=CHANGE_PATHS)
def metal3(
    request: pytest.FixtureRequest, kube: KubeCluster, netbox: NetBoxServer, clusters: Clusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:  # fmt: skip
    ensure_secret(clusters.core.api_client, CREDENTIALS_NAMESPACE, "bmc", {"username": "metal", "password": "three"})
    operator = start_following(
        "metal3", request.param, kube, netbox, netbox.readonly_v2_token, tmp_path_factory.mktemp("metal3-changes"),
        ARGORA_DEFAULT_BMC_CREDENTIALS=f"{CREDENTIALS_NAMESPACE}/bmc",
        ARGORA_NETWORK_DATA="true",
    )  # fmt: skip
    yield operator
    stop_following(operator, netbox)
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


def host(clusters: Clusters, namespace: str, server: Server) -> dict[str, Any] | None:
    return clusters.hosts(namespace).get(server.name)


def test_metal3_device_changes_reach_the_hosts(
    metal3: OperatorProcess, clusters: Clusters, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    """A device's role, its OOB IP, an OOB IP set where there was none, and a device going offline (with
    prune on) show on the BareMetalHosts without a sync request."""
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    first, second, leaving = add_servers(topology, cluster, [f"{prefix}-{i}" for i in range(3)])
    # Not registered: NetBox does not say which port is its BMC (no OOB IP, no BMC-named port).
    (unset,) = add_servers(topology, cluster, [f"{prefix}-unset"], set_oob_ip=False, interface_name="eth0")
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: cluster["name"], PRUNE: "true"})
    status = clusters.synced(namespace, "capi")
    assert status["counts"]["created"] == 3 and status["counts"]["skipped"] == 1
    assert set(clusters.hosts(namespace)) == {first.name, second.name, leaving.name}

    role = seeder.create_one("dcim/device-roles", name=f"{prefix}-storage", slug=f"{prefix}-storage", color="0000ff")
    seeder.update("dcim/devices", first.device["id"], role=role["id"])
    wait_for(
        lambda: (host(clusters, namespace, first) or {}).get("metadata", {}).get("labels", {}).get(ROLE_LABEL)
        == role["slug"],
        WAIT_SECONDS, "the host's role label from the device's new role",
    )  # fmt: skip

    # A registered BMC address is not forced (Metal3 refuses it); the drift is reported on the Cluster.
    registered = (host(clusters, namespace, second) or {})["spec"]["bmc"]["address"]
    moved = f"{fresh_network().network_address + 7}/24"
    seeder.update("ipam/ip-addresses", second.ip["id"], address=moved)
    status = wait_for(
        lambda: (s := clusters.sync_status(namespace, "capi")) and s.get("counts", {}).get("drifted") == 1 and s,
        WAIT_SECONDS, "the OOB IP's new address reported as registration drift",
    )  # fmt: skip
    assert any(problem.startswith(f"{second.name}: RegistrationDrift") for problem in status["problems"])
    assert (host(clusters, namespace, second) or {})["spec"]["bmc"]["address"] == registered

    seeder.update("dcim/devices", unset.device["id"], oob_ip=unset.ip["id"])
    registered_now = wait_for(lambda: host(clusters, namespace, unset), WAIT_SECONDS, "the host of the new OOB IP")
    assert unset.address in registered_now["spec"]["bmc"]["address"]

    seeder.update("dcim/devices", leaving.device["id"], status="offline")
    wait_for(lambda: host(clusters, namespace, leaving) is None, WAIT_SECONDS, "the offline device's host pruned")
    assert first.name in clusters.hosts(namespace)


def test_metal3_new_device_in_the_netbox_cluster_gets_a_host(
    metal3: OperatorProcess, clusters: Clusters, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster, other = topology.cluster("c"), topology.cluster("other")
    (first,) = add_servers(topology, cluster, [f"{prefix}-0"])
    (outsider,) = add_servers(topology, other, [f"{prefix}-outsider"])
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: cluster["name"]})
    clusters.synced(namespace, "capi")
    assert set(clusters.hosts(namespace)) == {first.name}

    (new,) = add_servers(topology, cluster, [f"{prefix}-new"])
    wait_for(lambda: host(clusters, namespace, new), WAIT_SECONDS, "the host of the new device")
    # A device of another NetBox cluster moving in is a new device of this one too.
    seeder.update("dcim/devices", outsider.device["id"], cluster=cluster["id"])
    wait_for(lambda: host(clusters, namespace, outsider), WAIT_SECONDS, "the host of the device that moved in")
    assert set(clusters.hosts(namespace)) == {first.name, new.name, outsider.name}


@dataclass
class NetworkHost:
    """A device of its own NetBox cluster whose primary IP lies in a prefix at its site, with a gateway."""

    topology: Topology
    cluster: dict[str, Any]
    server: Server
    network: ipaddress.IPv4Network
    prefix: dict[str, Any]

    @classmethod
    def seed(cls, seeder: NetBoxSeeder, prefix: str) -> NetworkHost:
        topology = Topology(seeder, prefix)
        cluster = topology.cluster("c")
        (server,) = add_servers(topology, cluster, [f"{prefix}-s"])
        network = fresh_network()
        eth0 = seeder.create_one("dcim/interfaces", device=server.device["id"], name="eth0", type="25gbase-x-sfp28")
        mac = seeder.create_one(
            "dcim/mac-addresses", mac_address=fresh_mac(),
            assigned_object_type="dcim.interface", assigned_object_id=eth0["id"],
        )  # fmt: skip
        seeder.update("dcim/interfaces", eth0["id"], primary_mac_address=mac["id"])
        primary = seeder.create_one(
            "ipam/ip-addresses", address=f"{network.network_address + 20}/24",
            assigned_object_type="dcim.interface", assigned_object_id=eth0["id"],
        )  # fmt: skip
        seeder.update("dcim/devices", server.device["id"], primary_ip4=primary["id"])
        (record,) = add_prefixes(
            seeder, [PrefixSeed(str(network), topology.site, gateway=str(network.network_address + 1))]
        )
        return cls(topology, cluster, server, network, record)

    def gateway(self, clusters: Clusters, namespace: str) -> str | None:
        """The default route's gateway in the host's networkData, as its Secret holds it now."""
        secret = clusters.secret(namespace, f"networkdata-{self.server.name}")
        routes = json.loads(base64.b64decode(secret.data["networkData"]))["networks"][0]["routes"]
        return str(routes[0]["gateway"]) if routes else None


@pytest.fixture
def network_host(
    metal3: OperatorProcess, clusters: Clusters, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> NetworkHost:
    """The NetworkHost registered by argora-metal3 through a Cluster of its own, once the passes the
    seeding itself started (a new NetBox cluster concerns every Cluster) have run their course."""
    seeded = NetworkHost.seed(seeder, prefix)
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: seeded.cluster["name"]})
    clusters.synced(namespace, "capi")
    settled_count(metal3, "Cluster", namespace, "capi")
    assert seeded.gateway(clusters, namespace) == str(seeded.network.network_address + 1)
    return seeded


def test_metal3_network_data_follows_the_prefix_gateway(
    metal3: OperatorProcess, clusters: Clusters, seeder: NetBoxSeeder, namespace: str, network_host: NetworkHost
) -> None:
    new_gateway = str(network_host.network.network_address + 254)
    seeder.update("ipam/prefixes", network_host.prefix["id"], custom_fields={"gateway": new_gateway})
    wait_for(lambda: network_host.gateway(clusters, namespace) == new_gateway, WAIT_SECONDS, "the prefix's new gateway")


def test_metal3_new_prefix_at_the_site_reaches_network_data(
    metal3: OperatorProcess, clusters: Clusters, seeder: NetBoxSeeder, namespace: str, network_host: NetworkHost
) -> None:
    narrow = ipaddress.ip_network(f"{network_host.network.network_address + 16}/28")
    seed = PrefixSeed(str(narrow), network_host.topology.site, gateway=str(narrow.network_address + 1))
    add_prefixes(seeder, [seed])
    wait_for(
        lambda: network_host.gateway(clusters, namespace) == seed.gateway,
        WAIT_SECONDS, "the gateway of the new, narrower prefix",
    )  # fmt: skip


# ---- argora-update -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


@pytest.fixture(scope="module", params=CHANGE_PATHS)
def update(
    request: pytest.FixtureRequest, kube: KubeCluster, netbox: NetBoxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    # The only controller that writes to NetBox: it gets a token that may.
    operator = start_following(
        "update", request.param, kube, netbox, netbox.v2_token, tmp_path_factory.mktemp("update-changes")
    )
    yield operator
    stop_following(operator, netbox)
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


def vmk(seeder: NetBoxSeeder, server: Server, name: str = "vmk0", with_ip: bool = False) -> tuple[int, int | None]:
    """A VMK interface (with an address when asked): ids of the interface and the address."""
    interface = seeder.create_one("dcim/interfaces", device=server.device["id"], name=name, type="virtual")
    if not with_ip:
        return interface["id"], None
    address = seeder.create_one(
        "ipam/ip-addresses", address=f"{fresh_network().network_address + 9}/24",
        assigned_object_type="dcim.interface", assigned_object_id=interface["id"],
    )  # fmt: skip
    return interface["id"], address["id"]


def oob_address(seeder: NetBoxSeeder, server: Server) -> str | None:
    (found,) = seeder.get("dcim/devices", id=server.device["id"])
    return found["oob_ip"]["address"] if found["oob_ip"] else None


def settle_seeding() -> None:
    """Let the change log's looks pass over what the test wrote so far: changes seen after a pass read
    them would start a pass of their own."""
    time.sleep(2.5)


def create_update(objects: Objects, namespace: str, cluster: dict[str, Any], name: str = "fix") -> dict[str, Any]:
    objects.create_import(namespace, name, {"clusters": [{"name": cluster["name"]}]}, kind="Update")
    return objects.synced_import(namespace, name, kind="Update")


def test_update_reruns_for_a_vendor_name_and_vmk_interfaces(
    update: OperatorProcess, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    """After an Update was applied, a BMC port renamed to a vendor name, a new VMK interface and a device
    with a VMK interface and its IP joining the cluster are corrected in NetBox without a sync request."""
    topology = Topology(seeder, prefix)
    cluster, elsewhere = topology.cluster("c"), topology.cluster("elsewhere")
    (renamed, extended) = add_servers(topology, cluster, [f"{prefix}-renamed", f"{prefix}-extended"])
    (vendor,) = add_servers(topology, cluster, [f"{prefix}-vendor"], set_oob_ip=False, interface_name="iLO")
    (joining,) = add_servers(topology, elsewhere, [f"{prefix}-joining"])
    status = create_update(objects, namespace, cluster)["status"]
    assert status["applied"]["rename"] == 1 and status["applied"]["oobIP"] == 1
    assert interface_names(seeder, vendor.device) == ["remoteboard"]

    seeder.update("dcim/interfaces", renamed.interface["id"], name="iDRAC")
    wait_for(lambda: interface_names(seeder, renamed.device) == ["remoteboard"], WAIT_SECONDS, "iDRAC renamed back")

    vmk(seeder, extended)
    wait_for(lambda: interface_names(seeder, extended.device) == ["remoteboard"], WAIT_SECONDS, "the new vmk0 deleted")

    # Outside the Update's cluster, a VMK interface and its IP are left alone until the device moves in.
    _, address = vmk(seeder, joining, "vmk1", with_ip=True)
    assert interface_names(seeder, joining.device) == ["remoteboard", "vmk1"]
    seeder.update("dcim/devices", joining.device["id"], cluster=cluster["id"])
    wait_for(
        lambda: interface_names(seeder, joining.device) == ["remoteboard"], WAIT_SECONDS, "vmk1 of the joining device"
    )
    assert seeder.get("ipam/ip-addresses", id=[address]) == []
    assert oob_address(seeder, renamed) == renamed.ip["address"]
    wanted = {"InterfacesRenamed", "InterfacesDeleted", "IPsDeleted"}
    wait_for(
        lambda: wanted <= {reason for _, reason, _ in objects.events(namespace, "fix")}, WAIT_SECONDS,
        "the Events of the corrections",
    )  # fmt: skip
    if not update.webhook_url:
        # While the change log is followed, the passes for these changes read again only what they name.
        assert f"Update {namespace}/fix synced (delta:" in update.log()


def test_update_own_corrections_start_no_pass(
    update: OperatorProcess, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    """argora-update's writes are in NetBox's change log like anyone's: they must not start passes of
    their own (known by NetBox's request ids), neither after the first pass nor after a change's."""
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    servers = add_servers(
        topology, cluster, [f"{prefix}-{i}" for i in range(3)], set_oob_ip=False, interface_name="iDRAC"
    )
    for server in servers:
        vmk(seeder, server, with_ip=True)
    settle_seeding()
    status = create_update(objects, namespace, cluster)["status"]
    assert status["applied"] == {"rename": 3, "oobIP": 3, "platform": 0, "interfaceDeleted": 3, "ipDeleted": 3}
    assert settled_count(update, "Update", namespace, "fix") == 1

    # A change of someone else: one pass, whose corrections again start nothing.
    seeder.update("dcim/interfaces", servers[0].interface["id"], name="XCC")
    wait_for(lambda: interface_names(seeder, servers[0].device) == ["remoteboard"], WAIT_SECONDS, "XCC renamed back")
    assert settled_count(update, "Update", namespace, "fix") == 2


def test_update_unrelated_change_starts_no_pass(
    update: OperatorProcess, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    """Changes to devices of another cluster at the same site (their interfaces and IPs read and passed
    over by the same query) start no pass; the same change to a device of the Update's cluster does."""
    topology = Topology(seeder, prefix)
    cluster, other = topology.cluster("c"), topology.cluster("other")
    (mine,) = add_servers(topology, cluster, [f"{prefix}-mine"])
    (theirs,) = add_servers(topology, other, [f"{prefix}-theirs"])
    settle_seeding()
    create_update(objects, namespace, cluster)
    before = settled_count(update, "Update", namespace, "fix")

    seeder.update("dcim/interfaces", theirs.interface["id"], name="iDRAC")
    vmk(seeder, theirs, with_ip=True)
    seeder.update("ipam/ip-addresses", theirs.ip["id"], dns_name=f"{theirs.name}-moved.example.com")
    seeder.update("dcim/devices", theirs.device["id"], status="planned")
    time.sleep(QUIET_SECONDS)
    assert passes_logged(update, "Update", namespace, "fix") == before
    assert interface_names(seeder, theirs.device) == ["iDRAC", "vmk0"]

    # The same kind of change to a device of its cluster does start one.
    seeder.update("dcim/interfaces", mine.interface["id"], name="iDRAC")
    wait_for(lambda: passes_logged(update, "Update", namespace, "fix") > before, WAIT_SECONDS, "a pass")
    assert interface_names(seeder, mine.device) == ["remoteboard"]


# ---- argora-ippool -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pools(api_client: client.ApiClient) -> Pools:
    return Pools(api_client)


@pytest.fixture(scope="module", params=CHANGE_PATHS)
def ippool(
    request: pytest.FixtureRequest, kube: KubeCluster, netbox: NetBoxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    ensure_gateway_field(NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token)))
    operator = start_following(
        "ippool", request.param, kube, netbox, netbox.readonly_v2_token, tmp_path_factory.mktemp("ippool-changes")
    )
    yield operator
    stop_following(operator, netbox)
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


def test_ippool_prefixes_and_sites_changing_reach_the_pools(
    ippool: OperatorProcess, objects: Objects, pools: Pools, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    """A new prefix matching the selector gets its pool; a prefix's gateway, its status and its site's
    region changing in NetBox converge the pools, all without a sync request."""
    region, (site_a, site_b, site_c) = add_region(seeder, f"{prefix}-r", 3)
    network_a, network_b, network_c = fresh_network(), fresh_network(), fresh_network()
    record_a, _ = add_prefixes(
        seeder,
        [
            PrefixSeed(str(network_a), site_a, gateway=str(network_a.network_address + 1)),
            PrefixSeed(str(network_c), site_c),
        ],
    )
    # Active prefixes only: without a status every status would be selected.
    spec = {"ippools": [{"namePrefix": "np", "region": region["slug"], "status": "active"}]}
    objects.create_import(namespace, "pools", spec, kind="IPPoolImport")
    objects.synced_import(namespace, "pools", kind="IPPoolImport")
    name_a, name_b, name_c = (f"np-{site['slug']}" for site in (site_a, site_b, site_c))
    assert set(pools.owned(namespace, "pools")) == {name_a, name_c}

    def spec_of(name: str) -> dict[str, Any]:
        return ((pools.get(name) or {}).get("spec")) or {}

    add_prefixes(seeder, [PrefixSeed(str(network_b), site_b)])
    wait_for(lambda: spec_of(name_b).get("addresses") == [str(network_b)], WAIT_SECONDS, "the new prefix's pool")

    seeder.update("ipam/prefixes", record_a["id"], custom_fields={"gateway": str(network_a.network_address + 254)})
    wait_for(
        lambda: spec_of(name_a).get("gateway") == str(network_a.network_address + 254), WAIT_SECONDS,
        "the pool's gateway from the prefix's custom field",
    )  # fmt: skip

    seeder.update("ipam/prefixes", record_a["id"], status="reserved")
    wait_for(lambda: pools.get(name_a) is None, WAIT_SECONDS, "the pool of the prefix no longer active pruned")

    elsewhere = seeder.create_one("dcim/regions", name=f"{prefix}-elsewhere", slug=f"{prefix}-elsewhere")
    seeder.update("dcim/sites", site_c["id"], region=elsewhere["id"])
    wait_for(lambda: pools.get(name_c) is None, WAIT_SECONDS, "the pool of the site that left the region pruned")
    assert set(pools.owned(namespace, "pools")) == {name_b}
