"""argora-ipaddress's annotations on IPAddresses that go while a pass runs: a machine released in the
middle of a pass must not come back as an empty IPAddress (a server-side apply makes what is missing), and
a failed pass reports on those still there, keeping what the last completed pass found about them."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from argora_common.errors import Decision, FailureKind
from argora_common.kinds import ip_address
from argora_common.kube import EVENT
from ipaddress_controller.apply import Applier
from ipaddress_controller.desired import DEVICE_ID_ANNOTATION, SYNC_STATUS_ANNOTATION, AddressPlan, Plan, State
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
