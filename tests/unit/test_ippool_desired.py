"""argora-ippool's plan: pool names, gateway, exclusions and collisions, from NetBox prefixes alone."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from argora_common.crds import IPPoolImportSpec, IPPoolSelector
from argora_common.kube import Owner
from argora_common.netbox_schema import Prefix, Ref, Site
from argora_common.prefixes import PrefixSelection, ScopedPrefix, prefix_filters
from ippool_controller.desired import UnusablePrefixError, exclusions, gateway, plan, pool_name

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


def test_exclusions_combine_mask_addresses_and_the_last_n() -> None:
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
        "10.0.0.252-10.0.0.254",
    ]
    assert exclusions(selector(excludeLastNAddresses=1), ipaddress.ip_network("2001:db8::/126")) == ["2001:db8::3"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"excludeMask": 24}, "BadExcludeMask"),
        ({"excludeMask": 33}, "BadExcludeMask"),
        ({"excludeLastNAddresses": 254}, "BadExcludeLastN"),
    ],
)
def test_impossible_exclusions_are_problems(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnusablePrefixError) as raised:
        exclusions(selector(**fields), ipaddress.ip_network("10.0.0.0/24"))
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
