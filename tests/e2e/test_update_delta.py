"""An argora-update delta pass plans the corrections a full pass plans: random edits of a real NetBox, read
back through its change log the way argora-update's change feed reads them, then the last read patched with
what they name against NetBox read whole. In some rounds the delta pass's plan is applied (dry run off),
as a pass would: the change feed leaves those writes out, and the next delta pass must still see them.

The devices need corrections of every kind: vendor-named BMC ports, no OOB IP, a platform other than the
Update's, VMK interfaces with IPs; they move between clusters and change status. The random seed is in every
failure message.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from pydantic import SecretStr

from argora_common.changes import ChangeFeed, ChangeSet
from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.passes import Body
from argora_common.settings import Settings
from argora_common.workqueue import WorkQueue
from argora_dev.changefeed import ServerEdits
from argora_dev.netbox import NetBoxServer
from argora_dev.seed import NetBoxSeeder, Topology, add_servers, fresh_ipv4
from update_controller.facts import Facts, touched
from update_controller.reconcile import FIELD_MANAGER, INTEREST, UpdateSteps

pytestmark = pytest.mark.integration

ROUNDS = 10
KEY = ("delta", "update")
BMC_NAMES = ["iDRAC", "iLO", "remoteboard", "eth0"]


def planned(steps: UpdateSteps, body: Body, facts: Facts) -> tuple[int, object]:
    """The devices selected and the corrections and problems planned, in the order a pass makes them."""
    result = steps.plan(body, facts)
    return result.devices, result.plan


class Edits(ServerEdits):
    """Random edits that make or undo the need for corrections, on the servers of three clusters."""

    def __init__(
        self,
        seeder: NetBoxSeeder,
        topology: Topology,
        clusters: list[dict[str, Any]],
        platforms: list[dict[str, Any]],
        rng: random.Random,
    ) -> None:
        super().__init__(seeder, topology, clusters, rng)
        self.platforms = platforms

    def bmc_name(self) -> None:
        self.seeder.update("dcim/interfaces", self.any_server().interface["id"], name=self.rng.choice(BMC_NAMES))

    def no_oob_ip(self) -> None:
        self.seeder.update("dcim/devices", self.any_server().device["id"], oob_ip=None)

    def second_bmc_ip(self) -> None:
        self.seeder.create_one(
            "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface",
            assigned_object_id=self.any_server().interface["id"],
        )  # fmt: skip

    def vmk(self) -> None:
        server = self.any_server()
        name = f"vmk{self.rng.randrange(10**6)}"
        interface = self.seeder.create_one("dcim/interfaces", device=server.device["id"], name=name, type="virtual")
        for _ in range(self.rng.randint(0, 2)):
            self.seeder.create_one(
                "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface",
                assigned_object_id=interface["id"],
            )  # fmt: skip

    def platform(self) -> None:
        platform = self.rng.choice([None, *self.platforms])
        self.seeder.update("dcim/devices", self.any_server().device["id"], platform=platform and platform["id"])

    def new_server(self) -> None:
        self.added += 1
        self.servers += add_servers(
            self.topology, self.rng.choice(self.clusters), [f"{self.topology.prefix}-new{self.added}"],
            interface_name=self.rng.choice(BMC_NAMES), set_oob_ip=self.rng.random() < 0.5,
        )  # fmt: skip

    def cluster(self) -> None:
        cluster = self.clusters[-1]
        self.seeder.update("virtualization/clusters", cluster["id"], description=f"d{self.rng.random()}")

    def all(self) -> list[Callable[[], None]]:
        return [
            self.status, self.move, self.bmc_name, self.no_oob_ip, self.second_bmc_ip, self.vmk, self.platform,
            self.rename, self.new_server, self.delete, self.cluster,
        ]  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_delta_pass_plans_the_corrections_a_full_pass_plans_after_random_changes_and_its_own_writes(
    netbox: NetBoxServer, seeder: NetBoxSeeder, prefix: str, seed: int
) -> None:
    rng = random.Random(seed)
    topology = Topology(seeder, prefix)
    clusters = [topology.cluster("a"), topology.cluster("b"), topology.cluster("other")]
    platforms = [
        seeder.create_one("dcim/platforms", name=f"{prefix}-{name}", slug=f"{prefix}-{name}") for name in ("os", "old")
    ]
    edits = Edits(seeder, topology, clusters, platforms, rng)
    edits.servers = [
        *add_servers(topology, clusters[0], [f"{prefix}-p{i}" for i in range(4)]),
        *add_servers(topology, clusters[0], [f"{prefix}-v{i}" for i in range(3)], interface_name="iDRAC"),
        *add_servers(topology, clusters[1], [f"{prefix}-n{i}" for i in range(3)], set_oob_ip=False),
        *add_servers(topology, clusters[2], [f"{prefix}-o{i}" for i in range(2)], interface_name="iLO"),
    ]
    for _ in range(3):
        edits.vmk()
    settings = Settings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.v2_token))
    netbox_client = NetBox(settings)
    # read, plan and converge talk to NetBox only: the API server is never asked.
    steps = UpdateSteps(netbox_client, Kube(client.ApiClient(), FIELD_MANAGER))
    spec = {
        "clusters": [{"name": clusters[0]["name"]}, {"name": clusters[1]["name"], "statuses": ["active", "staged"]}],
        # A few deletes per pass: some wait for the next, as in a large Update.
        "maxDeletesPerPass": 3,
        **({"platform": platforms[0]["slug"]} if seed != 1 else {}),
    }
    body: Body = {"metadata": {"namespace": KEY[0], "name": KEY[1], "generation": 1}, "spec": spec}
    asked: list[ChangeSet | None] = []
    feed: ChangeFeed[tuple[str, str]] = ChangeFeed(
        netbox_client, INTEREST, settings, lambda key, delay, changes: asked.append(changes), WorkQueue("test", 1),
        controller="test",
    )  # fmt: skip
    last = steps.read(body)
    feed.look()  # where the change log stands
    deltas = converged = 0
    for round_number in range(ROUNDS):
        feed.index.record(KEY, touched(last))
        done = [edit.__name__ for edit in rng.sample(edits.all(), rng.randint(1, 4))]
        for name in done:
            getattr(edits, name)()
        asked.clear()
        feed.look()
        changes = ChangeSet()
        for named in asked:
            assert named is not None
            changes |= named
        patched = steps.patch(body, last, changes)
        full = steps.read(body)
        context = f"seed {seed}, round {round_number}: {done}, {len(changes)} changes"
        if patched is not None:
            deltas += 1
            assert planned(steps, body, patched) == planned(steps, body, full), context
        last = patched if patched is not None else full
        if rng.random() < 0.6:
            # The pass applies what it planned; the change feed will not tell of these writes.
            result = steps.converge(body, steps.plan(body, last))
            converged += bool(result.applied)
    assert deltas >= ROUNDS // 2, "most rounds must be delta passes, or this tests little"
    assert converged >= 2, "the delta passes' own writes must come in between, or this tests little"
