"""argora-ippool's plan: pool names, gateway, exclusions and collisions, from NetBox prefixes alone."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from argora_common.crds import IPPoolImportSpec, IPPoolSelector
from argora_common.kube import Owner
from argora_common.netbox_schema import Prefix, Ref, Site
from argora_common.prefixes import PrefixSelection, ScopedPrefix, prefix_filters
from ippool_controller.desired import (
    MAX_LAST_N_EXCLUDED,
    DesiredPool,
    UnusablePrefixError,
    exclusions,
    gateway,
    plan,
    pool_name,
)
from ippool_controller.placement import AddressHolders, resolve

OWNER = Owner("infra", "pools", "argora-ippool")
REGION = Ref(id=1, slug="qa-de-1")
SITE = Site(id=10, slug="qa-de-1a", name="QA DE 1a", region=REGION)


def prefix(cidr: str = "10.0.0.0/24", prefix_id: int = 100, **fields: Any) -> Prefix:
    return Prefix.model_validate({"id": prefix_id, "prefix": cidr, "status": "active", **fields})


def selector(**fields: Any) -> IPPoolSelector:
    return IPPoolSelector.model_validate({"namePrefix": "pool", "region": "qa-de-1", **fields})


def transit(vlan_name: str, role: str = "cc-kubernetes-compute-transit") -> Prefix:
    return prefix(role={"id": 3, "slug": role}, vlan={"id": 7, "vid": 301, "name": vlan_name})


@pytest.mark.parametrize(
    ("scoped", "expected"),
    [
        (ScopedPrefix(prefix(), SITE), "pool-qa-de-1a"),
        # The original's compute transit rule: site slug without the region, block N-1, then the region.
        (ScopedPrefix(transit("cc-compute1-transit"), SITE), "pool-a0-qa-de-1"),
        (ScopedPrefix(transit("COMPUTE3"), SITE), "pool-a2-qa-de-1"),
        # The role alone or the VLAN alone does not make it a transit pool.
        (ScopedPrefix(transit("storage"), SITE), "pool-qa-de-1a"),
        (ScopedPrefix(transit("compute1", role="kubernetes-storage"), SITE), "pool-qa-de-1a"),
    ],
)
def test_pool_names_follow_the_original_operator(scoped: ScopedPrefix, expected: str) -> None:
    assert pool_name(selector(), scoped) == expected


def test_name_override_needs_no_site() -> None:
    assert pool_name(selector(namePrefix=None, nameOverride="mgmt"), ScopedPrefix(prefix(), None)) == "mgmt"


@pytest.mark.parametrize(
    ("scoped", "reason"),
    [
        (ScopedPrefix(prefix(scope_type="dcim.region", scope_id=1), None), "NoSite"),
        (ScopedPrefix(transit("compute1"), Site(id=11, slug="lonely", name="Lonely")), "NoRegion"),
    ],
)
def test_a_name_that_cannot_be_made_is_a_problem(scoped: ScopedPrefix, reason: str) -> None:
    with pytest.raises(UnusablePrefixError) as raised:
        pool_name(selector(), scoped)
    assert raised.value.reason == reason


@pytest.mark.parametrize(
    ("cidr", "fields", "expected"),
    [
        ("10.0.0.0/24", {}, "10.0.0.1"),
        ("10.0.0.0/24", {"gateway": "10.0.0.254/24"}, "10.0.0.254"),
        ("10.0.0.0/24", {"gateway": "10.0.0.254"}, "10.0.0.254"),
        ("2001:db8::/64", {}, "2001:db8::1"),
        ("10.0.0.0/24", {"gateway": None}, "10.0.0.1"),
    ],
)
def test_gateway_is_the_custom_field_else_the_first_host(cidr: str, fields: dict[str, Any], expected: str) -> None:
    assert gateway(ipaddress.ip_network(cidr), fields, "gateway") == expected


@pytest.mark.parametrize("value", ["router", "10.9.9.9"])
def test_a_bad_gateway_is_a_problem(value: str) -> None:
    with pytest.raises(UnusablePrefixError) as raised:
        gateway(ipaddress.ip_network("10.0.0.0/24"), {"gw": value}, "gw")
    assert raised.value.reason == "BadGateway"


def test_exclusions_combine_mask_addresses_and_the_last_n_in_the_original_order() -> None:
    chosen = selector(
        excludeMask=27,
        excludedAddresses=["10.0.0.40", "10.0.0.50-10.0.0.59", "2001:db8::5", "10.0.0.64/30"],
        excludeLastNAddresses=3,
    )
    assert exclusions(chosen, ipaddress.ip_network("10.0.0.0/24")) == [
        "10.0.0.0/27",
        "10.0.0.40",
        "10.0.0.50-10.0.0.59",
        "10.0.0.64/30",
        "10.0.0.253",
        "10.0.0.254",
        "10.0.0.255",
    ]


@pytest.mark.parametrize(
    ("cidr", "count", "expected"),
    [
        # The original operator's own tests: counted back from the broadcast address, one by one ...
        ("10.10.10.0/24", 3, ["10.10.10.253", "10.10.10.254", "10.10.10.255"]),
        # ... and never more than the prefix holds, without complaint.
        ("10.10.10.0/30", 5, ["10.10.10.0", "10.10.10.1", "10.10.10.2", "10.10.10.3"]),
        ("10.10.10.0/24", 0, []),
        # The original panics on IPv6; Argora counts back from the prefix's last address alike.
        ("2001:db8::/64", 2, ["2001:db8::ffff:ffff:ffff:fffe", "2001:db8::ffff:ffff:ffff:ffff"]),
        ("2001:db8::/126", 9, ["2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"]),
    ],
)
def test_the_last_n_addresses_are_counted_as_the_original_operator_counts_them(
    cidr: str, count: int, expected: list[str]
) -> None:
    assert exclusions(selector(excludeLastNAddresses=count), ipaddress.ip_network(cidr)) == expected


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"excludeMask": 8}, "BadExcludeMask"),
        ({"excludeMask": 33}, "BadExcludeMask"),
        # More single addresses than a pool object can carry: a range in excludedAddresses says the same.
        ({"excludeLastNAddresses": MAX_LAST_N_EXCLUDED + 1}, "TooManyExclusions"),
    ],
)
def test_impossible_exclusions_are_problems(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnusablePrefixError) as raised:
        exclusions(selector(**fields), ipaddress.ip_network("10.0.0.0/8"))
    assert raised.value.reason == reason


def test_plan_writes_pools_and_reports_the_rest() -> None:
    spec = IPPoolImportSpec.model_validate({"ippools": [{"namePrefix": "pool", "region": "qa-de-1"}]})
    selection = PrefixSelection(
        by_selector=[
            [
                ScopedPrefix(prefix("10.0.0.0/24", 1, vlan={"id": 7, "vid": 301, "name": "v"}), SITE),
                ScopedPrefix(prefix("10.0.1.0/24", 2, scope_type="dcim.region", scope_id=1), None),
            ]
        ]
    )
    planned = plan(selection, spec, OWNER, "kubernetes.metal.cloud.sap", "gateway")
    assert [pool.name for pool in planned.pools] == ["pool-qa-de-1a"]
    body = planned.pools[0].body
    assert body["spec"] == {
        "addresses": ["10.0.0.0/24"],
        "prefix": 24,
        "gateway": "10.0.0.1",
        "excludedAddresses": [],
    }
    assert body["metadata"]["labels"]["kubernetes.metal.cloud.sap/prefix-id"] == "1"
    assert body["metadata"]["labels"]["kubernetes.metal.cloud.sap/vlan"] == "301"
    assert body["metadata"]["labels"]["kubernetes.metal.cloud.sap/role"] == ""
    assert [(p.prefix, p.reason) for p in planned.problems] == [("10.0.1.0/24", "NoSite")]
    assert planned.selected_prefix_ids == {1, 2}


def test_two_prefixes_with_one_name_are_both_reported() -> None:
    spec = IPPoolImportSpec.model_validate({"ippools": [{"namePrefix": "pool", "region": "qa-de-1"}]})
    selection = PrefixSelection(
        by_selector=[[ScopedPrefix(prefix("10.0.0.0/24", 1), SITE), ScopedPrefix(prefix("10.0.1.0/24", 2), SITE)]]
    )
    planned = plan(selection, spec, OWNER, "p", "gateway")
    assert planned.pools == []
    assert sorted((p.prefix, p.reason) for p in planned.problems) == [
        ("10.0.0.0/24", "NameCollision"),
        ("10.0.1.0/24", "NameCollision"),
    ]


def test_a_selector_netbox_refused_blocks_pruning_and_counts_as_unmatched() -> None:
    spec = IPPoolImportSpec.model_validate(
        {"ippools": [{"namePrefix": "a", "region": "r"}, {"namePrefix": "b", "region": "r", "vrf": "gone"}]}
    )
    selection = PrefixSelection(
        by_selector=[[ScopedPrefix(prefix(), SITE)], []], selector_errors={1: "NetBox has no VRF named 'gone'"}
    )
    planned = plan(selection, spec, OWNER, "p", "gateway")
    assert planned.unmatched_selectors == [1]
    assert "spec.ippools[1]" in planned.prune_blocked


def test_every_status_is_selected_unless_the_selector_names_one() -> None:
    """The original operator filtered by region, role and prefix only: reserved and deprecated prefixes
    got pools too."""
    assert "status" not in prefix_filters(selector(), [])
    assert prefix_filters(selector(status="reserved"), [])["status"] == "reserved"


# --- NetBox's order, nameOverride, and where each pool goes among the live ones (`resolve`) ---

LABEL = "p/prefix-id"
NP = IPPoolImportSpec.model_validate({"ippools": [{"namePrefix": "np", "region": "r"}]})


def at_site(number: int) -> Site:
    return Site.model_validate({"id": number, "slug": f"s{number}", "name": f"S{number}", "region": REGION})


def planned_pools(*prefixes: tuple[int, str], spec: IPPoolImportSpec = NP) -> list[DesiredPool]:
    """Prefix `id` at site s`id` (pool np-s`id`), every selector of `spec` matching all of them."""
    scoped = [ScopedPrefix(prefix(cidr, number), at_site(number)) for number, cidr in prefixes]
    selection = PrefixSelection(by_selector=[scoped for _ in spec.ippools])
    return plan(selection, spec, OWNER, "p", "gateway").pools


def live(
    name: str, *addresses: str, owner: Owner | None = None, prefix_id: int | None = None, **metadata: Any
) -> dict[str, Any]:
    """A live pool: the original operator's (no labels) unless `owner` is given."""
    labels = {**owner.labels(), LABEL: str(prefix_id)} if owner else {}
    return {"metadata": {"name": name, "labels": labels, **metadata}, "spec": {"addresses": list(addresses)}}


def placed(resolution_pools: list[DesiredPool]) -> list[tuple[str, str, bool]]:
    return [(pool.name, pool.prefix, pool.adopt) for pool in resolution_pools]


def test_pools_come_in_netboxs_order_of_their_prefixes_not_by_id() -> None:
    """VRF (none first), then the prefix (IPv4 first, by address, shorter first), then the id."""
    scoped = [
        ScopedPrefix(prefix("10.0.2.0/24", 1, vrf={"id": 7, "slug": "v"}), at_site(1)),
        ScopedPrefix(prefix("2001:db8::/64", 2), at_site(2)),
        ScopedPrefix(prefix("10.0.1.0/24", 3), at_site(3)),
        ScopedPrefix(prefix("10.0.0.0/16", 4), at_site(4)),
        ScopedPrefix(prefix("10.0.1.0/24", 5), at_site(5)),
        ScopedPrefix(prefix("10.0.0.0/24", 6), at_site(6)),
    ]
    pools = plan(PrefixSelection(by_selector=[scoped]), NP, OWNER, "p", "gateway").pools
    assert [pool.prefix_id for pool in pools] == [4, 6, 3, 5, 2, 1]


def test_a_name_override_of_several_prefixes_goes_to_the_first_in_netboxs_order() -> None:
    spec = IPPoolImportSpec.model_validate({"ippools": [{"nameOverride": "mgmt", "region": "r"}]})
    pools = planned_pools((1, "10.0.3.0/24"), (2, "10.0.1.0/24"), (3, "10.0.2.0/24"), spec=spec)
    resolution = resolve(pools, [], OWNER, LABEL)
    assert placed(resolution.pools) == [("mgmt", "10.0.1.0/24", False)]
    assert [(p.prefix, p.pool, p.reason, p.message) for p in resolution.problems] == [
        (
            cidr,
            "mgmt",
            "NameCollision",
            "nameOverride 'mgmt' names one pool: it keeps the first prefix, 10.0.1.0/24",
        )
        for cidr in ("10.0.2.0/24", "10.0.3.0/24")
    ]


def test_one_name_override_in_two_selectors_is_reported_for_both() -> None:
    """Two entries naming their pools alike: no rule says which prefix is meant."""
    spec = IPPoolImportSpec.model_validate(
        {"ippools": [{"nameOverride": "mgmt", "prefix": "10.0.1.0/24"}, {"nameOverride": "mgmt", "role": "x"}]}
    )
    selection = PrefixSelection(
        by_selector=[[ScopedPrefix(prefix("10.0.1.0/24", 1), SITE)], [ScopedPrefix(prefix("10.0.2.0/24", 2), SITE)]]
    )
    planned = plan(selection, spec, OWNER, "p", "gateway")
    assert planned.pools == []
    assert [(p.prefix, p.reason) for p in planned.problems] == [
        ("10.0.1.0/24", "NameCollision"),
        ("10.0.2.0/24", "NameCollision"),
    ]


def test_a_name_override_stays_with_the_prefix_its_pool_holds() -> None:
    spec = IPPoolImportSpec.model_validate({"ippools": [{"nameOverride": "mgmt", "region": "r"}]})
    pools = planned_pools((1, "10.0.1.0/24"), (2, "10.0.2.0/24"), spec=spec)
    resolution = resolve(pools, [live("mgmt", "10.0.2.0/24")], OWNER, LABEL)
    assert placed(resolution.pools) == [("mgmt", "10.0.2.0/24", True)]
    assert [(p.prefix, p.message) for p in resolution.problems] == [
        ("10.0.1.0/24", "nameOverride 'mgmt' names one pool: it keeps 10.0.2.0/24, which the pool holds")
    ]


def test_a_our_pool_of_the_prefix_keeps_its_name_the_computed_one_first() -> None:
    pools = planned_pools((1, "10.0.1.0/24"), (2, "10.0.2.0/24"))
    pools_live = [
        live("old-s1", "10.0.1.0/24", owner=OWNER, prefix_id=1),
        live("np-s2", "10.0.2.0/24", owner=OWNER, prefix_id=2),
        live("old-s2", "10.0.2.0/24", owner=OWNER, prefix_id=2),
    ]
    resolution = resolve(pools, pools_live, OWNER, LABEL)
    assert placed(resolution.pools) == [("old-s1", "10.0.1.0/24", False), ("np-s2", "10.0.2.0/24", False)]
    assert resolution.pools[0].body["metadata"]["name"] == "old-s1"
    assert resolution.problems == []


def test_b_the_original_operators_pool_of_the_network_is_adopted_under_its_name() -> None:
    pools = planned_pools((1, "10.0.1.0/24"), (2, "10.0.2.0/24"))
    pools_live = [
        # Another namePrefix, and the prefix written otherwise: the same network all the same.
        live("older-s1", "10.0.1.7/24"),
        live("older-s2", "10.0.2.0/24"),
        live("np-s2", "10.0.2.0/24"),
    ]
    resolution = resolve(pools, pools_live, OWNER, LABEL)
    assert placed(resolution.pools) == [("older-s1", "10.0.1.0/24", True), ("np-s2", "10.0.2.0/24", True)]
    assert resolution.problems == []


@pytest.mark.parametrize(
    "other",
    [
        live("theirs", "10.0.1.0/24", owner=Owner("infra", "others", "argora-ippool"), prefix_id=1),
        live("unrelated", "10.0.0.0/23"),
        live("a-range", "10.0.1.200-10.0.1.210"),
        live("one-address", "192.168.0.1", "10.0.1.9"),
        live("kept-by-hand", "10.0.1.0/24", annotations={"argora.cloud.sap/ignore": "true"}),
        live("np-s1", "10.0.1.128/25"),
    ],
    ids=lambda pool: pool["metadata"]["name"],
)
def test_c_a_prefix_any_other_pool_holds_addresses_of_gets_none(other: dict[str, Any]) -> None:
    pools = planned_pools((1, "10.0.1.0/24"), (2, "10.0.2.0/24"))
    resolution = resolve(pools, [other], OWNER, LABEL)
    assert placed(resolution.pools) == [("np-s2", "10.0.2.0/24", False)]
    name = other["metadata"]["name"]
    assert [(p.prefix, p.reason, p.message) for p in resolution.problems] == [
        (
            "10.0.1.0/24",
            "PrefixInOtherPool",
            f"GlobalInClusterIPPool {name} already holds addresses of 10.0.1.0/24: a second pool would hand "
            "them out twice, so none is written",
        )
    ]


def test_c_our_pool_does_not_move_onto_addresses_another_pool_holds() -> None:
    pools = planned_pools((1, "10.0.9.0/24"))
    pools_live = [live("np-s1", "10.0.1.0/24", owner=OWNER, prefix_id=1), live("theirs", "10.0.9.0/24", owner=OWNER)]
    resolution = resolve(pools, pools_live, OWNER, LABEL)
    assert resolution.pools == []
    assert [(p.pool, p.reason) for p in resolution.problems] == [("np-s1", "PrefixInOtherPool")]


def test_c_one_prefix_two_selectors_name_differently_gets_one_pool() -> None:
    spec = IPPoolImportSpec.model_validate(
        {"ippools": [{"namePrefix": "a", "region": "r"}, {"namePrefix": "b", "region": "r"}]}
    )
    pools = planned_pools((1, "10.0.1.0/24"), spec=spec)
    resolution = resolve(pools, [], OWNER, LABEL)
    assert placed(resolution.pools) == [("a-s1", "10.0.1.0/24", False)]
    problems = [(p.pool, p.reason, p.message.split(" already")[0]) for p in resolution.problems]
    assert problems == [("", "PrefixInOtherPool", "GlobalInClusterIPPool a-s1")]
    # Next pass, with the pool written: the same answer, though both now find it by its prefix id label.
    again = resolve(pools, [live("a-s1", "10.0.1.0/24", owner=OWNER, prefix_id=1)], OWNER, LABEL)
    assert placed(again.pools) == [("a-s1", "10.0.1.0/24", False)]
    assert [(p.pool, p.reason, p.message.split(" already")[0]) for p in again.problems] == problems


def test_d_the_computed_name_when_no_pool_holds_the_prefix() -> None:
    pools = planned_pools((1, "10.0.1.0/24"), (2, "10.0.2.0/24"))
    pools_live = [
        live("np-s1", "10.0.1.0/24", owner=OWNER, prefix_id=99),  # ours of an old prefix id: rewritten
        live("np-s2", "192.168.2.0/24"),  # someone else's name: the converger reports NameTaken
        live("v6", "2001:db8::/64"),
    ]
    resolution = resolve(pools, pools_live, OWNER, LABEL)
    assert placed(resolution.pools) == [("np-s1", "10.0.1.0/24", False), ("np-s2", "10.0.2.0/24", False)]
    assert resolution.problems == []


def test_two_prefixes_left_on_one_name_the_one_the_pool_holds_keeps_it() -> None:
    # The original's pool np-s2 holds prefix 1's network: adopted for prefix 1, which prefix 2 is named after.
    pools = planned_pools((1, "10.0.1.0/24"), (2, "10.0.2.0/24"))
    resolution = resolve(pools, [live("np-s2", "10.0.1.0/24")], OWNER, LABEL)
    assert placed(resolution.pools) == [("np-s2", "10.0.1.0/24", True)]
    assert [(p.prefix, p.pool, p.reason, p.message) for p in resolution.problems] == [
        ("10.0.2.0/24", "np-s2", "NameCollision", "pool 'np-s2' goes to 10.0.1.0/24, which it holds")
    ]


def test_the_live_order_of_the_same_excluded_addresses_is_kept() -> None:
    spec = IPPoolImportSpec.model_validate(
        {"ippools": [{"namePrefix": "np", "region": "r", "excludeMask": 30, "excludeLastNAddresses": 2}]}
    )
    original = live("np-s1", "10.0.1.0/24")
    original["spec"]["excludedAddresses"] = ["10.0.1.255", "10.0.1.0/30", "10.0.1.254"]
    changed = live("np-s2", "10.0.2.0/24")
    changed["spec"]["excludedAddresses"] = ["10.0.2.255", "10.0.2.0/30"]
    pools = planned_pools((1, "10.0.1.0/24"), (2, "10.0.2.0/24"), spec=spec)
    resolution = resolve(pools, [original, changed], OWNER, LABEL)
    assert [pool.body["spec"]["excludedAddresses"] for pool in resolution.pools] == [
        ["10.0.1.255", "10.0.1.0/30", "10.0.1.254"],
        ["10.0.2.0/30", "10.0.2.254", "10.0.2.255"],
    ]


def test_address_holders_find_any_pool_that_shares_an_address() -> None:
    holders = AddressHolders(
        {
            "wide": live("wide", "10.0.0.0/8"),
            "range": live("range", "10.1.0.10-10.1.0.20"),
            "mine": live("mine", "10.2.0.0/24"),
            "v6": live("v6", "2001:db8::/64"),
        }
    )
    net = ipaddress.ip_network
    assert holders.holder(net("10.200.0.0/24")) == "wide"  # a long span that starts far before
    assert holders.holder(net("11.0.0.0/24")) is None
    assert holders.holder(net("10.2.0.0/24"), besides="mine") == "wide"
    assert holders.holder(net("2001:db8::/48")) == "v6"
    assert holders.holder(net("2001:db9::/64")) is None
    holders.add("new", net("192.168.1.0/24"))
    assert holders.holder(net("192.168.0.0/16")) == "new"
    assert holders.holder(net("192.168.1.128/25")) == "new"
    assert holders.holder(net("192.168.2.0/24")) is None
