"""Who holds a NetBox cluster: the record only argora-metal3 writes, and the allow-list."""

from __future__ import annotations

import json
from typing import Any

import pytest

from metal3_controller.claims import Asker, Claim, Claims, Holder, asker, record, released, settle
from metal3_controller.settings import Metal3Settings

OLD = Holder(namespace="team-a", name="c", uid="u-old")
NEW = Holder(namespace="team-b", name="c", uid="u-new")
THIRD = Holder(namespace="team-c", name="c", uid="u-third")


def asking(holder: Holder, created: str, *, says_imported: bool = False) -> Asker:
    return Asker(holder, created, says_imported)


def test_a_recorded_holder_keeps_its_netbox_cluster_whatever_others_say() -> None:
    """An older Cluster, or one whose (forgeable) sync-status says it imported the NetBox cluster, takes
    nothing from the recorded holder."""
    claim = Claim(holder=NEW)
    askers = [asking(OLD, "2025-01-01T00:00:00Z", says_imported=True), asking(NEW, "2026-01-01T00:00:00Z")]
    assert settle(claim, askers, first_record=False) == claim
    assert settle(claim, askers, first_record=True) == claim


def test_a_holder_gone_or_no_longer_asking_passes_it_to_the_oldest_asker() -> None:
    recreated = Holder(namespace="team-b", name="c", uid="u-recreated")  # same name, another Cluster
    askers = [asking(THIRD, "2026-03-01T00:00:00Z"), asking(recreated, "2026-02-01T00:00:00Z")]
    assert settle(Claim(holder=NEW), askers, first_record=False) == Claim(holder=recreated)
    assert settle(Claim(holder=NEW), [], first_record=False) == Claim()


def test_an_unrecorded_netbox_cluster_goes_to_the_oldest_and_sync_status_is_ignored() -> None:
    askers = [asking(NEW, "2026-01-01T00:00:00Z", says_imported=True), asking(OLD, "2025-01-01T00:00:00Z")]
    assert settle(None, askers, first_record=False) == Claim(holder=OLD)


def test_the_first_record_trusts_one_importer_and_disputes_several() -> None:
    """At the upgrade the Clusters' sync-status is the only evidence: one importer keeps its hosts; two
    (one forged) are trusted by nobody until all but one stop asking."""
    importer = asking(NEW, "2026-01-01T00:00:00Z", says_imported=True)
    assert settle(None, [asking(OLD, "2025-01-01T00:00:00Z"), importer], first_record=True) == Claim(holder=NEW)
    forger = asking(OLD, "2025-01-01T00:00:00Z", says_imported=True)
    disputed = settle(None, [forger, importer], first_record=True)
    assert disputed == Claim(disputed=[OLD, NEW])
    assert settle(disputed, [forger, importer, asking(THIRD, "2024-01-01T00:00:00Z")], first_record=False) == disputed
    assert settle(disputed, [importer, asking(THIRD, "2024-01-01T00:00:00Z")], first_record=False) == Claim(holder=NEW)
    assert settle(disputed, [asking(THIRD, "2024-01-01T00:00:00Z")], first_record=False) == Claim(holder=THIRD)


def test_the_first_record_settles_every_netbox_cluster_at_once() -> None:
    """Written once, the record must already hold every importer: the sync-status evidence is not read
    again."""
    asked = {
        "nb-1": [asking(OLD, "2025-01-01T00:00:00Z")],
        "nb-2": [asking(THIRD, "2024-01-01T00:00:00Z"), asking(NEW, "2026-01-01T00:00:00Z", says_imported=True)],
    }
    first = record(None, "nb-1", OLD, asked)
    assert first == Claims(clusters={"nb-1": Claim(holder=OLD), "nb-2": Claim(holder=NEW)})
    # Later the importer of nb-2 is remembered although the evidence is not read again.
    later = record(first, "nb-2", THIRD, {"nb-2": [asking(THIRD, "2024-01-01T00:00:00Z"), asked["nb-2"][1]]})
    assert later.clusters["nb-2"] == Claim(holder=NEW)


def test_a_cluster_asking_for_another_netbox_cluster_gives_up_the_first() -> None:
    current = Claims(clusters={"nb-1": Claim(holder=OLD), "nb-2": Claim(holder=NEW)})
    moved = record(current, "nb-3", OLD, {"nb-3": [asking(OLD, "2025-01-01T00:00:00Z")]})
    assert moved == Claims(clusters={"nb-2": Claim(holder=NEW), "nb-3": Claim(holder=OLD)})


def test_released_drops_what_a_gone_cluster_held() -> None:
    current = Claims(clusters={"nb-1": Claim(holder=OLD), "nb-2": Claim(holder=NEW)})
    assert released(current, OLD) == Claims(clusters={"nb-2": Claim(holder=NEW)})
    assert released(current, THIRD) is None
    assert released(None, OLD) is None


def test_asker_reads_the_cluster() -> None:
    cluster: dict[str, Any] = {
        "metadata": {
            "namespace": "team-a",
            "name": "c",
            "uid": "u-old",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "annotations": {"argora.cloud.sap/sync-status": json.dumps({"netboxCluster": "nb-1"})},
        }
    }
    assert asker(cluster, "nb-1") == Asker(OLD, "2025-01-01T00:00:00Z", True)
    assert asker(cluster, "nb-2").says_imported is False


@pytest.mark.parametrize(
    ("allowed", "namespace", "netbox_cluster", "may"),
    [
        ({}, "anyone", "anything", True),
        ({"team-a": ["rack-a-*"]}, "team-a", "rack-a-7", True),
        ({"team-a": ["rack-a-*"]}, "team-a", "rack-b-1", False),
        ({"team-a": ["rack-a-*"]}, "team-b", "rack-a-7", False),
        ({"team-a": ["rack-a-*"], "*": ["shared"]}, "team-b", "shared", True),
        ({"team-a": ["Rack-A"]}, "team-a", "rack-a", False),
    ],
)
def test_the_allow_list_names_namespaces_and_netbox_cluster_patterns(
    allowed: dict[str, list[str]], namespace: str, netbox_cluster: str, may: bool
) -> None:
    settings = Metal3Settings(
        netbox_url="http://netbox.example", netbox_token="t" * 40, allowed_netbox_clusters=allowed
    )
    assert settings.may_import(namespace, netbox_cluster) is may
