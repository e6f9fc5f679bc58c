"""Replacing the original Argora operator: its objects, as it wrote them, are taken over in place.

Each test seeds NetBox, writes the objects the original operator writes for that inventory (its names,
labels, field manager and owner references, as captured from a real run of it), then starts Argora
on them and checks what a platform team would: no second object, nothing deleted, no drift reported,
every label kept, the credentials rotated into the existing Secrets.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from argora_common.kube import Owner
from argora_dev.kubeobjects import IPAM_POOLS, Clusters, Objects, Pools
from argora_dev.operator import OperatorProcess
from argora_dev.seed import (
    NetBoxSeeder,
    PrefixSeed,
    Server,
    Topology,
    add_prefixes,
    add_region,
    add_servers,
    fresh_network,
)

pytestmark = pytest.mark.integration

ORIGINAL_MANAGER = "manager"  # the original operator's field manager (controller-runtime's default)
PREFIX = "kubernetes.metal.cloud.sap"
METAL = ("metal.ironcore.dev", "v1alpha1")
METAL3 = ("metal3.io", "v1alpha1")
NEW_CREDENTIALS = {"username": "argora", "password": "rotated-by-argora"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decoded(data: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def building_block(prefix: str) -> str:
    """Device names are `<node>-<bb>`; the run-unique part of the prefix keeps cluster-scoped names apart."""
    return prefix.split("-", maxsplit=1)[0]


def original_labels(topology: Topology, cluster: dict[str, Any], server: Server) -> dict[str, str]:
    node, bb = server.name.split("-")
    return {
        f"{PREFIX}/bb": bb,
        f"{PREFIX}/cluster": cluster["name"],
        f"{PREFIX}/name": server.name,
        f"{PREFIX}/nodename": node,
        "topology.kubernetes.io/region": topology.region["slug"],
        "topology.kubernetes.io/zone": topology.site["slug"],
    }


def assert_labels_kept(obj: dict[str, Any], labels: dict[str, str]) -> None:
    have = obj["metadata"]["labels"]
    assert {key: have.get(key) for key in labels} == labels


@pytest.fixture
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


def test_argora_ironcore_adopts_the_original_bmcs_and_bmcsecrets(
    objects: Objects,
    namespace: str,
    seeder: NetBoxSeeder,
    prefix: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    topology = Topology(seeder, prefix)
    platform = seeder.create_one("dcim/platforms", name=f"{prefix}-linux", slug=f"{prefix}-linux")
    cluster = topology.cluster("big")
    bb = building_block(prefix)
    servers = add_servers(
        topology, cluster, [f"node{i:03d}-{bb}" for i in (1, 2, 3)], platform=platform["id"], mac_shape="assigned"
    )
    adopted, foreign = servers[:2], servers[2]
    labels: dict[str, dict[str, str]] = {}
    uids: dict[str, str] = {}
    for server in servers:
        labels[server.name] = {
            **original_labels(topology, cluster, server),
            f"{PREFIX}/cluster-type": topology.cluster_type["slug"],
            f"{PREFIX}/platform": platform["slug"],
            f"{PREFIX}/role": topology.role["slug"],
            f"{PREFIX}/type": topology.device_type["slug"],
        }
        if server is foreign:
            # Same name, but the original operator wrote it for another device: not ours to take.
            labels[server.name][f"{PREFIX}/name"] = f"node999-{bb}"
        bmc = objects.custom.create_cluster_custom_object(
            *METAL, "bmcs",
            {
                "apiVersion": "/".join(METAL), "kind": "BMC",
                "metadata": {"name": server.name, "labels": labels[server.name]},
                "spec": {
                    "access": {"ip": server.address},
                    "bmcSecretRef": {"name": server.name},
                    "protocol": {"name": "Redfish", "port": 443},
                },
            },
            field_manager=ORIGINAL_MANAGER,
        )  # fmt: skip
        secret = objects.custom.create_cluster_custom_object(
            *METAL, "bmcsecrets",
            {
                "apiVersion": "/".join(METAL), "kind": "BMCSecret",
                "metadata": {
                    "name": server.name,
                    "labels": labels[server.name],
                    "ownerReferences": [
                        {
                            "apiVersion": "/".join(METAL), "kind": "BMC", "name": server.name,
                            "uid": bmc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
                        }
                    ],
                },
                "data": {"username": b64("admin"), "password": b64("secret")},
            },
            field_manager=ORIGINAL_MANAGER,
        )  # fmt: skip
        uids[server.name] = bmc["metadata"]["uid"]
        uids[f"secret/{server.name}"] = secret["metadata"]["uid"]
    objects.create_secret(namespace, "bmc", NEW_CREDENTIALS)
    objects.create_import(
        namespace, "big", {"clusters": [{"name": cluster["name"], "bmcCredentialsRef": {"name": "bmc"}}]}
    )
    objects.custom.patch_namespaced_custom_object_status(
        "argora.cloud.sap", "v1alpha1", namespace, "clusterimports", "big",
        {"status": {"state": "Ready", "conditions": [{
            "type": "Ready", "status": "True", "reason": "ClusterImportSucceeded",
            "message": "ClusterImport succeeded", "lastTransitionTime": "2026-11-26T08:20:50Z",
        }]}},
    )  # fmt: skip

    operator = start_operator("ironcore", {"ARGORA_NAMESPACES": namespace})
    ci = objects.synced_import(namespace, "big")

    counts = ci["status"]["counts"]
    assert (counts["created"], counts["adopted"], counts["drifted"], counts["pruned"]) == (0, 2, 0, 0)
    assert [(p["device"], p["reason"]) for p in ci["status"]["problems"]] == [(foreign.name, "NameTaken")]
    assert ci["status"]["state"] == "Ready"
    assert any(reason == "Adopted" for _, reason, _ in objects.events(namespace, "big"))
    for server in servers:
        bmc = objects.get_metal("bmcs", server.name)
        secret = objects.get_metal("bmcsecrets", server.name)
        assert bmc is not None and secret is not None
        # The same objects, no second one: nothing was deleted and created anew.
        assert (bmc["metadata"]["uid"], secret["metadata"]["uid"]) == (uids[server.name], uids[f"secret/{server.name}"])
        assert_labels_kept(bmc, labels[server.name])
        assert_labels_kept(secret, labels[server.name])
        assert secret["metadata"]["ownerReferences"][0]["uid"] == uids[server.name]
        assert "scheme" not in bmc["spec"]["protocol"]
        # spec.access cannot change after the BMC was made; the original wrote it without a MAC.
        assert bmc["spec"]["access"] == {"ip": server.address}
        credentials = NEW_CREDENTIALS if server in adopted else {"username": "admin", "password": "secret"}
        assert decoded(secret["data"]) == credentials
    assert objects.owned("bmcs", namespace, "big").keys() == {server.name for server in adopted}
    assert operator.metric("argora_objects_written_total", action="create") == 0
    assert operator.metric("argora_objects_written_total", action="delete") == 0

    # Once adopted, they are ours like any other: the next pass has nothing to do.
    counts = objects.resync(namespace, "big")["status"]["counts"]
    assert (counts["created"], counts["updated"], counts["adopted"], counts["unchanged"]) == (0, 0, 0, 2)


def test_argora_metal3_adopts_the_original_hosts_and_their_secrets(
    api_client: client.ApiClient,
    namespace: str,
    seeder: NetBoxSeeder,
    prefix: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    clusters = Clusters(api_client)
    topology = Topology(seeder, prefix, manufacturer="Dell", shared_vendor=True)
    cluster = topology.cluster("k8s")
    bb = building_block(prefix)
    ceph = seeder.ensure("extras/tags", "ceph-hdd", name="ceph-HDD")
    storage, plain = add_servers(topology, cluster, [f"node001-{bb}", f"node002-{bb}"], mac_shape="two-with-primary")
    seeder.update("dcim/devices", storage.device["id"], tags=[ceph["id"]])
    roles = {storage.name: "ceph-osd", plain.name: topology.role["slug"]}
    labels: dict[str, dict[str, str]] = {}
    uids: dict[str, str] = {}
    for server in (storage, plain):
        labels[server.name] = {
            key: value
            for key, value in original_labels(topology, cluster, server).items()
            if key != f"{PREFIX}/nodename"  # the original's hosts carry no nodename
        } | {f"{PREFIX}/role": roles[server.name]}
        host = clusters.custom.create_namespaced_custom_object(
            *METAL3, namespace, "baremetalhosts",
            {
                "apiVersion": "/".join(METAL3), "kind": "BareMetalHost",
                "metadata": {"name": server.name, "labels": labels[server.name]},
                "spec": {
                    "architecture": "x86_64",
                    "automatedCleaningMode": "disabled",
                    "bmc": {
                        "address": f"idrac-redfish://{server.address}/redfish/v1/Systems/System.Embedded.1",
                        "credentialsName": f"bmc-secret-{server.name}",
                        "disableCertificateVerification": True,
                    },
                    "networkData": {"name": f"networkdata-{server.name}", "namespace": namespace},
                    "online": True,
                    "rootDeviceHints": {"model": "BOSS"},
                },
            },
            field_manager=ORIGINAL_MANAGER,
        )  # fmt: skip
        secret = clusters.core.create_namespaced_secret(
            namespace,
            {
                "metadata": {"name": f"bmc-secret-{server.name}"},
                "type": "Opaque",
                "data": {"username": b64("admin"), "password": b64("secret")},
            },
            field_manager=ORIGINAL_MANAGER,
        )
        uids[server.name] = host["metadata"]["uid"]
        uids[f"secret/{server.name}"] = secret.metadata.uid
    before = {name: host["spec"] for name, host in clusters.hosts(namespace).items()}
    clusters.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "bmc"}, "stringData": NEW_CREDENTIALS, "type": "Opaque"}
    )
    clusters.create(
        namespace, cluster["name"], labels={"discovery.inf.sap.cloud/clusterRole": topology.cluster_type["slug"]}
    )

    operator = start_operator(
        "metal3", {"ARGORA_NAMESPACES": namespace, "ARGORA_DEFAULT_BMC_CREDENTIALS": f"{namespace}/bmc"}
    )
    status = clusters.synced(namespace, cluster["name"])

    counts = status["counts"]
    assert (counts["created"], counts["adopted"], counts["drifted"], counts["pruned"]) == (0, 2, 0, 0), status
    assert status["problems"] == []
    hosts = clusters.hosts(namespace)
    assert set(hosts) == {storage.name, plain.name}
    for server in (storage, plain):
        host = hosts[server.name]
        assert host["metadata"]["uid"] == uids[server.name]
        assert_labels_kept(host, labels[server.name])
        # Registered as the original did it: same address (another driver, same IP, is no drift) and the
        # fields Argora does not manage stay.
        assert host["spec"] == before[server.name]
        secret = clusters.secret(namespace, f"bmc-secret-{server.name}")
        assert secret.metadata.uid == uids[f"secret/{server.name}"]
        assert decoded(secret.data) == NEW_CREDENTIALS
        assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "argora-metal3"
    names = {secret.metadata.name for secret in clusters.core.list_namespaced_secret(namespace).items}
    assert names == {"bmc", f"bmc-secret-{storage.name}", f"bmc-secret-{plain.name}"}
    assert operator.metric("argora_objects_written_total", action="create") == 0
    assert operator.metric("argora_objects_written_total", action="delete") == 0

    counts = clusters.resync(namespace, cluster["name"])["counts"]
    assert (counts["created"], counts["updated"], counts["adopted"], counts["unchanged"]) == (0, 0, 0, 2)


def original_pool_spec(network: ipaddress.IPv4Network, selector: dict[str, Any]) -> dict[str, Any]:
    """The spec the original operator writes for a prefix, from the selector's fields it knows: the first
    host as gateway; excluded the excludeMask network, the selector's addresses, then the prefix's last N
    addresses (its broadcast address included) one by one."""
    excluded = [f"{network.network_address}/{selector['excludeMask']}"] if "excludeMask" in selector else []
    excluded += selector.get("excludedAddresses", [])
    last_n = min(selector.get("excludeLastNAddresses", 0), network.num_addresses)
    excluded += [str(network.broadcast_address - offset) for offset in reversed(range(last_n))]
    spec: dict[str, Any] = {
        "addresses": [str(network)],
        "gateway": str(network.network_address + 1),
        "prefix": network.prefixlen,
    }
    if excluded:  # a Go struct field with omitempty: no list at all when empty
        spec["excludedAddresses"] = excluded
    return spec


def global_pools(objects: Objects) -> dict[str, dict[str, Any]]:
    items = objects.custom.list_cluster_custom_object(*IPAM_POOLS, "globalinclusterippools")["items"]
    return {item["metadata"]["name"]: item for item in items}


def write_pool(objects: Objects, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    """A GlobalInClusterIPPool written as the original operator writes one (no labels, its field manager)."""
    body = {
        "apiVersion": "/".join(IPAM_POOLS), "kind": "GlobalInClusterIPPool",
        "metadata": {"name": name, **({"labels": labels} if labels else {})}, "spec": spec,
    }  # fmt: skip
    created = objects.custom.create_cluster_custom_object(
        *IPAM_POOLS, "globalinclusterippools", body, field_manager=ORIGINAL_MANAGER
    )
    return str(created["metadata"]["uid"])


def pools_holding(pools: dict[str, dict[str, Any]], network: ipaddress.IPv4Network) -> list[str]:
    """The pools any of whose entries (CIDR, address or range a-b) shares an address with `network`."""

    def span(entry: str) -> tuple[int, int, int]:
        if "-" in entry:
            first, last = map(ipaddress.ip_address, entry.split("-", 1))
            return first.version, int(first), int(last)
        held = ipaddress.ip_network(entry, strict=False)
        return held.version, int(held.network_address), int(held.broadcast_address)

    low, high = int(network.network_address), int(network.broadcast_address)
    return sorted(
        name
        for name, pool in pools.items()
        for version, first, last in map(span, pool["spec"].get("addresses", []))
        if version == 4 and first <= high and low <= last
    )


def test_argora_ippool_adopts_the_original_pools_and_never_puts_a_prefix_in_two_pools(
    objects: Objects,
    api_client: client.ApiClient,
    namespace: str,
    seeder: NetBoxSeeder,
    prefix: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    """Production as the original left it: prefixes of every status scoped to sites and locations, compute
    transit prefixes, pools under Argora's names and under older ones, a nameOverride pool of a
    multi-prefix selection, and another team's pool over part of a prefix."""
    region, sites = add_region(seeder, f"{prefix}-qa", 4)
    a, b, c, d = sites
    location = seeder.create_one("dcim/locations", name=f"{prefix}-hall", slug=f"{prefix}-hall", site=b["id"])
    nodes, transit, mgmt = seeder.create(
        "ipam/roles",
        [
            {"name": f"{prefix}-{role}", "slug": f"{prefix}-{role}"}
            for role in ("kubernetes-nodes", "cc-kubernetes-compute-transit", "mgmt")
        ],
    )
    net = {key: fresh_network() for key in ("n1", "n2", "n3", "f1", "t1", "t2", "m1", "m2")}
    seeds = {
        "n1": PrefixSeed(str(net["n1"]), a, role=nodes, gateway=f"{net['n1'].network_address + 1}/24"),
        "n2": PrefixSeed(str(net["n2"]), b, location=location, role=nodes),
        "n3": PrefixSeed(str(net["n3"]), c, role=nodes, gateway=f"{net['n3'].network_address + 254}/24"),
        "f1": PrefixSeed(str(net["f1"]), d, role=nodes),
        "t1": PrefixSeed(str(net["t1"]), a, role=transit, vlan=(402, f"{prefix}-cc-compute2-transit")),
        "t2": PrefixSeed(str(net["t2"]), b, role=transit, vlan=(401, f"{prefix}-cc-compute1-transit")),
        "m1": PrefixSeed(str(net["m1"]), a, role=mgmt),
        "m2": PrefixSeed(str(net["m2"]), b, role=mgmt),
    }
    records = dict(zip(seeds, add_prefixes(seeder, list(seeds.values())), strict=True))
    for key, status in (("n2", "reserved"), ("n3", "deprecated"), ("t2", "deprecated")):
        seeder.update("ipam/prefixes", records[key]["id"], status=status)

    # The IPPoolImport as the original operator's users wrote it: its fields only.
    node_selector = {
        "namePrefix": "nodes", "region": region["slug"], "role": nodes["slug"], "excludeMask": 29,
        "excludedAddresses": [str(net["n1"].network_address + 10)], "excludeLastNAddresses": 3,
    }  # fmt: skip
    transit_selector = {"namePrefix": "transit", "region": region["slug"], "role": transit["slug"]}
    transit_selector["excludeLastNAddresses"] = 2
    mgmt_selector = {"nameOverride": f"{prefix}-mgmt", "region": region["slug"], "role": mgmt["slug"]}

    # Its pools: under Argora's names, under an older namePrefix, and the nameOverride's for the first prefix.
    originals = {
        f"nodes-{a['slug']}": ("n1", node_selector),
        f"oldnodes-{b['slug']}": ("n2", node_selector),
        f"transit-a1-{region['slug']}": ("t1", transit_selector),
        f"cc-transit-b0-{region['slug']}": ("t2", transit_selector),
        f"{prefix}-mgmt": ("m1", mgmt_selector),
    }
    specs = {name: original_pool_spec(net[key], selector) for name, (key, selector) in originals.items()}
    uids = {name: write_pool(objects, name, spec) for name, spec in specs.items()}
    # Another team's pool over half of a prefix: that prefix gets no pool of Argora's.
    foreign_name = f"{prefix}-other-team"
    foreign_labels = Owner("other-team", "pools", "argora-ippool").labels()
    half = next(net["f1"].subnets(1))
    foreign_spec = {"addresses": [str(half)], "gateway": str(half.network_address + 1), "prefix": half.prefixlen}
    uids[foreign_name] = write_pool(objects, foreign_name, foreign_spec, foreign_labels)
    # Machines got addresses out of two of them.
    pools = Pools(api_client)
    pools.allocate(namespace, f"nodes-{a['slug']}", str(net["n1"].network_address + 20), 24)
    pools.allocate(namespace, f"oldnodes-{b['slug']}", str(net["n2"].network_address + 20), 24)
    objects.create_import(
        namespace, "pools", {"ippools": [node_selector, transit_selector, mgmt_selector]}, kind="IPPoolImport"
    )

    operator = start_operator("ippool", {"ARGORA_NAMESPACES": namespace})
    status = objects.synced_import(namespace, "pools", kind="IPPoolImport")["status"]

    counts = status["counts"]
    assert counts["prefixes"] == 8
    # Only n3 had no pool; f1 and m2 get none by design.
    assert (counts["created"], counts["adopted"], counts["updated"], counts["pruned"]) == (1, 5, 0, 0), status
    assert {(p["prefix"], p["reason"]) for p in status["problems"]} == {
        (str(net["f1"]), "PrefixInOtherPool"),
        (str(net["m2"]), "NameCollision"),
    }
    message = next(p["message"] for p in status["problems"] if p["reason"] == "NameCollision")
    assert f"it keeps {net['m1']}, which the pool holds" in message
    assert operator.metric("argora_objects_written_total", action="create") == 1
    assert operator.metric("argora_objects_written_total", action="delete") == 0
    assert any(reason == "Adopted" for _, reason, _ in objects.events(namespace, "pools"))

    everything = global_pools(objects)
    for name, spec in specs.items():
        pool = everything[name]
        # The same pool, taken over in place: its uid, network and excluded addresses as they were.
        assert pool["metadata"]["uid"] == uids[name]
        assert {key: pool["spec"].get(key) for key in ("addresses", "gateway", "prefix")} == {
            key: spec[key] for key in ("addresses", "gateway", "prefix")
        }
        assert pool["spec"].get("excludedAddresses", []) == spec.get("excludedAddresses", [])
        labels = pool["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "argora-ippool"
        assert labels[f"{PREFIX}/prefix-id"] == str(records[originals[name][0]]["id"])
    created = everything[f"nodes-{c['slug']}"]
    assert created["spec"]["gateway"] == str(net["n3"].network_address + 254)
    foreign = everything[foreign_name]
    assert (foreign["metadata"]["uid"], foreign["metadata"]["labels"], foreign["spec"]) == (
        uids[foreign_name], foreign_labels, foreign_spec
    )  # fmt: skip
    # No prefix is handed out by two pools.
    assert {key: pools_holding(everything, network) for key, network in net.items()} == {
        "n1": [f"nodes-{a['slug']}"],
        "n2": [f"oldnodes-{b['slug']}"],
        "n3": [f"nodes-{c['slug']}"],
        "f1": [foreign_name],
        "t1": [f"transit-a1-{region['slug']}"],
        "t2": [f"cc-transit-b0-{region['slug']}"],
        "m1": [f"{prefix}-mgmt"],
        "m2": [],
    }

    # Taken over, they are Argora's: the next pass finds each again under its name and changes nothing.
    counts = objects.resync(namespace, "pools", kind="IPPoolImport")["status"]["counts"]
    assert (counts["created"], counts["updated"], counts["adopted"], counts["pruned"]) == (0, 0, 0, 0)
    assert counts["unchanged"] == 6
    assert set(global_pools(objects)) == set(everything)
    assert operator.metric("argora_objects_written_total", action="delete") == 0
