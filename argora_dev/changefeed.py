"""What a controller's change feed asks of one resource's pass after edits of a real NetBox, for the
property tests that hold delta reads to full reads (tests/e2e/test_*delta*.py)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from argora_common.changes import ChangeFeed, ChangeSet, Interest, NetBoxId
from argora_common.netbox import NetBox
from argora_common.settings import Settings
from argora_common.workqueue import WorkQueue
from argora_dev.seed import NetBoxSeeder, Server, Topology

KEY = ("delta", "resource")


class FeedRecorder:
    """A controller's ChangeFeed over NetBox's change log, looked at on demand, recording what it asks."""

    def __init__(self, netbox: NetBox, interest: Interest, settings: Settings) -> None:
        self.asked: list[ChangeSet | None] = []
        self.feed: ChangeFeed[tuple[str, str]] = ChangeFeed(
            netbox, interest, settings, lambda key, delay, changes: self.asked.append(changes),
            WorkQueue("test", 1), controller="test",
        )  # fmt: skip
        self.feed.look()  # where the change log stands

    def changes_after(self, edits: Iterable[Callable[[], object]], refs: Iterable[NetBoxId]) -> ChangeSet | None:
        """What the feed asks for the resource whose last read holds `refs`, once `edits` are done: the
        changes its delta pass re-reads; None when no change concerns it."""
        self.feed.index.record(KEY, refs)
        self.asked.clear()
        for edit in edits:
            edit()
        self.feed.look()
        if not self.asked:
            return None
        changes = ChangeSet()
        for named in self.asked:
            if named is None:
                raise AssertionError("the feed asked for a full read: it knew the change log's state")
            changes |= named
        return changes


class ServerEdits:
    """Random edits of servers the way NetBox users make them, shared by the property tests; each test
    adds the edits its controller cares about."""

    def __init__(self, seeder: NetBoxSeeder, topology: Topology, clusters: list[dict[str, Any]], rng: random.Random):
        self.seeder = seeder
        self.topology = topology
        self.clusters = clusters
        self.rng = rng
        self.servers: list[Server] = []
        self.added = 0

    def any_server(self) -> Server:
        return self.rng.choice(self.servers)

    def status(self) -> None:
        status = self.rng.choice(["active", "offline", "staged"])
        self.seeder.update("dcim/devices", self.any_server().device["id"], status=status)

    def move(self) -> None:
        self.seeder.update("dcim/devices", self.any_server().device["id"], cluster=self.rng.choice(self.clusters)["id"])

    def rename(self) -> None:
        name = f"{self.topology.prefix}-r{self.rng.randrange(10**6)}"
        self.seeder.update("dcim/devices", self.any_server().device["id"], name=name)

    def delete(self) -> None:
        if len(self.servers) > 4:
            server = self.servers.pop(self.rng.randrange(len(self.servers)))
            self.seeder.delete("dcim/devices", [server.device["id"]])
