"""argora-ippool's delta reads, the pure parts: whether a selector gives a prefix as NetBox's filters would,
and how a delta read is merged into the last selection. Against real NetBox: tests/e2e/test_ippool_delta.py."""

from __future__ import annotations

from typing import Any, cast

import pytest

from argora_common.changes import PREFIX, SITE, ChangeSet
from argora_common.crds import IPPoolSelector
from argora_common.netbox import NetBox
from argora_common.netbox_schema import Prefix, Ref, Region, Site
from argora_common.prefixes import PrefixSelection, ScopedPrefix
from ippool_controller.delta import in_region, merged, mirrored, patch_selection, region_of, select, selects

WORLD = Region(id=1, slug="world")
EU = Region(id=2, slug="eu", parent=Ref(id=1, slug="world"))
DE = Region(id=3, slug="de", parent=Ref(id=2, slug="eu"))
US = Region(id=4, slug="us", parent=Ref(id=1, slug="world"))
REGIONS = {region.id: region for region in (WORLD, EU, DE, US)}
SITE_DE = Site(id=10, slug="de-1a", name="DE 1a", region=Ref(id=3, slug="de"))
SITE_US = Site(id=11, slug="us-1a", name="US 1a", region=Ref(id=4, slug="us"))
SITE_NOWHERE = Site(id=12, slug="lost", name="Lost")


def prefix(prefix_id: int = 100, cidr: str = "10.0.0.0/24", **fields: Any) -> Prefix:
    return Prefix.model_validate({"id": prefix_id, "prefix": cidr, "status": "active", **fields})


def at(site: Site, prefix_id: int = 100, **fields: Any) -> ScopedPrefix:
    return ScopedPrefix(prefix(prefix_id, scope_type="dcim.site", scope_id=site.id, **fields), site)


def selector(**fields: Any) -> IPPoolSelector:
    return IPPoolSelector.model_validate({"namePrefix": "pool", **fields})


def test_a_prefix_is_in_the_region_of_its_scope_and_in_every_region_above() -> None:
    assert region_of(at(SITE_DE)) == Ref(id=3, slug="de")
    assert region_of(ScopedPrefix(prefix(scope_type="dcim.region", scope_id=2, scope={"id": 2, "slug": "eu"}), None))
    # A site group, or no scope, gives the region filter nothing to match.
    assert region_of(ScopedPrefix(prefix(scope_type="dcim.sitegroup", scope_id=5), None)) is None
    assert region_of(ScopedPrefix(prefix(), None)) is None
    assert in_region(Ref(id=3), "de", REGIONS) and in_region(Ref(id=3), "eu", REGIONS)
    assert in_region(Ref(id=3), "world", REGIONS)
    assert not in_region(Ref(id=3), "us", REGIONS) and not in_region(Ref(id=2), "de", REGIONS)


def test_a_cycle_in_the_region_tree_ends_the_walk() -> None:
    looped = {1: Region(id=1, slug="a", parent=Ref(id=2)), 2: Region(id=2, slug="b", parent=Ref(id=1))}
    assert not in_region(Ref(id=1), "c", looped)


@pytest.mark.parametrize(
    ("fields", "scoped", "expected"),
    [
        ({"role": "transit"}, at(SITE_DE, role={"id": 1, "slug": "transit"}), True),
        ({"role": "transit"}, at(SITE_DE, role={"id": 2, "slug": "storage"}), False),
        ({"role": "transit"}, at(SITE_DE), False),
        # No status selects every status; a status only its own.
        ({"role": "transit"}, at(SITE_DE, role={"id": 1, "slug": "transit"}, status="deprecated"), True),
        ({"role": "transit", "status": "reserved"}, at(SITE_DE, role={"id": 1, "slug": "transit"}), False),
        # NetBox's `prefix` filter is an exact match: a prefix inside it or around it is not selected.
        ({"prefix": "10.0.0.0/24"}, at(SITE_DE), True),
        ({"prefix": "10.0.0.0/16"}, at(SITE_DE), False),
        ({"prefix": "10.0.0.0/25"}, at(SITE_DE), False),
        ({"prefix": "10.0.0.0/24", "site": "de-1a"}, at(SITE_DE), True),
        ({"prefix": "10.0.0.0/24", "site": "us-1a"}, at(SITE_DE), False),
        ({"prefix": "10.0.0.0/24", "vrf": "blue"}, at(SITE_DE, vrf={"id": 7, "name": "blue"}), True),
        ({"prefix": "10.0.0.0/24", "vrf": "blue"}, at(SITE_DE, vrf={"id": 8, "name": "red"}), False),
        ({"prefix": "10.0.0.0/24", "vrf": "blue"}, at(SITE_DE), False),
        ({"region": "de"}, at(SITE_DE), True),
        ({"region": "eu"}, at(SITE_DE), True),
        ({"region": "us"}, at(SITE_DE), False),
        ({"region": "de"}, at(SITE_NOWHERE), False),
        ({"region": "de"}, ScopedPrefix(prefix(), None), False),
        ({"region": "eu"}, ScopedPrefix(prefix(scope_type="dcim.region", scope_id=3, scope={"id": 3}), None), True),
    ],
)
def test_a_selector_gives_what_netboxs_filters_give(
    fields: dict[str, Any], scoped: ScopedPrefix, expected: bool
) -> None:
    assert selects(selector(**fields), scoped, REGIONS) is expected


def test_only_a_region_other_than_the_selectors_needs_the_region_tree() -> None:
    assert selects(selector(region="de"), at(SITE_DE), None) is True
    assert selects(selector(region="eu"), at(SITE_DE), None) is None
    # Another criterion that fails decides without it.
    assert selects(selector(region="eu", role="transit"), at(SITE_DE), None) is False
    assert select([selector(region="de"), selector(region="eu")], [at(SITE_DE)], None) is None
    assert select([selector(region="de"), selector(region="us")], [at(SITE_DE)], REGIONS) == [[at(SITE_DE)], []]


def test_tenant_tags_and_host_bits_are_left_to_netbox() -> None:
    assert mirrored(selector(region="de", status="active", vrf="blue", site="x", prefix="10.0.0.0/8"))
    assert not mirrored(selector(region="de", tenant="acme"))
    assert not mirrored(selector(region="de", tags=["gold"]))
    assert not mirrored(selector(prefix="10.0.0.1/8"))


def test_a_merge_replaces_what_was_read_again_and_keeps_a_full_reads_order() -> None:
    last = PrefixSelection([[at(SITE_DE, 1), at(SITE_DE, 2), at(SITE_DE, 5)], [at(SITE_US, 3)]])
    # 2 was read again and is still selected by the first selector, now by the second too; 5 is gone.
    fresh = [[at(SITE_US, 2), at(SITE_DE, 4)], [at(SITE_US, 2)]]
    result = merged(last, {2, 4, 5}, fresh)
    assert result.by_selector == [[at(SITE_DE, 1), at(SITE_US, 2), at(SITE_DE, 4)], [at(SITE_US, 2), at(SITE_US, 3)]]


class NoNetBox:
    """What a delta read that must give up before reading anything is handed."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"read NetBox ({name}) though a full read is needed")


def changes(*changed: tuple[str, int]) -> ChangeSet:
    return ChangeSet(frozenset(changed), frozenset(changed))


@pytest.mark.parametrize(
    ("last", "selectors", "changed"),
    [
        # A site changed: its new region may hold prefixes never read.
        (PrefixSelection([[at(SITE_DE)]]), [selector(region="de")], changes((PREFIX, 1), (SITE, 10))),
        # A selector NetBox could not answer may answer now.
        (PrefixSelection([[]], {0: "no such role"}), [selector(role="x")], changes((PREFIX, 1))),
        (PrefixSelection([[]]), [selector(region="de", tenant="acme")], changes((PREFIX, 1))),
        # More changed prefixes than half of those selected (and the slack): a full read is cheaper.
        (PrefixSelection([[at(SITE_DE)]]), [selector(region="de")], changes(*((PREFIX, i) for i in range(102)))),
    ],
)
def test_what_a_delta_read_cannot_decide_it_leaves_to_a_full_read(
    last: PrefixSelection, selectors: list[IPPoolSelector], changed: ChangeSet
) -> None:
    assert patch_selection(cast(NetBox, NoNetBox()), last, selectors, changed) is None
