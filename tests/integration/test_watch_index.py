"""The watch index against the real kube-apiserver: it knows our objects without a list per pass, learns
of everybody's edits and deletes, of our own writes at once, and is not trusted while its watch is down."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from argora_common.kinds import BMC_SECRET
from argora_common.kube import MANAGED_BY_LABEL, Kube
from argora_common.watch import Indexes, WatchIndex
from argora_dev.kubeobjects import wait_for

pytestmark = pytest.mark.integration

MANAGER = "argora-watchtest"


def secret(name: str, manager: str | None = MANAGER, password: str = "c2VjcmV0") -> dict[str, Any]:
    labels = {MANAGED_BY_LABEL: manager} if manager else {}
    return {"metadata": {"name": name, "labels": labels}, "data": {"username": "YWRtaW4=", "password": password}}


@pytest.fixture
def ours_kube(api_client: client.ApiClient) -> Kube:
    return Kube(api_client, MANAGER, writes_in_flight=4)


@pytest.fixture
def index(ours_kube: Kube) -> Iterator[Indexes]:
    indexes = Indexes(ours_kube, BMC_SECRET, MANAGER)
    indexes.start()
    wait_for(lambda: indexes.trusted or None, 10, "index listed")
    yield indexes
    indexes.stop()
    ours_kube.indexes.clear()


def ours(indexes: Indexes, wanted: set[str]) -> dict[str, dict[str, Any]]:
    return {name: obj for name, obj in indexes.current(wanted).items() if name in wanted}


def test_the_index_follows_other_clients_and_our_own_writes(ours_kube: Kube, index: Indexes, prefix: str) -> None:
    other = Kube(ours_kube.api, "someone-else")
    names = {f"{prefix}-a", f"{prefix}-b"}
    for name in sorted(names):
        ours_kube.apply(BMC_SECRET, secret(name))
    # Our writes are in the index from their answers, before any watch event could be.
    assert set(ours(index, names)) == names

    other.apply(BMC_SECRET, secret(f"{prefix}-a", MANAGER, "cGFzcw=="))
    wait_for(lambda: ours(index, names)[f"{prefix}-a"]["data"]["password"] == "cGFzcw==" or None, 10, "edit seen")
    other.delete(BMC_SECRET, f"{prefix}-b")
    wait_for(lambda: f"{prefix}-b" not in ours(index, names) or None, 10, "delete seen")
    ours_kube.delete(BMC_SECRET, f"{prefix}-a")
    assert ours(index, names) == {}


def test_others_objects_come_from_a_list_only_when_a_wanted_name_is_not_ours(
    ours_kube: Kube, index: Indexes, prefix: str
) -> None:
    other = Kube(ours_kube.api, "someone-else")
    other.apply(BMC_SECRET, secret(f"{prefix}-theirs", manager=None))
    ours_kube.apply(BMC_SECRET, secret(f"{prefix}-mine"))
    assert f"{prefix}-theirs" not in index.current({f"{prefix}-mine"})
    seen = index.current({f"{prefix}-mine", f"{prefix}-theirs"})
    assert f"{prefix}-theirs" in seen
    assert "managedFields" not in seen[f"{prefix}-mine"]["metadata"]


def test_an_index_is_trusted_only_once_listed_and_while_watching(ours_kube: Kube, prefix: str) -> None:
    ours_kube.apply(BMC_SECRET, secret(f"{prefix}-listed"))
    index = WatchIndex(ours_kube, BMC_SECRET, MANAGER)
    assert index.objects() is None
    index.start()
    try:
        listed = wait_for(index.objects, 10, "index listed")
        assert f"{prefix}-listed" in listed
    finally:
        index.stop()
    # Stopped, it no longer hears of changes: a pass would list.
    assert index.objects() is None
