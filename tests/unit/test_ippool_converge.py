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
