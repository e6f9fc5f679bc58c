"""argora-ipaddress's writes on IPAddresses that go while a pass runs: a machine released in the middle of a
pass must not come back as an empty IPAddress (a server-side apply makes what is missing), a failed pass
reports on those still there, keeping what the last completed pass found about them, and the original
operator's finalizer comes off only once its release is done."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from argora_common.errors import Decision, FailureKind
from argora_common.kinds import ip_address
from argora_common.kube import EVENT
from argora_common.netbox_schema import IPAddress
from ipaddress_controller.apply import Applier
from ipaddress_controller.desired import (
    DEVICE_ID_ANNOTATION,
    ORIGINAL_FINALIZER,
    SYNC_STATUS_ANNOTATION,
    AddressPlan,
    Handover,
    Plan,
    Release,
    State,
)
from ipaddress_controller.reconcile import WriteBackSteps
from ipaddress_controller.settings import IPAddressSettings
from tests.unit.memory_kube import MemoryKube

IP_ADDRESS = ip_address("v1beta2")
UNAVAILABLE = Decision(FailureKind.NETBOX_UNAVAILABLE, "NetBoxUnavailable", "NetBox did not answer", True)


def stored_addresses(kube: MemoryKube, names: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """IPAddresses in namespace `ns` as a pass read them, each with the annotations of a synced one."""
    annotations = {SYNC_STATUS_ANNOTATION: "state=Synced", DEVICE_ID_ANNOTATION: "7"}
    return {
        ("ns", name): kube.add(
            IP_ADDRESS,
            {
                "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
                "spec": {"address": "10.0.0.5", "prefix": 24},
            },
        )
        for name in names
    }


def events(kube: MemoryKube) -> list[str]:
    return sorted(event["involvedObject"]["name"] for event in kube.objects(EVENT, "ns").values())


def test_an_ipaddress_released_during_the_pass_is_not_made_again_by_its_annotations() -> None:
    kube = MemoryKube("argora-ipaddress")
    live = stored_addresses(kube, ["stays", "released"])
    kube.delete(IP_ADDRESS, "released", "ns")
    plan = Plan(addresses=[AddressPlan(key, "10.0.0.5/24", State.PENDING, "NoBMC", "waits") for key in live])
    applier = Applier(None, kube, IP_ADDRESS, "argora-ipaddress", 1, dry_run=False, max_deletes=0)  # type: ignore[arg-type]
    result = applier.apply(plan, live, {})
    assert set(kube.objects(IP_ADDRESS, "ns")) == {"stays"}
    assert kube.objects(IP_ADDRESS, "ns")["stays"]["metadata"]["annotations"][SYNC_STATUS_ANNOTATION] == (
        "state=Pending, reason=NoBMC, message=waits"
    )
    assert (result.annotated, events(kube)) == (1, ["stays"])


def test_a_failed_pass_reports_on_the_ipaddresses_still_there_and_keeps_what_was_found() -> None:
    kube = MemoryKube("argora-ipaddress")
    settings = IPAddressSettings(netbox_url="http://netbox.example.com", netbox_token=SecretStr("t"))
    steps = WriteBackSteps(settings, None, kube, "v1beta2")  # type: ignore[arg-type]
    steps.last_addresses = stored_addresses(kube, ["stays", "released"])
    kube.delete(IP_ADDRESS, "released", "ns")
    steps.report_failure({}, UNAVAILABLE)
    assert set(kube.objects(IP_ADDRESS, "ns")) == {"stays"}
    annotations = kube.objects(IP_ADDRESS, "ns")["stays"]["metadata"]["annotations"]
    assert annotations == {SYNC_STATUS_ANNOTATION: "state=Error, reason=NetBoxUnavailable", DEVICE_ID_ANNOTATION: "7"}
    assert events(kube) == ["stays"]


def going_address(kube: MemoryKube, name: str) -> dict[str, Any]:
    """An IPAddress being deleted that still carries the original operator's finalizer, after another one."""
    kube.add(
        IP_ADDRESS,
        {
            "metadata": {"name": name, "namespace": "ns", "finalizers": ["other.example.com/keep", ORIGINAL_FINALIZER]},
            "spec": {"address": "10.0.0.5", "prefix": 24},
        },
    )
    kube.delete(IP_ADDRESS, name, "ns")
    return kube.objects(IP_ADDRESS, "ns")[name]


def nothing_to_delete(name: str, note: str) -> Handover:
    return Handover(("ns", name), "10.0.0.5/24", None, 2, note)


def to_delete(name: str) -> Handover:
    address = IPAddress.model_validate({"id": 40, "address": "10.0.0.5/24"})
    return Handover(("ns", name), "10.0.0.5/24", address, 2)


def test_the_original_finalizer_comes_off_once_its_release_is_done_and_others_stay() -> None:
    kube = MemoryKube("argora-ipaddress")
    going = {("ns", "moved"): going_address(kube, "moved")}
    applier = Applier(None, kube, IP_ADDRESS, "argora-ipaddress", 1, dry_run=False, max_deletes=5)  # type: ignore[arg-type]
    result = applier.apply(Plan(handovers=[nothing_to_delete("moved", "it moved")]), {}, going)
    assert result.handed_over == ["ns/moved"]
    assert kube.objects(IP_ADDRESS, "ns")["moved"]["metadata"]["finalizers"] == ["other.example.com/keep"]
    assert kube.events("ns") == [("Normal", "ReleasedWithoutDelete", "NetBox is left as it is: it moved")]


@pytest.mark.parametrize(("dry_run", "max_deletes"), [(True, 5), (False, 0)], ids=["dry run", "over the cap"])
def test_the_original_finalizer_stays_while_its_release_waits(dry_run: bool, max_deletes: int) -> None:
    """A dry run deletes nothing, and beyond the cap nothing more is deleted: the IPAddress keeps waiting
    for its release rather than losing it."""
    kube = MemoryKube("argora-ipaddress")
    going = {("ns", "a"): going_address(kube, "a")}
    applier = Applier(None, kube, IP_ADDRESS, "argora-ipaddress", 1, dry_run=dry_run, max_deletes=max_deletes)  # type: ignore[arg-type]
    result = applier.apply(Plan(handovers=[to_delete("a")]), {}, going)
    assert (result.handed_over, result.held_back if max_deletes == 0 else result.released) == ([], ["10.0.0.5/24"])
    assert ORIGINAL_FINALIZER in kube.objects(IP_ADDRESS, "ns")["a"]["metadata"]["finalizers"]


def test_a_finalizer_that_changed_since_the_read_is_left_for_the_next_pass() -> None:
    kube = MemoryKube("argora-ipaddress")
    going = {("ns", "a"): going_address(kube, "a")}
    kube.stored(IP_ADDRESS, "a", "ns")["metadata"]["finalizers"] = [ORIGINAL_FINALIZER]  # the other one went
    applier = Applier(None, kube, IP_ADDRESS, "argora-ipaddress", 1, dry_run=False, max_deletes=5)  # type: ignore[arg-type]
    result = applier.apply(Plan(handovers=[nothing_to_delete("a", "it moved")]), {}, going)
    assert result.handed_over == []
    assert kube.objects(IP_ADDRESS, "ns")["a"]["metadata"]["finalizers"] == [ORIGINAL_FINALIZER]


def test_a_tripped_release_breaker_deletes_nothing_and_says_what_it_held() -> None:
    kube = MemoryKube("argora-ipaddress")
    gone = IPAddress.model_validate({"id": 41, "address": "10.0.0.6/24"})
    plan = Plan(releases=[Release(gone, 2)], release_hold="the cluster has no IPAddress at all")
    applier = Applier(None, kube, IP_ADDRESS, "argora-ipaddress", 1, dry_run=False, max_deletes=50)  # type: ignore[arg-type]
    result = applier.apply(plan, {}, {})
    assert (result.released, result.held_back) == ([], ["10.0.0.6/24"])
