"""argora-ippool as a process against the real API server (upstream in-cluster IPAM CRDs) and NetBox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, Pools, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Topology, ensure_gateway_field, fresh_network

pytestmark = pytest.mark.integration

KIND = "IPPoolImport"
LABELS = "kubernetes.metal.cloud.sap"


@pytest.fixture(scope="module")
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


@pytest.fixture(scope="module")
def pools(api_client: client.ApiClient) -> Pools:
    return Pools(api_client)


@pytest.fixture(scope="module")
def ippool(
    kube: KubeCluster, netbox: NetBoxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One argora-ippool for the module, with a read-only NetBox token."""
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    ensure_gateway_field(seeder)
    env = operator_environment(kube, netbox, netbox.readonly_v2_token)
    operator = OperatorProcess("ippool", tmp_path_factory.mktemp("ippool"), env).start()
    yield operator
    operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


def synced(objects: Objects, namespace: str, name: str = "pools") -> dict[str, Any]:
    return objects.synced_import(namespace, name, kind=KIND)


def resynced(objects: Objects, namespace: str, name: str = "pools") -> dict[str, Any]:
    return objects.resync(namespace, name, kind=KIND)


def condition(obj: dict[str, Any], kind: str) -> tuple[str, str]:
    found = next(c for c in obj["status"]["conditions"] if c["type"] == kind)
    return found["status"], found["reason"]


def problems(obj: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["prefix"], p["reason"]) for p in obj["status"].get("problems", [])}


class Selection:
    """Prefixes A and B in two regions under one parent, differing in every criterion a selector has."""

    def __init__(self, seeder: NetBoxSeeder, prefix: str) -> None:
        self.parent = seeder.create_one("dcim/regions", name=f"{prefix}-parent", slug=f"{prefix}-parent")
        self.a, self.b = Topology(seeder, f"{prefix}-a"), Topology(seeder, f"{prefix}-b")
        for topology in (self.a, self.b):
            seeder.update("dcim/regions", topology.region["id"], parent=self.parent["id"])
        self.tag = seeder.create_one("extras/tags", name=f"{prefix}-tag", slug=f"{prefix}-tag")
        roles = seeder.create(
            "ipam/roles", [{"name": f"{prefix}-{x}-role", "slug": f"{prefix}-{x}-role"} for x in "ab"]
        )
        self.role_a = roles[0]
        vrfs = seeder.create("ipam/vrfs", [{"name": f"{prefix}-vrf-{x}"} for x in "ab"])
        self.vrf_a = vrfs[0]
        self.network_a, self.network_b = fresh_network(), fresh_network()
        self.prefix_a, self.prefix_b = seeder.create(
            "ipam/prefixes",
            [
                {
                    "prefix": str(network), "scope_type": "dcim.site", "scope_id": topology.site["id"],
                    "role": role["id"], "tenant": topology.tenant["id"], "vrf": vrf["id"], "status": status,
                    "tags": tags,
                }
                for network, topology, role, vrf, status, tags in (
                    (self.network_a, self.a, roles[0], vrfs[0], "active", [self.tag["id"]]),
                    (self.network_b, self.b, roles[1], vrfs[1], "reserved", []),
                )
            ],
        )  # fmt: skip


CRITERIA: dict[str, tuple[Callable[[Selection], dict[str, Any]], str]] = {
    "region": (lambda s: {"region": s.a.region["slug"]}, "a"),
    "role": (lambda s: {"role": s.role_a["slug"]}, "a"),
    "prefix": (lambda s: {"prefix": str(s.network_a)}, "a"),
    "site": (lambda s: {"region": s.parent["slug"], "site": s.a.site["slug"]}, "a"),
    "tenant": (lambda s: {"region": s.parent["slug"], "tenant": s.a.tenant["slug"]}, "a"),
    "vrf": (lambda s: {"region": s.parent["slug"], "vrf": s.vrf_a["name"]}, "a"),
    "tags": (lambda s: {"region": s.parent["slug"], "tags": [s.tag["slug"]]}, "a"),
    "status": (lambda s: {"region": s.parent["slug"], "status": "reserved"}, "b"),
    # Without a status every status is selected, as the original operator did: B is reserved.
    "every status": (lambda s: {"region": s.b.region["slug"]}, "b"),
}


@pytest.mark.parametrize("criterion", list(CRITERIA))
def test_one_pool_per_selected_prefix(
    ippool: OperatorProcess, objects: Objects, pools: Pools, seeder: NetBoxSeeder, namespace: str, prefix: str,
    criterion: str,
) -> None:  # fmt: skip
    selection = Selection(seeder, prefix)
    criteria, which = CRITERIA[criterion]
    objects.create_import(namespace, "pools", {"ippools": [{"namePrefix": "np", **criteria(selection)}]}, kind=KIND)
    status = synced(objects, namespace)["status"]
    topology, network, record = (
        (selection.a, selection.network_a, selection.prefix_a)
        if which == "a"
        else (selection.b, selection.network_b, selection.prefix_b)
    )
    owned = pools.owned(namespace, "pools")
    assert set(owned) == {f"np-{topology.site['slug']}"}
    pool = owned[f"np-{topology.site['slug']}"]
    assert pool["spec"] == {
        "addresses": [str(network)],
        "prefix": 24,
        "gateway": str(network.network_address + 1),
        "excludedAddresses": [],
    }
    labels = pool["metadata"]["labels"]
    assert labels[f"{LABELS}/prefix-id"] == str(record["id"])
    assert labels[f"{LABELS}/site"] == topology.site["slug"]
    assert labels[f"{LABELS}/region"] == topology.region["slug"]
    assert labels["app.kubernetes.io/managed-by"] == "argora-ippool"
    assert not pool["metadata"].get("finalizers")
    assert (status["counts"]["prefixes"], status["counts"]["created"]) == (1, 1)
    assert status["state"] == "Ready"


def test_names_and_scopes_as_production_netbox_holds_them(
    ippool: OperatorProcess, objects: Objects, pools: Pools, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    """NetBox 4.2+ prefixes are scoped to a site, a location or a region; compute transit prefixes are
    named after the site's letter, the compute block and the region, as the original operator did."""
    region = seeder.create_one("dcim/regions", name=f"{prefix}-qa", slug=f"{prefix}-qa")
    site = seeder.create_one("dcim/sites", name=f"{prefix}-qab", slug=f"{prefix}-qab", region=region["id"])
    location = seeder.create_one("dcim/locations", name=f"{prefix}-room", slug=f"{prefix}-room", site=site["id"])
    transit, plain = seeder.create(
        "ipam/roles",
        [
            {"name": f"{prefix}-cc-kubernetes-compute-transit", "slug": f"{prefix}-cc-kubernetes-compute-transit"},
            {"name": f"{prefix}-plain", "slug": f"{prefix}-plain"},
        ],
    )
    vlan = seeder.create_one("ipam/vlans", vid=402, name=f"{prefix}-cc-compute2-transit")
    networks = {key: fresh_network() for key in ("transit", "location", "region")}
    seeder.create(
        "ipam/prefixes",
        [
            {"prefix": str(networks["transit"]), "scope_type": "dcim.site", "scope_id": site["id"],
             "role": transit["id"], "vlan": vlan["id"]},
            {"prefix": str(networks["location"]), "scope_type": "dcim.location", "scope_id": location["id"],
             "role": plain["id"]},
            {"prefix": str(networks["region"]), "scope_type": "dcim.region", "scope_id": region["id"],
             "role": plain["id"]},
        ],
    )  # fmt: skip
    spec = {
        "ippools": [
            {"namePrefix": "tr", "role": transit["slug"]},
            {"namePrefix": "pl", "role": plain["slug"]},
            {"nameOverride": f"{prefix}-regional", "prefix": str(networks["region"])},
        ]
    }
    objects.create_import(namespace, "pools", spec, kind=KIND)
    obj = synced(objects, namespace)
    owned = pools.owned(namespace, "pools")
    assert {name: pool["spec"]["addresses"] for name, pool in owned.items()} == {
        f"tr-b1-{region['slug']}": [str(networks["transit"])],
        f"pl-{site['slug']}": [str(networks["location"])],
        f"{prefix}-regional": [str(networks["region"])],
    }
    assert owned[f"tr-b1-{region['slug']}"]["metadata"]["labels"][f"{LABELS}/vlan"] == "402"
    # The region-scoped prefix has no site to name a pool after under spec.ippools[1].
    assert problems(obj) == {(str(networks["region"]), "NoSite")}
    assert condition(obj, "Ready") == ("True", "SyncedWithProblems")
    assert ("Warning", "PrefixesSkipped", "1 prefixes: 1 NoSite") in objects.events(namespace, "pools")


def test_exclusions_and_gateway_follow_netbox_and_the_spec(
    ippool: OperatorProcess, objects: Objects, pools: Pools, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    network, other = fresh_network(), fresh_network()
    record, _ = seeder.create(
        "ipam/prefixes",
        [
            {"prefix": str(network), "scope_type": "dcim.site", "scope_id": topology.site["id"],
             "custom_fields": {"gateway": f"{network.network_address + 254}/24"}},
            {"prefix": str(other), "scope_type": "dcim.site", "scope_id": topology.site["id"]},
        ],
    )  # fmt: skip
    base = network.network_address
    spec = {
        "ippools": [
            {
                "namePrefix": "ex", "prefix": str(network), "excludeMask": 28,
                "excludedAddresses": [f"{base + 40}", f"{base + 50}-{base + 59}", "2001:db8::1"],
                # The prefix's last two, its broadcast address included, one by one (the original's count).
                "excludeLastNAddresses": 2,
            },
            # A mask no longer than the prefix's excludes nothing sensible: reported, not written.
            {"namePrefix": "bad", "prefix": str(other), "excludeMask": 24},
        ]
    }  # fmt: skip
    objects.create_import(namespace, "pools", spec, kind=KIND)
    obj = synced(objects, namespace)
    pool = pools.get(f"ex-{topology.site['slug']}")
    assert pool is not None
    assert pool["spec"]["gateway"] == str(base + 254)
    assert pool["spec"]["excludedAddresses"] == [
        f"{base}/28", f"{base + 40}", f"{base + 50}-{base + 59}", f"{base + 254}", f"{base + 255}"
    ]  # fmt: skip
    assert problems(obj) == {(str(other), "BadExcludeMask")}
    assert pools.get(f"bad-{topology.site['slug']}") is None

    # Exclusions dropped from the spec and a gateway dropped in NetBox leave the pool too.
    objects.patch_import(
        namespace, "pools", {"spec": {"ippools": [{"namePrefix": "ex", "prefix": str(network)}]}}, KIND
    )
    seeder.update("ipam/prefixes", record["id"], custom_fields={"gateway": None})
    synced(objects, namespace)
    obj = resynced(objects, namespace)
    pool = pools.get(f"ex-{topology.site['slug']}")
    assert pool is not None
    assert (pool["spec"]["gateway"], pool["spec"]["excludedAddresses"]) == (str(base + 1), [])
    assert obj["status"]["problems"] == []

    # A pool annotated to be ignored keeps what someone set by hand.
    pools.annotate(f"ex-{topology.site['slug']}", {"argora.cloud.sap/ignore": "true"})
    seeder.update("ipam/prefixes", record["id"], custom_fields={"gateway": str(base + 200)})
    resynced(objects, namespace)
    pool = pools.get(f"ex-{topology.site['slug']}")
    assert pool is not None and pool["spec"]["gateway"] == str(base + 1)


def test_changed_and_departed_prefixes_with_and_without_allocated_addresses(
    ippool: OperatorProcess, objects: Objects, pools: Pools, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    region = seeder.create_one("dcim/regions", name=f"{prefix}-r", slug=f"{prefix}-r")
    sites = seeder.create(
        "dcim/sites", [{"name": f"{prefix}-s{i}", "slug": f"{prefix}-s{i}", "region": region["id"]} for i in range(4)]
    )
    networks = [fresh_network() for _ in sites]
    records = seeder.create(
        "ipam/prefixes",
        [
            {"prefix": str(network), "scope_type": "dcim.site", "scope_id": site["id"]}
            for network, site in zip(networks, sites, strict=True)
        ],
    )
    objects.create_import(namespace, "pools", {"ippools": [{"namePrefix": "np", "region": region["slug"]}]}, kind=KIND)
    synced(objects, namespace)
    names = [f"np-{site['slug']}" for site in sites]
    assert set(pools.owned(namespace, "pools")) == set(names)
    # Machines got addresses out of pools 1 and 3, as the provider records them.
    for index in (1, 3):
        pools.allocate(namespace, names[index], str(networks[index].network_address + 10), 24)

    moved = [fresh_network(), fresh_network()]
    seeder.update("ipam/prefixes", records[0]["id"], prefix=str(moved[0]))
    seeder.update("ipam/prefixes", records[1]["id"], prefix=str(moved[1]))
    elsewhere = seeder.create_one("dcim/regions", name=f"{prefix}-other", slug=f"{prefix}-other")
    for index in (2, 3):
        seeder.update("dcim/sites", sites[index]["id"], region=elsewhere["id"])
    obj = resynced(objects, namespace)

    owned = pools.owned(namespace, "pools")
    # Free pools follow NetBox: moved, or deleted when their prefix left the selection.
    assert owned[names[0]]["spec"]["addresses"] == [str(moved[0])]
    assert names[2] not in owned
    # Pools in use keep their network and stay, reported.
    assert owned[names[1]]["spec"]["addresses"] == [str(networks[1])]
    assert names[3] in owned
    assert problems(obj) == {(str(moved[1]), "InUse")}
    counts = obj["status"]["counts"]
    assert (counts["updated"], counts["pruned"], counts["inUse"], counts["pruneHeldBack"]) == (1, 1, 1, 1)
    assert condition(obj, "PoolsInSync") == ("False", "InUse")
    assert condition(obj, "PruneComplete") == ("False", "HeldBack")
    reasons = {reason for _, reason, _ in objects.events(namespace, "pools")}
    assert {"Updated", "Pruned", "PruneHeldBack", "InUse"} <= reasons

    # Deleting the IPPoolImport deletes its pools, except those that still hand out addresses.
    objects.delete_import(namespace, "pools", KIND)
    wait_for(lambda: objects.get_import(namespace, "pools", KIND) is None, what="IPPoolImport deleted")
    assert set(pools.owned(namespace, "pools")) == {names[1], names[3]}


def test_takes_over_the_original_operators_pools(
    ippool: OperatorProcess, objects: Objects, pools: Pools, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    """The original Argora operator created pools without labels: the pool of the same prefix is
    adopted without a change to its network; a pool of another network under the name is not ours."""
    topology, other = Topology(seeder, f"{prefix}-a"), Topology(seeder, f"{prefix}-b")
    network, foreign = fresh_network(), fresh_network()
    seeder.create(
        "ipam/prefixes",
        [
            {"prefix": str(network), "scope_type": "dcim.site", "scope_id": topology.site["id"]},
            {"prefix": str(fresh_network()), "scope_type": "dcim.site", "scope_id": other.site["id"]},
        ],
    )
    mine, theirs = f"np-{topology.site['slug']}", f"np-{other.site['slug']}"
    pools.create(mine, {"addresses": [str(network)], "prefix": 24, "gateway": str(network.network_address + 1)})
    pools.create(theirs, {"addresses": [str(foreign)], "prefix": 24, "gateway": str(foreign.network_address + 1)})
    parent = seeder.create_one("dcim/regions", name=f"{prefix}-p", slug=f"{prefix}-p")
    for t in (topology, other):
        seeder.update("dcim/regions", t.region["id"], parent=parent["id"])
    objects.create_import(namespace, "pools", {"ippools": [{"namePrefix": "np", "region": parent["slug"]}]}, kind=KIND)
    obj = synced(objects, namespace)
    assert obj["status"]["counts"]["adopted"] == 1
    adopted = pools.get(mine)
    assert adopted is not None and adopted["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "argora-ippool"
    assert adopted["spec"]["addresses"] == [str(network)]
    left = pools.get(theirs)
    assert left is not None and left["spec"]["addresses"] == [str(foreign)] and not left["metadata"].get("labels")
    assert {p["reason"] for p in obj["status"]["problems"]} == {"NameTaken"}


BAD_SPECS: dict[str, tuple[dict[str, Any], str]] = {
    "both names": (
        {"namePrefix": "a", "nameOverride": "b", "region": "r"},
        "exactly one of namePrefix and nameOverride",
    ),
    "no name": ({"region": "r"}, "exactly one of namePrefix and nameOverride"),
    "no selection": ({"namePrefix": "a", "site": "s"}, "at least one of region, role, prefix"),
    "bad prefix": ({"namePrefix": "a", "prefix": "10.0.0.300/24"}, "not a CIDR"),
    "bad exclusion": (
        {"namePrefix": "a", "region": "r", "excludedAddresses": ["10.0.0.1-x"]},
        "each entry must be an IP, a CIDR or a range a-b",
    ),
    "bad name prefix": ({"namePrefix": "Not_A_Name", "region": "r"}, "namePrefix"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_specs_are_refused_by_the_api_server(objects: Objects, namespace: str, case: str) -> None:
    selector, message = BAD_SPECS[case]
    with pytest.raises(ApiException) as refused:
        objects.create_import(namespace, "pools", {"ippools": [selector]}, kind=KIND)
    assert refused.value.status == 422
    assert message in refused.value.body
