"""A delta read of an IPPoolImport's prefixes: what NetBox's changes name, read again on top of the last
full read.

The prefixes the changes name are read again by id, with the locations and sites of their scopes not
known from the last read, in a few requests whatever the number of selectors. Which selectors give each
of them is decided here the way NetBox's prefix filters decide it for `read_prefixes` (status, role,
exact prefix, site and region through the scope NetBox caches on the prefix, VRF by name), so that the
result is the selection a full read would give. What cannot be decided so, and then the caller reads
NetBox whole: a site changed (its region moves every prefix scoped to it, read or not), a selector that
failed or filters by tenant or tags (the prefixes' reads hold neither), a scope type NetBox did not have,
or changes to more than half of the prefixes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Final

from argora_common.changes import PREFIX, ChangeSet
from argora_common.crds import IPPoolSelector
from argora_common.netbox import NetBox
from argora_common.netbox_schema import PREFIXES, REGIONS, Ref, Region
from argora_common.prefixes import LOCATION_SCOPE, SITE_SCOPE, PrefixSelection, ScopedPrefix, scope_sites

REGION_SCOPE: Final = "dcim.region"
SITE_GROUP_SCOPE: Final = "dcim.sitegroup"
SCOPE_TYPES: Final = frozenset({None, SITE_SCOPE, LOCATION_SCOPE, REGION_SCOPE, SITE_GROUP_SCOPE})
# Below this many changed prefixes a delta read is cheap whatever the size of the selection: its id
# chunks are a request or two, a full read one per selector and page.
SLACK: Final = 100


def mirrored(selector: IPPoolSelector) -> bool:
    """Whether `selects` decides for the selector as NetBox would: the prefixes' reads carry no tenant or
    tags, and NetBox refuses a prefix filter with host bits set."""
    if selector.tenant is not None or selector.tags:
        return False
    if selector.prefix is None:
        return True
    try:
        ipaddress.ip_network(selector.prefix)
    except ValueError:
        return False
    return True


def region_of(scoped: ScopedPrefix) -> Ref | None:
    """The region NetBox caches on a prefix for its `region` filter (CachedScopeMixin): the scope itself,
    or the region of the scope's site; none for a site group or no scope."""
    if scoped.prefix.scope_type == REGION_SCOPE:
        return scoped.prefix.scope
    return scoped.site.region if scoped.site is not None else None


def in_region(region: Ref, slug: str, regions: Mapping[int, Region]) -> bool:
    """Whether `region` is the region `slug` or lies below it: NetBox's region filter takes the regions
    below the one named too."""
    seen: set[int] = set()
    current = regions.get(region.id)
    while current is not None and current.id not in seen:
        if current.slug == slug:
            return True
        seen.add(current.id)
        current = regions.get(current.parent.id) if current.parent is not None else None
    return False


def selects(selector: IPPoolSelector, scoped: ScopedPrefix, regions: Mapping[int, Region] | None) -> bool | None:
    """Whether NetBox's filters for the selector (prefixes.prefix_filters) give the prefix; None when that
    depends on which regions lie below the selector's and `regions` (all of them, by id) is not given."""
    prefix, site = scoped.prefix, scoped.site
    if selector.status is not None and prefix.status != selector.status:
        return False
    if selector.role is not None and (prefix.role is None or prefix.role.slug != selector.role):
        return False
    # NetBox's `prefix` filter is an exact match, not containment.
    if selector.prefix is not None and ipaddress.ip_network(prefix.prefix) != ipaddress.ip_network(selector.prefix):
        return False
    if selector.site is not None and (site is None or site.slug != selector.site):
        return False
    if selector.vrf is not None and (prefix.vrf is None or prefix.vrf.name != selector.vrf):
        return False
    if selector.region is None:
        return True
    region = region_of(scoped)
    if region is None:
        return False
    if region.slug == selector.region:
        return True
    return None if regions is None else in_region(region, selector.region, regions)


def select(
    selectors: Sequence[IPPoolSelector], prefixes: Sequence[ScopedPrefix], regions: Mapping[int, Region] | None
) -> list[list[ScopedPrefix]] | None:
    """Per selector, the prefixes it gives; None when `regions` would be needed (see `selects`)."""
    by_selector: list[list[ScopedPrefix]] = []
    for selector in selectors:
        decided = [(scoped, selects(selector, scoped, regions)) for scoped in prefixes]
        if any(selected is None for _, selected in decided):
            return None
        by_selector.append([scoped for scoped, selected in decided if selected])
    return by_selector


def merged(last: PrefixSelection, prefix_ids: set[int], fresh: Sequence[Sequence[ScopedPrefix]]) -> PrefixSelection:
    """`last` with the prefixes of `prefix_ids` replaced, per selector, by those `fresh` gives (pure)."""
    return PrefixSelection(
        by_selector=[
            # A full read's order: cursor pages go by id.
            sorted([*(s for s in kept if s.prefix.id not in prefix_ids), *new], key=lambda s: s.prefix.id)
            for kept, new in zip(last.by_selector, fresh, strict=True)
        ],
        selector_errors=dict(last.selector_errors),
    )


def patch_selection(
    netbox: NetBox, last: PrefixSelection, selectors: Sequence[IPPoolSelector], changes: ChangeSet
) -> PrefixSelection | None:
    """The selection a full read would give now, from `last` and a read of the prefixes `changes` name;
    None when a full read is needed (see the module's docstring)."""
    if any(object_type != PREFIX for object_type, _ in changes.changed):
        return None
    if last.selector_errors or not all(mirrored(selector) for selector in selectors):
        return None
    prefix_ids = changes.ids(PREFIX)
    if 2 * len(prefix_ids) > len(last.prefix_ids) + SLACK:
        return None
    prefixes = netbox.list_by_ids(PREFIXES, "id", prefix_ids)
    if any(prefix.scope_type not in SCOPE_TYPES for prefix in prefixes):
        return None
    known = {s.site.id: s.site for selected in last.by_selector for s in selected if s.site is not None}
    sites = scope_sites(netbox, prefixes, known)
    scoped = [ScopedPrefix(prefix, sites[prefix.id]) for prefix in prefixes]
    # The region tree is read only when a prefix's region is not the one a selector names.
    fresh = select(selectors, scoped, None)
    if fresh is None:
        fresh = select(selectors, scoped, {region.id: region for region in netbox.select(REGIONS)})
    assert fresh is not None  # with every region known, each selector decides
    return merged(last, prefix_ids, fresh)
