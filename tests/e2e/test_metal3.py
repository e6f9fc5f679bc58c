"""argora-metal3 as a process against the real API server (Cluster API and Metal3 CRDs) and NetBox."""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Clusters, ensure_secret, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import (
    MacShape,
    NetBoxSeeder,
    PrefixSeed,
    Server,
    Topology,
    add_macs,
    add_prefixes,
    add_servers,
    fresh_ipv4,
    fresh_mac,
)

pytestmark = pytest.mark.integration

CREDENTIALS_NAMESPACE = "argora-metal3-system"
HINTED_TYPE = "argora-e2e-hinted"  # device-type slug with root device hints in the operator's settings
NETBOX_CLUSTER = "argora.cloud.sap/netbox-cluster"


@pytest.fixture(scope="module")
def clusters(api_client: client.ApiClient) -> Clusters:
    return Clusters(api_client)


@pytest.fixture(scope="module")
def metal3(
    kube: KubeCluster, netbox: NetBoxServer, clusters: Clusters, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    ensure_secret(clusters.core.api_client, CREDENTIALS_NAMESPACE, "bmc", {"username": "metal", "password": "three"})
    env = operator_environment(
        kube, netbox, netbox.readonly_v2_token,
        ARGORA_DEFAULT_BMC_CREDENTIALS=f"{CREDENTIALS_NAMESPACE}/bmc",
        ARGORA_ROOT_DEVICE_HINTS=json.dumps({HINTED_TYPE: {"deviceName": "/dev/sda", "rotational": False}}),
        ARGORA_NETWORK_DATA="true",
    )  # fmt: skip
    operator = OperatorProcess("metal3", tmp_path_factory.mktemp("metal3"), env).start()
    yield operator
    operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


class Inventory:
    """A NetBox cluster with one server per vendor (shared vendor slugs, as the table expects)."""

    VENDORS = ("dell", "hpe", "lenovo", "supermicro", "quanta")

    def __init__(self, seeder: NetBoxSeeder, prefix: str) -> None:
        self.seeder = seeder
        self.topology = Topology(seeder, prefix)
        self.cluster = self.topology.cluster("c")
        self.servers: dict[str, Server] = {}
        for vendor in self.VENDORS:
            maker = seeder.ensure("dcim/manufacturers", vendor, name=vendor)
            device_type = seeder.ensure(
                "dcim/device-types", f"argora-e2e-{vendor}", manufacturer=maker["id"], model=f"argora-e2e-{vendor}"
            )
            (server,) = add_servers(self.topology, self.cluster, [f"{prefix}-{vendor}"], device_type=device_type["id"])
            self.servers[vendor] = server

    @property
    def names(self) -> set[str]:
        return {server.name for server in self.servers.values()}


@pytest.fixture
def inventory(seeder: NetBoxSeeder, prefix: str) -> Inventory:
    return Inventory(seeder, prefix)


def test_registers_a_host_per_device_with_the_vendors_address(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, inventory: Inventory
) -> None:
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: inventory.cluster["name"]})
    status = clusters.synced(namespace, "capi")
    assert status["counts"]["created"] == 5 and status["netboxCluster"] == inventory.cluster["name"]
    hosts = clusters.hosts(namespace)
    assert set(hosts) == inventory.names
    expected = {
        "dell": "idrac-virtualmedia://{ip}/redfish/v1/Systems/System.Embedded.1",
        "hpe": "redfish-virtualmedia://{ip}/redfish/v1/Systems/1",
        "lenovo": "redfish-virtualmedia://{ip}/redfish/v1/Systems/1",
        "supermicro": "redfish-virtualmedia://{ip}/redfish/v1/Systems/1",
        "quanta": "redfish://{ip}/redfish/v1/Systems/1",
    }
    for vendor, server in inventory.servers.items():
        host = hosts[server.name]
        assert host["spec"]["bmc"] == {
            "address": expected[vendor].format(ip=server.address),
            "credentialsName": f"bmc-secret-{server.name}",
            "disableCertificateVerification": False,
        }
        assert host["spec"]["online"] is True
        assert "bootMACAddress" not in host["spec"]  # no primary IP in NetBox
        assert "rootDeviceHints" not in host["spec"]
        labels = host["metadata"]["labels"]
        assert labels["cluster.x-k8s.io/cluster-name"] == "capi"
        assert labels["kubernetes.metal.cloud.sap/device-id"] == str(server.device["id"])
        assert labels["topology.kubernetes.io/zone"] == inventory.topology.site["slug"]
        assert labels["app.kubernetes.io/managed-by"] == "argora-metal3"
        assert labels["kubernetes.metal.cloud.sap/cluster"] == inventory.cluster["name"]
        assert labels["kubernetes.metal.cloud.sap/name"] == server.name
        assert labels["kubernetes.metal.cloud.sap/role"] == inventory.topology.role["slug"]
    secret = clusters.secret(namespace, f"bmc-secret-{inventory.servers['dell'].name}")
    assert {k: base64.b64decode(v).decode() for k, v in secret.data.items()} == {
        "username": "metal",
        "password": "three",
    }
    assert any(reason == "Registered" for _, reason, _ in clusters.events(namespace, "capi"))
    # The Cluster's spec and status stay Cluster API's: we only added our annotation, no finalizer.
    cluster = clusters.get(namespace, "capi")
    assert cluster["spec"] == {"paused": False}
    assert not cluster["metadata"].get("finalizers")


def test_ipv6_boot_mac_lag_and_root_device_hints(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    hinted = seeder.ensure(
        "dcim/device-types", HINTED_TYPE, manufacturer=topology.manufacturer["id"], model=HINTED_TYPE
    )
    v6, direct, bonded = add_servers(
        topology, cluster, [f"{prefix}-v6", f"{prefix}-direct", f"{prefix}-bonded"], device_type=hinted["id"]
    )
    seeder.update(
        "ipam/ip-addresses", v6.ip["id"], address="2001:db8::" + fresh_ipv4().split(".")[-1].split("/")[0] + "/64"
    )
    # direct: the primary IP sits on eth0, whose MAC boots.
    eth0 = seeder.create_one("dcim/interfaces", device=direct.device["id"], name="eth0", type="25gbase-x-sfp28")
    eth0_mac = fresh_mac()
    mac = seeder.create_one(
        "dcim/mac-addresses", mac_address=eth0_mac, assigned_object_type="dcim.interface", assigned_object_id=eth0["id"]
    )
    seeder.update("dcim/interfaces", eth0["id"], primary_mac_address=mac["id"])
    ip = seeder.create_one(
        "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface", assigned_object_id=eth0["id"]
    )
    seeder.update("dcim/devices", direct.device["id"], primary_ip4=ip["id"])
    # bonded: the primary IP sits on bond0; its first member (by name) boots.
    bond = seeder.create_one("dcim/interfaces", device=bonded.device["id"], name="bond0", type="lag")
    macs = {}
    for name in ("eth1", "eth0"):
        member = seeder.create_one(
            "dcim/interfaces", device=bonded.device["id"], name=name, type="25gbase-x-sfp28", lag=bond["id"]
        )
        macs[name] = fresh_mac()
        mac = seeder.create_one(
            "dcim/mac-addresses",
            mac_address=macs[name],
            assigned_object_type="dcim.interface",
            assigned_object_id=member["id"],
        )
        seeder.update("dcim/interfaces", member["id"], primary_mac_address=mac["id"])
    ip = seeder.create_one(
        "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface", assigned_object_id=bond["id"]
    )
    seeder.update("dcim/devices", bonded.device["id"], primary_ip4=ip["id"])

    # The network of the primary IPs, with its gateway in the prefix's custom field and a VLAN.
    network = ipaddress.ip_interface(ip["address"]).network
    gateway = str(network.network_address + 1)
    add_prefixes(seeder, [PrefixSeed(str(network), topology.site, vlan=(320, f"{prefix}-vlan"), gateway=gateway)])
    seeder.update("dcim/interfaces", bond["id"], mode="tagged")

    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: cluster["name"]})
    clusters.synced(namespace, "capi")
    hosts = clusters.hosts(namespace)
    network_ref = hosts[bonded.name]["spec"]["networkData"]
    data = json.loads(base64.b64decode(clusters.secret(namespace, network_ref["name"]).data["networkData"]))
    assert [link["id"] for link in data["links"]] == ["eth0", "eth1", "bond0", "bond0.320"]
    (net,) = data["networks"]
    assert (net["link"], net["ip_address"]) == ("bond0.320", ip["address"].split("/")[0])
    assert net["routes"] == [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": gateway}]
    v6_address = hosts[v6.name]["spec"]["bmc"]["address"]
    assert v6_address.startswith("redfish://[2001:db8::") and v6_address.endswith("]/redfish/v1/Systems/1")
    assert "bootMACAddress" not in hosts[v6.name]["spec"]
    assert hosts[direct.name]["spec"]["bootMACAddress"] == eth0_mac.lower()
    assert hosts[bonded.name]["spec"]["bootMACAddress"] == macs["eth0"].lower()
    assert hosts[direct.name]["spec"]["rootDeviceHints"] == {"deviceName": "/dev/sda", "rotational": False}


def test_boot_mac_from_mac_objects_as_production_netbox_holds_them(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    """The primary IP's port with its only MAC assigned but not primary boots from it; with two and none
    primary NetBox does not say which: the host is registered without one and the device reported."""
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    servers = add_servers(topology, cluster, [f"{prefix}-assigned", f"{prefix}-two", f"{prefix}-bond"])
    boot_macs = {}
    shapes: tuple[MacShape, ...] = ("assigned", "two-assigned", "assigned")
    for server, shape in zip(servers, shapes, strict=True):
        port = seeder.create_one("dcim/interfaces", device=server.device["id"], name="eth0", type="25gbase-x-sfp28")
        (boot_macs[server.name],) = add_macs(seeder, [port], shape)
        if server.name.endswith("bond"):
            bond = seeder.create_one("dcim/interfaces", device=server.device["id"], name="bond0", type="lag")
            seeder.update("dcim/interfaces", port["id"], lag=bond["id"])
            port = bond
        ip = seeder.create_one(
            "ipam/ip-addresses",
            address=fresh_ipv4(),
            assigned_object_type="dcim.interface",
            assigned_object_id=port["id"],
        )
        seeder.update("dcim/devices", server.device["id"], primary_ip4=ip["id"])
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: cluster["name"]})
    status = clusters.synced(namespace, "capi")
    hosts = clusters.hosts(namespace)
    assert {name: host["spec"].get("bootMACAddress") for name, host in hosts.items()} == boot_macs
    assert boot_macs[f"{prefix}-two"] is None and all(boot_macs[s.name] for s in (servers[0], servers[2]))
    assert (status["counts"]["created"], status["counts"]["warnings"]) == (3, 1)
    (problem,) = status["problems"]
    assert problem.startswith(f"{prefix}-two: AmbiguousMAC: interface eth0 has MACs")
    assert any(reason == "DevicesIncomplete" for _, reason, _ in clusters.events(namespace, "capi"))


def test_opt_in_by_annotation_or_label_only(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    # The original operator's opt-in: NetBox cluster named like the Cluster, its type in a label.
    by_label = topology.cluster("labelled")
    add_servers(topology, by_label, [f"{prefix}-l0"])
    clusters.create(
        namespace, by_label["name"], labels={"discovery.inf.sap.cloud/clusterRole": topology.cluster_type["slug"]}
    )
    clusters.create(namespace, "ignored")
    status = clusters.synced(namespace, by_label["name"])
    assert status["counts"]["created"] == 1
    assert set(clusters.hosts(namespace)) == {f"{prefix}-l0"}
    assert clusters.sync_status(namespace, "ignored") is None


def test_paused_cluster_is_left_alone_until_unpaused(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, inventory: Inventory
) -> None:
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: inventory.cluster["name"]}, paused=True)
    clusters.create(namespace, "marker", annotations={NETBOX_CLUSTER: "no-such-netbox-cluster"})
    # Once a later Cluster was handled, the paused one would have been too.
    clusters.synced(namespace, "marker")
    assert clusters.hosts(namespace) == {}
    assert clusters.sync_status(namespace, "capi") is None
    clusters.patch(namespace, "capi", {"spec": {"paused": False}})
    clusters.synced(namespace, "capi")
    assert set(clusters.hosts(namespace)) == inventory.names


@pytest.mark.parametrize("count", [0, 2])
def test_no_or_two_netbox_clusters_is_reported_and_nothing_written(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, seeder: NetBoxSeeder, prefix: str, count: int
) -> None:
    topology = Topology(seeder, prefix)
    name = f"{prefix}-dup"
    for index in range(count):
        # NetBox allows one name twice in different groups; a name alone then matches two clusters.
        group = seeder.create_one("virtualization/cluster-groups", name=f"{prefix}-g{index}", slug=f"{prefix}-g{index}")
        cluster = seeder.create_one(
            "virtualization/clusters", name=name, type=topology.cluster_type["id"], group=group["id"], status="active"
        )
        add_servers(topology, cluster, [f"{prefix}-d{index}"])
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: name})
    status = clusters.synced(namespace, "capi")
    assert status["error"] == ("NoNetBoxCluster" if count == 0 else "AmbiguousNetBoxCluster")
    assert clusters.hosts(namespace) == {}
    assert any(reason == status["error"] for _, reason, _ in clusters.events(namespace, "capi"))


def test_a_named_secret_that_did_not_opt_in_is_never_copied(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, inventory: Inventory
) -> None:
    secret = {"metadata": {"name": "app-db"}, "stringData": {"username": "app", "password": "db-password"}}
    clusters.core.create_namespaced_secret(namespace, secret)
    annotations = {NETBOX_CLUSTER: inventory.cluster["name"], "argora.cloud.sap/bmc-credentials": "app-db"}
    clusters.create(namespace, "capi", annotations=annotations)
    status = clusters.synced(namespace, "capi")
    assert clusters.hosts(namespace) == {}
    assert [name for name in clusters.secret_names(namespace) if name.startswith("bmc-secret-")] == []
    assert len(status["problems"]) == len(inventory.names)
    assert all(": CredentialsNotOptedIn" in problem for problem in status["problems"])
    assert "db-password" not in json.dumps(status) and "db-password" not in metal3.log()


def test_metal3s_secret_metadata_survives_a_resync(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, inventory: Inventory
) -> None:
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: inventory.cluster["name"]})
    clusters.synced(namespace, "capi")
    name = f"bmc-secret-{inventory.servers['hpe'].name}"
    host = clusters.hosts(namespace)[inventory.servers["hpe"].name]
    # What the baremetal-operator does to a credentials Secret it uses.
    clusters.core.patch_namespaced_secret(
        name,
        namespace,
        {
            "metadata": {
                "labels": {"environment.metal3.io": "baremetal"},
                "finalizers": ["baremetalhost.metal3.io/secret"],
                "ownerReferences": [
                    {
                        "apiVersion": "metal3.io/v1alpha1",
                        "kind": "BareMetalHost",
                        "name": host["metadata"]["name"],
                        "uid": host["metadata"]["uid"],
                    }
                ],
            }
        },
    )
    clusters.core.patch_namespaced_secret("bmc", CREDENTIALS_NAMESPACE, {"stringData": {"password": "rotated"}})
    try:
        status = clusters.resync(namespace, "capi")
        assert status["counts"]["updated"] == 5
        secret = clusters.secret(namespace, name)
        assert base64.b64decode(secret.data["password"]).decode() == "rotated"
        assert secret.metadata.labels["environment.metal3.io"] == "baremetal"
        assert secret.metadata.finalizers == ["baremetalhost.metal3.io/secret"]
        assert secret.metadata.owner_references[0].kind == "BareMetalHost"
    finally:
        clusters.core.patch_namespaced_secret("bmc", CREDENTIALS_NAMESPACE, {"stringData": {"password": "three"}})
        clusters.core.patch_namespaced_secret(name, namespace, {"metadata": {"finalizers": None}})


def test_registration_drift_is_reported_not_forced(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, inventory: Inventory, seeder: NetBoxSeeder
) -> None:
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: inventory.cluster["name"]})
    clusters.synced(namespace, "capi")
    server = inventory.servers["dell"]
    before = clusters.hosts(namespace)[server.name]["spec"]["bmc"]["address"]
    seeder.update("ipam/ip-addresses", server.ip["id"], address=fresh_ipv4())
    status = clusters.resync(namespace, "capi")
    assert clusters.hosts(namespace)[server.name]["spec"]["bmc"]["address"] == before
    assert status["counts"]["drifted"] == 1
    assert "RegistrationDrift" in status["problems"][0]
    assert any(reason == "RegistrationDrift" for _, reason, _ in clusters.events(namespace, "capi"))


@pytest.mark.parametrize("prune", [False, True])
def test_devices_that_leave_are_pruned_only_on_opt_in(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, inventory: Inventory, seeder: NetBoxSeeder, prune: bool
) -> None:
    annotations = {NETBOX_CLUSTER: inventory.cluster["name"]}
    if prune:
        annotations["argora.cloud.sap/prune"] = "true"
    clusters.create(namespace, "capi", annotations=annotations)
    clusters.synced(namespace, "capi")
    leaving = inventory.servers["lenovo"]
    seeder.update("dcim/devices", leaving.device["id"], status="offline")
    status = clusters.resync(namespace, "capi")
    hosts = clusters.hosts(namespace)
    if prune:
        assert leaving.name not in hosts and status["counts"]["pruned"] == 1
        assert wait_for(
            lambda: not _secret_exists(clusters, namespace, f"bmc-secret-{leaving.name}"), 10, "secret gone"
        )
    else:
        assert leaving.name in hosts and status["counts"]["pruneHeldBack"] == 1
        assert "argora.cloud.sap/prune" in status["pruneHeldBack"]
        assert any(reason == "DevicesLeft" for _, reason, _ in clusters.events(namespace, "capi"))


def _secret_exists(clusters: Clusters, namespace: str, name: str) -> bool:
    try:
        clusters.secret(namespace, name)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_netbox_down_changes_nothing_and_recovers(
    metal3: OperatorProcess,
    clusters: Clusters,
    namespace: str,
    inventory: Inventory,
    netbox: NetBoxServer,
    seeder: NetBoxSeeder,
) -> None:
    clusters.create(
        namespace, "capi", annotations={NETBOX_CLUSTER: inventory.cluster["name"], "argora.cloud.sap/prune": "true"}
    )
    clusters.synced(namespace, "capi")
    seeder.update("dcim/devices", inventory.servers["hpe"].device["id"], status="offline")
    with netbox.database_stopped():
        status = clusters.resync(namespace, "capi")
        assert status["error"] == "NetBoxUnavailable"
        assert set(clusters.hosts(namespace)) == inventory.names

    def recovered() -> dict[str, Any] | None:
        current = clusters.sync_status(namespace, "capi")
        return current if current and "counts" in current else None

    # The failed pass is retried on its own after a backoff, without anyone asking.
    status = wait_for(recovered, 120, "recovered")
    assert status["counts"]["pruned"] == 1


def test_bad_devices_do_not_block_the_good_ones(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    good = add_servers(topology, cluster, [f"{prefix}-good"])
    add_servers(topology, cluster, [f"{prefix}-no-oob"], set_oob_ip=False, interface_name="eth0")
    clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER: cluster["name"]})
    status = clusters.synced(namespace, "capi")
    assert set(clusters.hosts(namespace)) == {good[0].name}
    assert status["counts"]["skipped"] == 1
    assert status["problems"][0].startswith(f"{prefix}-no-oob: NoOOBIP")


@pytest.mark.parametrize("named", ["../../{other}/secrets/{secret}", "..%2F..%2F{other}%2Fsecrets%2F{secret}", ".."])
def test_a_credentials_annotation_never_reaches_another_namespaces_secret(
    metal3: OperatorProcess, clusters: Clusters, namespace: str, inventory: Inventory, named: str
) -> None:
    """The annotation is a tenant's text: a path in it must not read (and copy into the tenant's namespace)
    another namespace's opted-in BMC password."""
    other = f"{namespace[:50]}-other"
    clusters.core.create_namespace({"metadata": {"name": other}})
    secret = {
        "metadata": {"name": "bmc", "labels": {"argora.cloud.sap/bmc-credentials": "true"}},
        "stringData": {"username": "root", "password": "other-tenants-password"},
    }
    clusters.core.create_namespaced_secret(other, secret)
    annotation = named.format(other=other, secret="bmc")
    clusters.create(
        namespace,
        "capi",
        annotations={NETBOX_CLUSTER: inventory.cluster["name"], "argora.cloud.sap/bmc-credentials": annotation},
    )
    status = clusters.synced(namespace, "capi")
    assert clusters.hosts(namespace) == {}
    assert [name for name in clusters.secret_names(namespace) if name.startswith("bmc-secret-")] == []
    assert status["problems"] and all(": InvalidCredentialsRef" in problem for problem in status["problems"])
    assert "other-tenants-password" not in json.dumps(status) and "other-tenants-password" not in metal3.log()
