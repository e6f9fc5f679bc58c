"""Reading the prefixes of IPPoolImport selectors from the real NetBox: scopes resolved to sites, and a
request count that follows the selectors and pages, not the number of prefixes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from argora_common.crds import IPPoolSelector
from argora_common.netbox import NetBox
from argora_common.prefixes import read_prefixes
from argora_common.settings import Settings
from argora_dev.netbox import NetBoxServer
from argora_dev.seed import NetBoxSeeder, fresh_network, unique_prefix

pytestmark = pytest.mark.integration


def seed_region(seeder: NetBoxSeeder, name: str, count: int, vrf: dict[str, Any]) -> dict[str, Any]:
    """A region with `count` sites, each with one prefix: every third scoped to a location in the site."""
    region = seeder.create_one("dcim/regions", name=name, slug=name)
    sites = seeder.create(
        "dcim/sites", [{"name": f"{name}-s{i}", "slug": f"{name}-s{i}", "region": region["id"]} for i in range(count)]
    )
    locations = seeder.create(
        "dcim/locations",
        [{"name": f"{name}-l{i}", "slug": f"{name}-l{i}", "site": site["id"]} for i, site in enumerate(sites)],
    )
    seeder.create(
        "ipam/prefixes",
        [
            {
                "prefix": str(fresh_network()), "vrf": vrf["id"],
                **({"scope_type": "dcim.location", "scope_id": location["id"]} if i % 3 == 0
                   else {"scope_type": "dcim.site", "scope_id": site["id"]}),
            }
            for i, (site, location) in enumerate(zip(sites, locations, strict=True))
        ],
    )  # fmt: skip
    return region


@pytest.mark.parametrize("count", [3, 60])
def test_requests_do_not_grow_with_the_prefixes(netbox: NetBoxServer, count: int) -> None:
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    name = unique_prefix(f"prefixes-{count}")
    vrf = seeder.create_one("ipam/vrfs", name=f"{name}-vrf")
    region = seed_region(seeder, name, count, vrf)
    client = NetBox(Settings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.readonly_v2_token)))
    selector = IPPoolSelector(name_prefix="p", region=region["slug"], vrf=vrf["name"])

    selection = read_prefixes(client, [selector])

    (scoped,) = selection.by_selector
    assert len(scoped) == count
    # A location-scoped prefix is named after the location's site.
    assert {item.site.slug for item in scoped if item.site} == {f"{name}-s{i}" for i in range(count)}
    assert client.requests_sent == {"ipam/vrfs": 1, "ipam/prefixes": 1, "dcim/locations": 1, "dcim/sites": 1}


def test_a_vrf_that_does_not_exist_matches_nothing(netbox: NetBoxServer) -> None:
    client = NetBox(Settings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.readonly_v2_token)))
    selection = read_prefixes(client, [IPPoolSelector(name_prefix="p", region="anywhere", vrf="no-such-vrf")])
    assert selection.by_selector == [[]]
    assert "no VRF named 'no-such-vrf'" in selection.selector_errors[0]
