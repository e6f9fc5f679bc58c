"""The NetBox access layer against the real NetBox: filters, pagination, tokens, failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from argora_common.crds import ClusterSelector
from argora_common.inventory import read_selection
from argora_common.netbox import FilterValue, NetBox, NetBoxRejectedError, NetBoxUnavailableError
from argora_common.netbox_schema import (
    CLUSTERS,
    DEVICES,
    EVENT_RULES,
    INTERFACES,
    IP_ADDRESSES,
    LOCATIONS,
    OBJECT_CHANGE_SNAPSHOTS,
    OBJECT_CHANGES,
    PLATFORMS,
    PREFIXES,
    SITES,
    TAGS,
    VRFS,
    WEBHOOKS,
    Endpoint,
)
from argora_common.settings import Settings
from argora_dev.netbox import NetBoxServer
from argora_dev.process import free_port
from argora_dev.seed import NetBoxSeeder, Topology, fresh_ipv4, unique_prefix

pytestmark = pytest.mark.integration


def netbox_client(url: str, token: str, **settings: Any) -> NetBox:
    return NetBox(
        Settings(netbox_url=url, netbox_token=SecretStr(token), **settings),
        backoff_max_seconds=0.2,
    )


@dataclass
class Inventory:
    """Two small, unrelated slices of NetBox (`a` and `b`); every filter must pick exactly the expected ones."""

    prefix: str
    ids: dict[str, int]
    addresses: dict[str, str]

    def slug(self, part: str) -> str:
        return f"{self.prefix}-{part}"


@pytest.fixture(scope="module")
def inventory(netbox: NetBoxServer) -> Inventory:
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    prefix = unique_prefix("filters")
    a, b = Topology(seeder, f"{prefix}-a"), Topology(seeder, f"{prefix}-b")
    tag = seeder.create_one("extras/tags", name=f"{prefix}-tag", slug=f"{prefix}-tag")
    group = seeder.create_one("virtualization/cluster-groups", name=f"{prefix}-grp", slug=f"{prefix}-grp")
    cluster_a = a.cluster("c", tenant=a.tenant["id"], tags=[tag["id"]], group=group["id"])
    cluster_b = b.cluster("c", tenant=b.tenant["id"], status="planned")
    dev_a1 = a.devices(cluster_a, [f"{prefix}-a1"], tenant=a.tenant["id"], tags=[tag["id"]])[0]
    dev_a2 = a.devices(cluster_a, [f"{prefix}-a2"], status="planned", role=b.role["id"])[0]
    dev_b1 = b.devices(cluster_b, [f"{prefix}-b1"])[0]
    ifaces = seeder.create(
        "dcim/interfaces",
        [
            {"device": dev_a1["id"], "name": "remoteboard", "type": "1000base-t", "mgmt_only": True},
            {"device": dev_a1["id"], "name": "eth0", "type": "25gbase-x-sfp28"},
            {"device": dev_b1["id"], "name": "remoteboard", "type": "1000base-t", "mgmt_only": True},
        ],
    )
    bond = seeder.create_one("dcim/interfaces", device=dev_a1["id"], name="bond0", type="lag")
    seeder.update("dcim/interfaces", ifaces[1]["id"], lag=bond["id"])
    ips = seeder.create(
        "ipam/ip-addresses",
        [
            {"address": fresh_ipv4(), "assigned_object_type": "dcim.interface", "assigned_object_id": iface["id"]}
            for iface in ifaces
        ],
    )
    seeder.update("ipam/ip-addresses", ips[0]["id"], tags=[tag["id"]])
    macs = seeder.create(
        "dcim/mac-addresses",
        [
            {"mac_address": mac, "assigned_object_type": "dcim.interface", "assigned_object_id": iface["id"]}
            for mac, iface in (
                ("02:00:00:00:0a:01", ifaces[1]),
                ("02:00:00:00:0b:01", ifaces[2]),
                # Assigned, none primary: as the API and migrations from NetBox < 4.2 leave them.
                ("02:00:00:00:0c:01", ifaces[0]),
                ("02:00:00:00:0c:02", ifaces[0]),
            )
        ],
    )
    platforms = seeder.create(
        "dcim/platforms", [{"name": f"{prefix}-plat-{x}", "slug": f"{prefix}-plat-{x}"} for x in ("a", "b")]
    )
    roles = seeder.create("ipam/roles", [{"name": f"{prefix}-{x}-role", "slug": f"{prefix}-{x}-role"} for x in "ab"])
    vrfs = seeder.create("ipam/vrfs", [{"name": f"{prefix}-vrf-{x}"} for x in "ab"])
    location = seeder.create_one("dcim/locations", name=f"{prefix}-room", slug=f"{prefix}-room", site=b.site["id"])
    prefixes = seeder.create(
        "ipam/prefixes",
        [
            {
                "prefix": f"192.0.2.{16 * i}/28", "scope_type": "dcim.site", "scope_id": topology.site["id"],
                "role": role["id"], "tenant": topology.tenant["id"], "vrf": vrf["id"], "status": status,
                "tags": tags,
            }
            for i, (topology, role, vrf, status, tags) in enumerate(
                ((a, roles[0], vrfs[0], "active", [tag["id"]]), (b, roles[1], vrfs[1], "reserved", []))
            )
        ],
    )  # fmt: skip
    seeder.update_many(
        "dcim/interfaces",
        [
            {"id": ifaces[1]["id"], "primary_mac_address": macs[0]["id"]},
            {"id": ifaces[2]["id"], "primary_mac_address": macs[1]["id"]},
        ],
    )
    return Inventory(
        prefix=prefix,
        ids={
            "cluster_a": cluster_a["id"], "cluster_b": cluster_b["id"],
            "dev_a1": dev_a1["id"], "dev_a2": dev_a2["id"], "dev_b1": dev_b1["id"],
            "site_a": a.site["id"], "site_b": b.site["id"],
            "if_a1_bmc": ifaces[0]["id"], "if_a1_eth0": ifaces[1]["id"], "if_b1_bmc": ifaces[2]["id"],
            "if_a1_bond0": bond["id"], "prefix_a": prefixes[0]["id"], "prefix_b": prefixes[1]["id"],
            "platform_a": platforms[0]["id"], "platform_b": platforms[1]["id"],
            "location_b": location["id"], "vrf_a": vrfs[0]["id"], "vrf_b": vrfs[1]["id"],
            "ip_a1_bmc": ips[0]["id"], "ip_a1_eth0": ips[1]["id"], "ip_b1_bmc": ips[2]["id"],
            "mac_a1_eth0": macs[0]["id"], "mac_b1_bmc": macs[1]["id"], "tag": tag["id"],
        },
        addresses={"ip_a1_eth0": ips[1]["address"]},
    )  # fmt: skip


KEY_PREFIX = {
    CLUSTERS.path: "cluster_",
    DEVICES.path: "dev_",
    SITES.path: "site_",
    INTERFACES.path: "if_",
    IP_ADDRESSES.path: "ip_",
    PREFIXES.path: "prefix_",
    PLATFORMS.path: "platform_",
    LOCATIONS.path: "location_",
    VRFS.path: "vrf_",
    TAGS.path: "tag",
}

type Filters = Callable[[Inventory], dict[str, FilterValue]]

# (endpoint, the filter under test, the query that uses it, the objects it must return exactly)
CASES: list[tuple[Endpoint[Any], str, Filters, set[str]]] = [
    (CLUSTERS, "id", lambda inv: {"id": [inv.ids["cluster_b"]]}, {"cluster_b"}),
    (CLUSTERS, "name", lambda inv: {"name": inv.slug("a-c")}, {"cluster_a"}),
    (CLUSTERS, "type", lambda inv: {"type": inv.slug("b-ctype")}, {"cluster_b"}),
    (CLUSTERS, "region", lambda inv: {"region": inv.slug("a-region")}, {"cluster_a"}),
    (CLUSTERS, "site", lambda inv: {"site": inv.slug("b-site")}, {"cluster_b"}),
    (CLUSTERS, "tenant", lambda inv: {"tenant": inv.slug("a-tenant")}, {"cluster_a"}),
    (CLUSTERS, "tag", lambda inv: {"tag": inv.slug("tag")}, {"cluster_a"}),
    (CLUSTERS, "group", lambda inv: {"group": inv.slug("grp")}, {"cluster_a"}),
    (CLUSTERS, "status", lambda inv: {"name": [inv.slug("a-c"), inv.slug("b-c")], "status": "planned"}, {"cluster_b"}),
    (DEVICES, "id", lambda inv: {"id": [inv.ids["dev_a2"]]}, {"dev_a2"}),
    (DEVICES, "cluster_id", lambda inv: {"cluster_id": [inv.ids["cluster_a"]]}, {"dev_a1", "dev_a2"}),
    (DEVICES, "status", lambda inv: {"cluster_id": [inv.ids["cluster_a"]], "status": ["planned"]}, {"dev_a2"}),
    (DEVICES, "role", lambda inv: {"role": inv.slug("b-server")}, {"dev_a2", "dev_b1"}),
    (DEVICES, "site", lambda inv: {"site": inv.slug("b-site")}, {"dev_b1"}),
    (DEVICES, "tenant", lambda inv: {"tenant": inv.slug("a-tenant")}, {"dev_a1"}),
    (DEVICES, "tag", lambda inv: {"tag": inv.slug("tag")}, {"dev_a1"}),
    (DEVICES, "name", lambda inv: {"name": [inv.slug("b1")]}, {"dev_b1"}),
    (SITES, "id", lambda inv: {"id": [inv.ids["site_a"]]}, {"site_a"}),
    (SITES, "slug", lambda inv: {"slug": inv.slug("b-site")}, {"site_b"}),
    (INTERFACES, "id", lambda inv: {"id": [inv.ids["if_b1_bmc"]]}, {"if_b1_bmc"}),
    (
        INTERFACES,
        "device_id",
        lambda inv: {"device_id": [inv.ids["dev_a1"]]},
        {"if_a1_bmc", "if_a1_eth0", "if_a1_bond0"},
    ),
    (
        INTERFACES,
        "name",
        lambda inv: {"device_id": [inv.ids["dev_a1"], inv.ids["dev_b1"]], "name": ["remoteboard"]},
        {"if_a1_bmc", "if_b1_bmc"},
    ),
    (
        INTERFACES,
        "site_id",
        lambda inv: {"site_id": [inv.ids["site_b"]], "name": ["remoteboard"]},
        {"if_b1_bmc"},
    ),
    (INTERFACES, "lag_id", lambda inv: {"lag_id": [inv.ids["if_a1_bond0"]]}, {"if_a1_eth0"}),
    (INTERFACES, "mgmt_only", lambda inv: {"device_id": [inv.ids["dev_a1"]], "mgmt_only": True}, {"if_a1_bmc"}),
    (IP_ADDRESSES, "id", lambda inv: {"id": [inv.ids["ip_a1_bmc"]]}, {"ip_a1_bmc"}),
    (IP_ADDRESSES, "device_id", lambda inv: {"device_id": [inv.ids["dev_b1"]]}, {"ip_b1_bmc"}),
    (IP_ADDRESSES, "interface_id", lambda inv: {"interface_id": [inv.ids["if_a1_eth0"]]}, {"ip_a1_eth0"}),
    (PREFIXES, "id", lambda inv: {"id": [inv.ids["prefix_a"]]}, {"prefix_a"}),
    (PREFIXES, "site_id", lambda inv: {"site_id": [inv.ids["site_b"]]}, {"prefix_b"}),
    (PREFIXES, "region", lambda inv: {"region": inv.slug("a-region")}, {"prefix_a"}),
    (PREFIXES, "site", lambda inv: {"site": inv.slug("b-site")}, {"prefix_b"}),
    (PREFIXES, "role", lambda inv: {"role": inv.slug("a-role")}, {"prefix_a"}),
    (PREFIXES, "prefix", lambda inv: {"prefix": "192.0.2.16/28"}, {"prefix_b"}),
    (PREFIXES, "tenant", lambda inv: {"tenant": inv.slug("b-tenant")}, {"prefix_b"}),
    (PREFIXES, "tag", lambda inv: {"tag": [inv.slug("tag")]}, {"prefix_a"}),
    (
        PREFIXES,
        "status",
        lambda inv: {"id": [inv.ids["prefix_a"], inv.ids["prefix_b"]], "status": ["reserved"]},
        {"prefix_b"},
    ),
    (PREFIXES, "vrf_id", lambda inv: {"vrf_id": [inv.ids["vrf_a"]]}, {"prefix_a"}),
    (LOCATIONS, "id", lambda inv: {"id": [inv.ids["location_b"]]}, {"location_b"}),
    (VRFS, "name", lambda inv: {"name": inv.slug("vrf-b")}, {"vrf_b"}),
    (TAGS, "slug", lambda inv: {"slug": inv.slug("tag")}, {"tag"}),
    (INTERFACES, "type", lambda inv: {"device_id": [inv.ids["dev_a1"]], "type": "lag"}, {"if_a1_bond0"}),
    (IP_ADDRESSES, "tag", lambda inv: {"tag": [inv.slug("tag")]}, {"ip_a1_bmc"}),
    # By host, without the mask: how argora-ipaddress finds an address whatever mask NetBox holds it with.
    (
        IP_ADDRESSES,
        "address",
        lambda inv: {"address": [inv.addresses["ip_a1_eth0"].split("/")[0]]},
        {"ip_a1_eth0"},
    ),
    (
        IP_ADDRESSES,
        "interface",
        lambda inv: {"device_id": [inv.ids["dev_a1"], inv.ids["dev_b1"]], "interface": ["eth0"]},
        {"ip_a1_eth0"},
    ),
    (PLATFORMS, "id", lambda inv: {"id": [inv.ids["platform_a"]]}, {"platform_a"}),
    (PLATFORMS, "slug", lambda inv: {"slug": inv.slug("plat-b")}, {"platform_b"}),
    (
        INTERFACES,
        "name__ie",
        lambda inv: {"device_id": [inv.ids["dev_a1"], inv.ids["dev_b1"]], "name__ie": ["REMOTEBOARD", "idrac"]},
        {"if_a1_bmc", "if_b1_bmc"},
    ),
]  # fmt: skip


# Filters of the change log and of the webhook setup, each proven by a test of its own below.
OWN_CASES = {
    (OBJECT_CHANGES.path, "time_after"),
    (OBJECT_CHANGES.path, "changed_object_type"),
    (OBJECT_CHANGE_SNAPSHOTS.path, "id"),
    (WEBHOOKS.path, "name"),
    (EVENT_RULES.path, "name"),
}


def test_every_filter_the_layer_accepts_has_a_narrowing_case() -> None:
    covered = {(endpoint.path, name) for endpoint, name, _, _ in CASES} | OWN_CASES
    endpoints = (
        CLUSTERS, DEVICES, SITES, INTERFACES, IP_ADDRESSES, PREFIXES, PLATFORMS, LOCATIONS, VRFS, TAGS,
        OBJECT_CHANGES, OBJECT_CHANGE_SNAPSHOTS, WEBHOOKS, EVENT_RULES,
    )  # fmt: skip
    accepted = {(endpoint.path, name) for endpoint in endpoints for name in endpoint.filters}
    assert accepted == covered


def test_change_log_filters_narrow_to_the_time_and_the_types(netbox: NetBoxServer) -> None:
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    client = netbox_client(netbox.url, netbox.readonly_v2_token)
    prefix = unique_prefix("changelog")
    older = seeder.create_one("tenancy/tenants", name=f"{prefix}-old", slug=f"{prefix}-old")
    time.sleep(0.01)
    before = seeder.create_one("tenancy/tenants", name=f"{prefix}-early", slug=f"{prefix}-early")
    (baseline,) = seeder.get(
        "core/object-changes", changed_object_type="tenancy.tenant", changed_object_id=before["id"]
    )
    after = datetime.fromisoformat(baseline["time"])
    tenant = seeder.create_one("tenancy/tenants", name=f"{prefix}-t", slug=f"{prefix}-t")
    region = seeder.create_one("dcim/regions", name=f"{prefix}-r", slug=f"{prefix}-r")
    # time_after is inclusive: the baseline entry itself comes again, what came before it does not.
    since = client.select(OBJECT_CHANGES, time_after=after.isoformat())
    seen = {(entry.changed_object_type, entry.changed_object_id) for entry in since}
    assert {("tenancy.tenant", before["id"]), ("tenancy.tenant", tenant["id"]), ("dcim.region", region["id"])} <= seen
    assert all(entry.time >= after for entry in since)
    assert ("tenancy.tenant", older["id"]) not in seen
    regions = client.select(OBJECT_CHANGES, time_after=after.isoformat(), changed_object_type=["dcim.region"])
    assert {(entry.changed_object_type, entry.changed_object_id) for entry in regions} == {
        ("dcim.region", region["id"])
    }
    both = client.select(
        OBJECT_CHANGES, time_after=after.isoformat(), changed_object_type=["dcim.region", "tenancy.tenant"]
    )
    assert {entry.changed_object_type for entry in both} == {"dcim.region", "tenancy.tenant"}
    # The slim list carries no snapshots; the second read has them, for exactly the ids asked for.
    assert all(entry.postchange_data is None for entry in since)
    (detailed,) = client.select(OBJECT_CHANGE_SNAPSHOTS, id=[regions[0].id])
    # Looks are timed by NetBox's clock, learnt from its answers (the same machine's here).
    assert abs((client.server_now() - datetime.now(UTC)).total_seconds()) < 2
    assert detailed.postchange_data is not None and detailed.postchange_data["slug"] == f"{prefix}-r"


def test_webhooks_and_event_rules_are_found_by_name(netbox: NetBoxServer) -> None:
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    client = netbox_client(netbox.url, netbox.readonly_v2_token)
    prefix = unique_prefix("hooks")
    hooks = seeder.create(
        "extras/webhooks", [{"name": f"{prefix}-{n}", "payload_url": "http://example.invalid/"} for n in "ab"]
    )
    rules = seeder.create(
        "extras/event-rules",
        [
            {"name": f"{prefix}-{n}", "object_types": ["dcim.device"], "event_types": ["object_created"],
             "action_type": "webhook", "action_object_type": "extras.webhook", "action_object_id": hook["id"]}
            for n, hook in zip("ab", hooks, strict=True)
        ],
    )  # fmt: skip
    try:
        assert [hook.id for hook in client.select(WEBHOOKS, name=f"{prefix}-b")] == [hooks[1]["id"]]
        assert [rule.id for rule in client.select(EVENT_RULES, name=f"{prefix}-a")] == [rules[0]["id"]]
    finally:
        seeder.delete("extras/event-rules", [rule["id"] for rule in rules])
        seeder.delete("extras/webhooks", [hook["id"] for hook in hooks])


@pytest.mark.parametrize(
    ("endpoint", "filter_name", "filters", "expected"), CASES, ids=[f"{e.path}:{n}" for e, n, _, _ in CASES]
)
def test_filter_narrows_the_result(
    netbox: NetBoxServer,
    inventory: Inventory,
    endpoint: Endpoint[BaseModel],
    filter_name: str,
    filters: Filters,
    expected: set[str],
) -> None:
    found = netbox_client(netbox.url, netbox.readonly_v2_token).select(endpoint, **filters(inventory))
    # Ids are unique per object type only: map back through the keys of this endpoint's type.
    kind = KEY_PREFIX[endpoint.path]
    by_id = {object_id: key for key, object_id in inventory.ids.items() if key.startswith(kind)}
    found_ids = [obj.model_dump()["id"] for obj in found]
    assert {by_id.get(object_id, f"foreign:{object_id}") for object_id in found_ids} == expected


def test_unknown_filter_is_refused_before_any_request(netbox: NetBoxServer) -> None:
    client = netbox_client(netbox.url, netbox.readonly_v2_token)
    with pytest.raises(ValueError, match="cluster_id"):
        client.select(INTERFACES, cluster_id=5)
    assert client.request_count == 0


def test_results_are_typed(netbox: NetBoxServer, inventory: Inventory) -> None:
    client = netbox_client(netbox.url, netbox.readonly_v2_token)
    devices = client.select(DEVICES, id=[inventory.ids["dev_a1"]])
    assert devices[0].name == inventory.slug("a1")
    assert devices[0].status == "active"
    assert devices[0].site.slug == inventory.slug("a-site")
    assert devices[0].device_type.manufacturer.slug == inventory.slug("a-dell")
    assert devices[0].cluster is not None and devices[0].cluster.id == inventory.ids["cluster_a"]
    interfaces = client.select(INTERFACES, id=[inventory.ids["if_a1_eth0"], inventory.ids["if_a1_bmc"]])
    by_id = {interface.id: interface for interface in interfaces}
    eth0, bmc = by_id[inventory.ids["if_a1_eth0"]], by_id[inventory.ids["if_a1_bmc"]]
    assert eth0.mac_address == "02:00:00:00:0A:01"
    assert eth0.primary_mac_address is not None and eth0.primary_mac_address.id == inventory.ids["mac_a1_eth0"]
    # `fields=` keeps the MAC objects of an interface: MACs need no request of their own.
    assert [mac.mac_address for mac in eth0.mac_addresses] == ["02:00:00:00:0A:01"]
    assert bmc.primary_mac_address is None
    assert sorted(mac.mac_address for mac in bmc.mac_addresses) == ["02:00:00:00:0C:01", "02:00:00:00:0C:02"]


def test_selectors_naming_clusters_are_read_together_as_if_read_one_by_one(
    netbox: NetBoxServer, inventory: Inventory
) -> None:
    names = [inventory.slug("b-c"), inventory.slug("a-c"), inventory.slug("A-C"), inventory.slug("missing")]
    selectors = [ClusterSelector(name=name, statuses=["active", "planned"]) for name in names]
    together = netbox_client(netbox.url, netbox.readonly_v2_token)
    selection = read_selection(together, selectors, ("active",))
    alone = [read_selection(netbox_client(netbox.url, netbox.readonly_v2_token), [s], ("active",)) for s in selectors]
    assert selection.clusters_by_selector == [one.clusters_by_selector[0] for one in alone]
    assert [(d.device.id, d.selector_index) for d in selection.devices] == [
        (inventory.ids["dev_b1"], 0), (inventory.ids["dev_a1"], 1), (inventory.ids["dev_a2"], 1)
    ]  # fmt: skip
    # NetBox counts the devices of each cluster, which sizes the device reads.
    assert [c.device_count for c in selection.clusters_by_selector[1]] == [2]
    assert together.request_count == 2


def test_id_filters_are_chunked_to_fit_the_request_line(netbox: NetBoxServer, inventory: Inventory) -> None:
    client = netbox_client(netbox.url, netbox.readonly_v2_token)
    # 3,000 ids of which most do not exist: one request line could never carry them all.
    ids = [inventory.ids["dev_a1"], inventory.ids["dev_b1"], *range(10_000_000, 10_003_000)]
    devices = client.list_by_ids(DEVICES, "id", ids)
    assert {device.id for device in devices} == {inventory.ids["dev_a1"], inventory.ids["dev_b1"]}
    assert client.request_count > 1


@pytest.fixture(scope="module")
def many_ips(netbox: NetBoxServer) -> int:
    """1,050 IP addresses on one interface: more than NetBox's largest page (1,000)."""
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    topology = Topology(seeder, unique_prefix("pages"))
    device = topology.devices(None, [f"{topology.prefix}-dev"])[0]
    interface = seeder.create_one("dcim/interfaces", device=device["id"], name="eth0", type="1000base-t")
    seeder.create(
        "ipam/ip-addresses",
        [
            {"address": fresh_ipv4(), "assigned_object_type": "dcim.interface", "assigned_object_id": interface["id"]}
            for _ in range(1050)
        ],
    )
    interface_id: int = interface["id"]
    return interface_id


@pytest.mark.parametrize(("page_size", "pages"), [(1000, 2), (300, 4)])
def test_pagination_is_followed_to_the_end(netbox: NetBoxServer, many_ips: int, page_size: int, pages: int) -> None:
    client = netbox_client(netbox.url, netbox.readonly_v2_token, netbox_page_size=page_size)
    found = client.select(IP_ADDRESSES, interface_id=[many_ips])
    assert len(found) == 1050
    assert len({ip.id for ip in found}) == 1050
    assert client.requests_sent == {"ipam/ip-addresses": pages}


@pytest.mark.parametrize("token_kind", ["v1", "v2"])
def test_authenticates_with_v1_and_v2_tokens(netbox: NetBoxServer, inventory: Inventory, token_kind: str) -> None:
    token = netbox.v1_token if token_kind == "v1" else netbox.v2_token
    client = netbox_client(netbox.url, token)
    assert client.status()["netbox-version"].startswith("4.7")
    assert [device.id for device in client.select(DEVICES, id=[inventory.ids["dev_b1"]])] == [inventory.ids["dev_b1"]]


def test_a_wrong_token_is_rejected_without_retries(netbox: NetBoxServer) -> None:
    client = netbox_client(netbox.url, "nbt_doesnotexist.wrong", netbox_retries=5)
    with pytest.raises(NetBoxRejectedError) as rejected:
        client.select(DEVICES, id=[1])
    assert rejected.value.status_code in {401, 403}
    assert client.request_count == 1
    assert "doesnotexist" not in str(rejected.value)


def test_unreachable_netbox_fails_after_bounded_retries() -> None:
    client = netbox_client(f"http://127.0.0.1:{free_port()}", "nbt_x.y", netbox_retries=3, netbox_timeout_seconds=2)
    with pytest.raises(NetBoxUnavailableError, match=r"no answer after 3 attempts \(ConnectionError"):
        client.select(DEVICES, id=[1])
    assert client.request_count == 3


def test_netbox_answering_500_fails_after_bounded_retries(netbox: NetBoxServer) -> None:
    client = netbox_client(netbox.url, netbox.readonly_v2_token, netbox_retries=3)
    with netbox.database_stopped(), pytest.raises(NetBoxUnavailableError, match=r"after 3 attempts \(HTTP 500"):
        client.select(DEVICES, id=[1])
    assert client.request_count == 3
    # NetBox recovers once its database is back, and so does the same client.
    assert client.select(DEVICES, id=[1]) is not None
