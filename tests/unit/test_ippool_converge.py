"""argora-ippool's converge step against the in-memory API server: pools in use are never moved or
deleted, free ones follow NetBox, the original operator's pools are adopted."""

from __future__ import annotations

from typing import Any

from argora_common.crds import IPPoolImportSpec
from argora_common.kinds import GLOBAL_POOL
from argora_common.kube import Owner
from argora_common.netbox_schema import Prefix, Site
from argora_common.prefixes import PrefixSelection, ScopedPrefix
from ippool_controller.apply import PoolConverger, PoolResult
from ippool_controller.desired import IP_ADDRESS, plan
from tests.unit.memory_kube import MemoryKube

OWNER = Owner("infra", "pools", "argora-ippool")
SPEC = IPPoolImportSpec.model_validate({"ippools": [{"namePrefix": "np", "region": "r"}]})


def site(number: int) -> Site:
    return Site.model_validate(
        {"id": number, "slug": f"s{number}", "name": f"S{number}", "region": {"id": 1, "slug": "r"}}
    )


def prefixes(*networks: tuple[int, str]) -> PrefixSelection:
    """Prefix `id` at site `id`, one pool each."""
    return PrefixSelection(
        by_selector=[
            [
                ScopedPrefix(Prefix.model_validate({"id": number, "prefix": cidr, "status": "active"}), site(number))
                for number, cidr in networks
            ]
        ]
    )


def converge(kube: MemoryKube, selection: PrefixSelection, spec: IPPoolImportSpec = SPEC) -> PoolResult:
    return PoolConverger(kube, OWNER, spec, "p").converge(plan(selection, spec, OWNER, "p", "gateway"))


def allocate(kube: MemoryKube, pool: str) -> None:
    kube.add(
        IP_ADDRESS,
        {
            "metadata": {"name": f"{pool}-addr", "namespace": "machines"},
            "spec": {"poolRef": {"apiGroup": GLOBAL_POOL.group, "kind": GLOBAL_POOL.kind, "name": pool}},
        },
    )


def addresses(kube: MemoryKube) -> dict[str, Any]:
    return {name: pool["spec"]["addresses"] for name, pool in kube.objects(GLOBAL_POOL).items()}


def test_free_pools_follow_netbox_and_pools_in_use_keep_their_network() -> None:
    kube = MemoryKube()
    converge(kube, prefixes((1, "10.0.1.0/24"), (2, "10.0.2.0/24")))
    allocate(kube, "np-s2")
    result = converge(kube, prefixes((1, "10.9.1.0/24"), (2, "10.9.2.0/24")))
    assert addresses(kube) == {"np-s1": ["10.9.1.0/24"], "np-s2": ["10.0.2.0/24"]}
    assert result.updated == ["np-s1"]
    assert [(p.pool, p.reason) for p in result.in_use] == [("np-s2", "InUse")]


def test_departed_prefixes_are_pruned_unless_their_pool_is_in_use() -> None:
    kube = MemoryKube()
    converge(kube, prefixes((1, "10.0.1.0/24"), (2, "10.0.2.0/24"), (3, "10.0.3.0/24")))
    allocate(kube, "np-s3")
    result = converge(kube, prefixes((1, "10.0.1.0/24")))
    assert set(addresses(kube)) == {"np-s1", "np-s3"}
    assert (result.pruned, result.held_back) == (["np-s2"], ["np-s3"])
    assert result.held_back_reason == "1 with addresses allocated"


def test_nothing_is_pruned_when_a_selector_could_not_be_read() -> None:
    kube = MemoryKube()
    spec = IPPoolImportSpec.model_validate(
        {"ippools": [{"namePrefix": "np", "region": "r"}, {"namePrefix": "x", "region": "r", "vrf": "gone"}]}
    )
    both = prefixes((1, "10.0.1.0/24"), (2, "10.0.2.0/24")).by_selector[0]
    converge(kube, PrefixSelection(by_selector=[both, []]), spec)
    selection = PrefixSelection(
        by_selector=[prefixes((1, "10.0.1.0/24")).by_selector[0], []], selector_errors={1: "no VRF named 'gone'"}
    )
    result = converge(kube, selection, spec)
    assert set(addresses(kube)) == {"np-s1", "np-s2"}
    assert result.held_back == ["np-s2"]
    assert "spec.ippools[1]" in result.held_back_reason


def test_the_original_operators_pool_is_adopted_and_a_foreign_one_is_not_touched() -> None:
    kube = MemoryKube()
    original = {"addresses": ["10.0.1.0/24"], "prefix": 24, "gateway": "10.0.1.1"}
    kube.add(GLOBAL_POOL, {"metadata": {"name": "np-s1"}, "spec": original})
    foreign = {"addresses": ["192.168.0.0/24"], "prefix": 24, "gateway": "192.168.0.1"}
    kube.add(GLOBAL_POOL, {"metadata": {"name": "np-s2"}, "spec": foreign})
    result = converge(kube, prefixes((1, "10.0.1.0/24"), (2, "10.0.2.0/24")))
    assert result.adopted == ["np-s1"]
    assert OWNER.owns(kube.stored(GLOBAL_POOL, "np-s1"))
    assert kube.stored(GLOBAL_POOL, "np-s2")["spec"] == foreign
    assert [(p.pool, p.reason) for p in result.failed] == [("np-s2", "NameTaken")]


def test_a_second_identical_pass_writes_nothing() -> None:
    kube = MemoryKube()
    converge(kube, prefixes((1, "10.0.1.0/24")))
    kube.writes.clear()
    result = converge(kube, prefixes((1, "10.0.1.0/24")))
    assert (result.unchanged, kube.writes) == (1, [])


def original_pool(kube: MemoryKube, name: str, network: str, excluded: list[str] | None = None) -> str:
    """A pool as the original operator wrote it: no labels; returns its uid."""
    spec = {"addresses": [network], "prefix": 24, "gateway": network.replace(".0/24", ".1")}
    if excluded is not None:
        spec["excludedAddresses"] = excluded
    stored = kube.add(GLOBAL_POOL, {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": spec})
    return str(stored["metadata"]["uid"])


def test_a_pool_of_the_prefix_under_another_name_is_adopted_kept_and_pruned_only_with_its_prefix() -> None:
    kube = MemoryKube()
    uid = original_pool(kube, "older-s1", "10.0.1.0/24")
    result = converge(kube, prefixes((1, "10.0.1.0/24")))
    assert (result.adopted, result.created) == (["older-s1"], [])
    assert set(addresses(kube)) == {"older-s1"}
    assert OWNER.owns(kube.stored(GLOBAL_POOL, "older-s1"))
    assert kube.stored(GLOBAL_POOL, "older-s1")["metadata"]["uid"] == uid

    # Ours from now on, under its own name: found again, neither renamed nor pruned.
    kube.writes.clear()
    result = converge(kube, prefixes((1, "10.0.1.0/24")))
    assert (result.unchanged, result.pruned, kube.writes) == (1, [], [])

    # Its prefix left the selection: pruned like any pool of ours, unless it hands out addresses.
    allocate(kube, "older-s1")
    result = converge(kube, prefixes((2, "10.0.2.0/24")))
    assert result.held_back == ["older-s1"]
    kube.delete(IP_ADDRESS, "older-s1-addr", "machines")
    result = converge(kube, prefixes((2, "10.0.2.0/24")))
    assert result.pruned == ["older-s1"]


def test_a_prefix_another_pool_holds_addresses_of_is_not_written() -> None:
    kube = MemoryKube()
    original_pool(kube, "half", "10.0.1.0/25")
    result = converge(kube, prefixes((1, "10.0.1.0/24"), (2, "10.0.2.0/24")))
    assert result.created == ["np-s2"]
    assert [(p.prefix, p.reason) for p in result.unplaced] == [("10.0.1.0/24", "PrefixInOtherPool")]
    assert addresses(kube) == {"half": ["10.0.1.0/25"], "np-s2": ["10.0.2.0/24"]}
    assert not kube.stored(GLOBAL_POOL, "half")["metadata"].get("labels")


def test_an_adopted_pool_keeps_its_order_of_the_excluded_addresses() -> None:
    kube = MemoryKube()
    spec = IPPoolImportSpec.model_validate(
        {"ippools": [{"namePrefix": "np", "region": "r", "excludeMask": 30, "excludeLastNAddresses": 1}]}
    )
    original_pool(kube, "np-s1", "10.0.1.0/24", excluded=["10.0.1.255", "10.0.1.0/30"])
    assert converge(kube, prefixes((1, "10.0.1.0/24")), spec).adopted == ["np-s1"]
    assert kube.stored(GLOBAL_POOL, "np-s1")["spec"]["excludedAddresses"] == ["10.0.1.255", "10.0.1.0/30"]
    kube.writes.clear()
    assert (converge(kube, prefixes((1, "10.0.1.0/24")), spec).unchanged, kube.writes) == (1, [])


def test_a_name_override_of_several_prefixes_gives_its_pool_to_the_first() -> None:
    kube = MemoryKube()
    spec = IPPoolImportSpec.model_validate({"ippools": [{"nameOverride": "mgmt", "region": "r"}]})
    result = converge(kube, prefixes((1, "10.0.2.0/24"), (2, "10.0.1.0/24")), spec)
    assert (result.created, addresses(kube)) == (["mgmt"], {"mgmt": ["10.0.1.0/24"]})
    assert [(p.prefix, p.reason) for p in result.unplaced] == [("10.0.2.0/24", "NameCollision")]
