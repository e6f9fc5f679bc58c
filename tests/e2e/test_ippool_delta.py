"""argora-ippool's delta read gives what a full read gives: random prefix edits in a real NetBox, read back
through its change log the way argora-ippool's change feed reads them, then the selection patched with
the prefixes they name against the selection read whole. Both are planned, and the pools planned must be
the same.

The prefixes are scoped to sites of two regions under a parent, to a location, to the regions themselves
or to nothing, so that the selectors' region (with the regions below it), site, role, status and exact
prefix criteria all come into play. Each round makes a few random edits; the random seed is in every
failure message.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from argora_common.crds import IPPoolImportSpec
from argora_common.kube import Owner
from argora_common.netbox import NetBox
from argora_common.prefixes import PrefixSelection, read_prefixes
from argora_common.settings import Settings
from argora_dev.changefeed import FeedRecorder
from argora_dev.netbox import NetBoxServer
from argora_dev.seed import GATEWAY_FIELD, NetBoxSeeder, ensure_gateway_field, fresh_network
from ippool_controller.delta import patch_selection
from ippool_controller.desired import plan
from ippool_controller.reconcile import INTEREST

pytestmark = pytest.mark.integration

ROUNDS = 10
OWNER = Owner("delta", "pools", "argora-ippool")
LABELS = "kubernetes.metal.cloud.sap"
STATUSES = ["active", "reserved", "deprecated", "container"]
# The most requests a delta read sends: the prefixes, their locations, their sites, the region tree.
MOST_REQUESTS = 4


def planned(selection: PrefixSelection, spec: IPPoolImportSpec) -> dict[str, Any]:
    """What a pass makes of a selection, in an order that does not depend on how it was read."""
    result = plan(selection, spec, OWNER, LABELS, GATEWAY_FIELD)
    return {
        "pools": sorted(((p.name, p.prefix_id, p.prefix, repr(p.body)) for p in result.pools), key=repr),
        "problems": sorted(repr(p) for p in result.problems),
        "selected": result.selected_prefix_ids,
        "unmatched": result.unmatched_selectors,
        "prune_blocked": result.prune_blocked,
    }


class Edits:
    """Random edits of the kinds NetBox users make to prefixes, and a site moved to another region."""

    def __init__(self, seeder: NetBoxSeeder, prefix: str, rng: random.Random) -> None:
        self.seeder = seeder
        self.prefix = prefix
        self.rng = rng
        self.parent = seeder.create_one("dcim/regions", name=f"{prefix}-parent", slug=f"{prefix}-parent")
        self.regions = seeder.create(
            "dcim/regions",
            [{"name": f"{prefix}-{x}", "slug": f"{prefix}-{x}", "parent": self.parent["id"]} for x in "ab"],
        )
        self.sites = seeder.create(
            "dcim/sites",
            [
                {"name": f"{prefix}-{x}1", "slug": f"{prefix}-{x}1", "region": region["id"], "status": "active"}
                for x, region in zip("ab", self.regions, strict=True)
            ],
        )
        self.location = seeder.create_one(
            "dcim/locations", name=f"{prefix}-room", slug=f"{prefix}-room", site=self.sites[1]["id"]
        )
        self.roles = seeder.create("ipam/roles", [{"name": f"{prefix}-{x}", "slug": f"{prefix}-{x}"} for x in "xy"])
        self.prefixes: list[dict[str, Any]] = []
        self.fixed = fresh_network()  # the network one selector names exactly

    def scope(self) -> dict[str, Any]:
        kind = self.rng.choice(["site", "site", "location", "region", "none"])
        if kind == "site":
            return {"scope_type": "dcim.site", "scope_id": self.rng.choice(self.sites)["id"]}
        if kind == "location":
            return {"scope_type": "dcim.location", "scope_id": self.location["id"]}
        if kind == "region":
            return {"scope_type": "dcim.region", "scope_id": self.rng.choice([self.parent, *self.regions])["id"]}
        return {"scope_type": None, "scope_id": None}

    def fields(self) -> dict[str, Any]:
        return {
            **self.scope(),
            "role": self.role_id(),
            "status": self.rng.choice(STATUSES),
        }

    def role_id(self) -> int | None:
        role = self.rng.choice([*self.roles, None])
        return role["id"] if role else None

    def any_prefix(self) -> dict[str, Any]:
        return self.rng.choice(self.prefixes)

    def new_prefix(self) -> None:
        network = self.fixed if self.fixed not in {p["network"] for p in self.prefixes} else fresh_network()
        record = self.seeder.create_one("ipam/prefixes", prefix=str(network), **self.fields())
        self.prefixes.append({"id": record["id"], "network": network})

    def role(self) -> None:
        self.seeder.update("ipam/prefixes", self.any_prefix()["id"], role=self.role_id())

    def status(self) -> None:
        self.seeder.update("ipam/prefixes", self.any_prefix()["id"], status=self.rng.choice(STATUSES))

    def move(self) -> None:
        self.seeder.update("ipam/prefixes", self.any_prefix()["id"], **self.scope())

    def length(self) -> None:
        chosen = self.any_prefix()
        network: ipaddress.IPv4Network = chosen["network"]
        length = self.rng.choice([24, 25, 26])
        self.seeder.update("ipam/prefixes", chosen["id"], prefix=f"{network.network_address}/{length}")

    def gateway(self) -> None:
        chosen = self.any_prefix()
        network: ipaddress.IPv4Network = chosen["network"]
        value = self.rng.choice([f"{network.network_address + 7}/24", "not-an-address", "192.0.2.1", ""])
        self.seeder.update("ipam/prefixes", chosen["id"], custom_fields={GATEWAY_FIELD: value})

    def delete(self) -> None:
        if len(self.prefixes) > 4:
            chosen = self.prefixes.pop(self.rng.randrange(len(self.prefixes)))
            self.seeder.delete("ipam/prefixes", [chosen["id"]])

    def site_region(self) -> None:
        self.seeder.update("dcim/sites", self.sites[0]["id"], region=self.rng.choice(self.regions)["id"])

    def all(self) -> list[Callable[[], None]]:
        return [
            self.new_prefix, self.role, self.status, self.move, self.length, self.gateway, self.delete,
            self.site_region,
        ]  # fmt: skip


def spec_of(edits: Edits) -> IPPoolImportSpec:
    prefix, (role_x, role_y) = edits.prefix, edits.roles
    return IPPoolImportSpec.model_validate(
        {
            "ippools": [
                # The parent region: prefixes of either region below it, and scoped to it.
                {"namePrefix": "parent", "region": f"{prefix}-parent", "role": role_x["slug"]},
                {"namePrefix": "a", "region": f"{prefix}-a"},
                {"namePrefix": "y", "role": role_y["slug"], "status": "active"},
                {"nameOverride": f"{prefix}-b1-x", "role": role_x["slug"], "site": f"{prefix}-b1"},
                {"nameOverride": f"{prefix}-fixed", "prefix": str(edits.fixed)},
            ]
        }
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_delta_read_plans_the_pools_a_full_read_plans_after_random_prefix_changes(
    netbox: NetBoxServer, seeder: NetBoxSeeder, prefix: str, seed: int
) -> None:
    rng = random.Random(seed)
    ensure_gateway_field(seeder)
    edits = Edits(seeder, prefix, rng)
    for _ in range(8):
        edits.new_prefix()
    spec = spec_of(edits)
    settings = Settings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.readonly_v2_token))
    client = NetBox(settings)
    recorder = FeedRecorder(client, INTEREST, settings)
    last = read_prefixes(client, spec.ippools)
    deltas = 0
    requests: list[int] = []
    select = client.select

    def counted(*args: Any, **kwargs: Any) -> Any:
        requests[-1] += 1
        return select(*args, **kwargs)

    for round_number in range(ROUNDS):
        done = rng.sample(edits.all(), rng.randint(1, 3))
        changes = recorder.changes_after(done, last.refs())
        full = read_prefixes(client, spec.ippools)
        requests.append(0)
        client.select = counted  # type: ignore[method-assign]
        try:
            patched = patch_selection(client, last, spec.ippools, changes) if changes is not None else last
        finally:
            del client.select
        context = f"seed {seed}, round {round_number}: {[edit.__name__ for edit in done]}"
        if patched is not None:
            deltas += 1
            assert planned(patched, spec) == planned(full, spec), context
            assert requests[-1] <= MOST_REQUESTS, context
        last = patched if patched is not None else full
    assert deltas >= ROUNDS // 2, "most rounds must be delta reads, or this tests little"
