"""NetBox prefixes for a set of prefix selectors, each with the site its scope lies in, read in bulk.

Requests per read: for each selector, the pages of its prefixes (and one VRF lookup when it names a
VRF); then, for all selectors together, the locations of location-scoped prefixes and the sites of
site- and location-scoped prefixes in id chunks. The count follows the number of selectors and pages,
not the number of prefixes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from argora_common.changes import PREFIX, SITE, NetBoxId
from argora_common.crds import IPPoolSelector
from argora_common.netbox import FilterValue, NetBox, NetBoxRejectedError
from argora_common.netbox_schema import LOCATIONS, PREFIXES, SITES, VRFS, Location, Prefix, Site

SITE_SCOPE = "dcim.site"
LOCATION_SCOPE = "dcim.location"


@dataclass(frozen=True)
class ScopedPrefix:
    prefix: Prefix
    # The site of the prefix's scope: the scope itself, or the location's site; None for a region or
    # site-group scope, or none at all.
    site: Site | None


@dataclass
class PrefixSelection:
    by_selector: list[list[ScopedPrefix]]
    # Why a selector matched nothing when NetBox refused its query or its VRF does not exist.
    selector_errors: dict[int, str] = field(default_factory=dict)

    @property
    def prefix_ids(self) -> set[int]:
        return {scoped.prefix.id for prefixes in self.by_selector for scoped in prefixes}

    def refs(self) -> set[NetBoxId]:
        """The prefixes selected and their scopes' sites (a site's region names a pool)."""
        refs = {(PREFIX, prefix_id) for prefix_id in self.prefix_ids}
        return refs | {(SITE, s.site.id) for prefixes in self.by_selector for s in prefixes if s.site is not None}


def prefix_filters(selector: IPPoolSelector, vrf_ids: Sequence[int]) -> dict[str, FilterValue]:
    # Without a status every status is selected, as the original operator did: its pools of reserved or
    # deprecated prefixes must stay managed.
    filters: dict[str, FilterValue] = {}
    for name, value in (
        ("status", selector.status),
        ("region", selector.region),
        ("role", selector.role),
        ("prefix", selector.prefix),
        ("site", selector.site),
        ("tenant", selector.tenant),
    ):
        if value is not None:
            filters[name] = value
    if selector.tags:
        filters["tag"] = list(selector.tags)
    if selector.vrf is not None:
        filters["vrf_id"] = list(vrf_ids)
    return filters


def _select(netbox: NetBox, selector: IPPoolSelector) -> list[Prefix]:
    """The selector's prefixes; NetBoxRejectedError(400) or LookupError when it cannot match any."""
    vrf_ids: list[int] = []
    if selector.vrf is not None:
        vrf_ids = [vrf.id for vrf in netbox.select(VRFS, name=selector.vrf)]
        if not vrf_ids:
            raise LookupError(f"NetBox has no VRF named {selector.vrf!r}")
    return netbox.select(PREFIXES, **prefix_filters(selector, vrf_ids))


def read_prefixes(netbox: NetBox, selectors: Sequence[IPPoolSelector]) -> PrefixSelection:
    selection = PrefixSelection(by_selector=[])
    raw: list[list[Prefix]] = []
    for index, selector in enumerate(selectors):
        try:
            prefixes = _select(netbox, selector)
        except NetBoxRejectedError as error:
            # NetBox answers 400 to a slug it does not know: this selector matches nothing.
            if error.status_code != 400:
                raise
            prefixes, selection.selector_errors[index] = [], str(error)
        except LookupError as error:
            prefixes, selection.selector_errors[index] = [], str(error)
        raw.append(prefixes)
    sites = scope_sites(netbox, [prefix for prefixes in raw for prefix in prefixes], {})
    selection.by_selector = [[ScopedPrefix(prefix, sites[prefix.id]) for prefix in prefixes] for prefixes in raw]
    return selection


def scope_sites(netbox: NetBox, prefixes: Sequence[Prefix], known: Mapping[int, Site]) -> dict[int, Site | None]:
    """By prefix id, the site each prefix's scope lies in (see ScopedPrefix), reading the locations and
    the sites not `known` in id chunks."""
    location_ids = {p.scope_id for p in prefixes if p.scope_type == LOCATION_SCOPE and p.scope_id is not None}
    locations: dict[int, Location] = (
        {location.id: location for location in netbox.list_by_ids(LOCATIONS, "id", location_ids)}
        if location_ids
        else {}
    )
    site_ids = {p.scope_id for p in prefixes if p.scope_type == SITE_SCOPE and p.scope_id is not None}
    site_ids |= {location.site.id for location in locations.values()}
    site_ids -= set(known)
    sites: dict[int, Site] = {site.id: site for site in netbox.list_by_ids(SITES, "id", site_ids)} if site_ids else {}
    sites = {**known, **sites}

    def site_of(prefix: Prefix) -> Site | None:
        if prefix.scope_id is None:
            return None
        if prefix.scope_type == SITE_SCOPE:
            return sites.get(prefix.scope_id)
        location = locations.get(prefix.scope_id) if prefix.scope_type == LOCATION_SCOPE else None
        return sites.get(location.site.id) if location is not None else None

    return {prefix.id: site_of(prefix) for prefix in prefixes}
