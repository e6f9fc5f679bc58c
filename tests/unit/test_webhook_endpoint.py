"""The webhook Service's EndpointSlice: its body, and the active replica keeping it naming itself."""

from __future__ import annotations

import logging

import pytest

from argora_common.webhook_endpoint import ENDPOINT_SLICE, EndpointKeeper, endpoint_slice
from tests.unit.memory_kube import MemoryKube, Write, api_error


def test_the_slice_names_the_pod_alone_under_the_services_label_and_not_kubernetes_controller() -> None:
    assert endpoint_slice("rel-update-webhook", "ops", "10.1.2.3", 8081) == {
        "metadata": {
            "name": "rel-update-webhook",
            "namespace": "ops",
            "labels": {
                "kubernetes.io/service-name": "rel-update-webhook",
                "endpointslice.kubernetes.io/managed-by": "argora.cloud.sap",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}}],
        "ports": [{"name": "webhook", "port": 8081, "protocol": "TCP"}],
    }


def test_the_address_type_follows_the_ips_family_and_the_address_is_written_canonically() -> None:
    slice_ = endpoint_slice("s", "ops", "fd00:0::0:1", 8443)
    assert slice_["addressType"] == "IPv6"
    assert slice_["endpoints"][0]["addresses"] == ["fd00::1"]


@pytest.mark.parametrize("ip", ["", "pod", "10.0.0.300", "10.0.0.1/32"])
def test_what_is_no_ip_address_is_refused(ip: str) -> None:
    with pytest.raises(ValueError):
        endpoint_slice("s", "ops", ip, 8081)


class Replica:
    """A keeper over an in-memory API, and whether the replica is active."""

    def __init__(self, kube: MemoryKube, ip: str) -> None:
        self.is_active = True
        self.keeper = EndpointKeeper(kube, endpoint_slice("hook", "ops", ip, 8081), lambda: self.is_active)


def addresses(kube: MemoryKube) -> list[str]:
    return [a for endpoint in kube.stored(ENDPOINT_SLICE, "hook", "ops")["endpoints"] for a in endpoint["addresses"]]


def test_the_active_replica_writes_the_slice_at_once_then_only_when_it_differs() -> None:
    kube = MemoryKube("argora-update")
    replica = Replica(kube, "10.0.0.1")
    replica.keeper.upkeep()
    assert addresses(kube) == ["10.0.0.1"]
    assert kube.writes == [Write("PATCH", "endpointslices", "hook")]
    # Looked at again when due: as it should be, nothing is written.
    replica.keeper.became(True)
    replica.keeper.upkeep()
    assert len(kube.writes) == 1
    # Someone changed it: put back at the next look.
    kube.stored(ENDPOINT_SLICE, "hook", "ops")["endpoints"] = [{"addresses": ["10.9.9.9"]}]
    replica.keeper.became(True)
    replica.keeper.upkeep()
    assert addresses(kube) == ["10.0.0.1"]


def test_a_standby_writes_nothing_and_a_replica_taking_over_writes_itself_in_at_once() -> None:
    kube = MemoryKube("argora-update")
    first, second = Replica(kube, "10.0.0.1"), Replica(kube, "10.0.0.2")
    second.is_active = False
    first.keeper.upkeep()
    second.keeper.upkeep()
    assert addresses(kube) == ["10.0.0.1"]
    # The first leaves; the peering tells the second, whose next upkeep (not the next period) writes.
    first.is_active, second.is_active = False, True
    second.keeper.became(True)
    second.keeper.upkeep()
    assert addresses(kube) == ["10.0.0.2"]
    first.keeper.became(True)  # an observer's call never overrides active(): a standby writes nothing
    first.keeper.upkeep()
    assert addresses(kube) == ["10.0.0.2"]


def test_a_failed_write_is_said_once_and_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    kube = MemoryKube("argora-update")
    replica = Replica(kube, "10.0.0.1")
    for _ in range(2):
        kube.fail_next(api_error(403, "endpointslices is forbidden"), method="PATCH", resource="endpointslices")
    with caplog.at_level(logging.INFO, logger="argora.webhook"):
        replica.keeper.upkeep()  # never raises: it runs in the webhook server's loop
        replica.keeper.became(True)
        replica.keeper.upkeep()
        replica.keeper.became(True)
        replica.keeper.upkeep()
    assert addresses(kube) == ["10.0.0.1"]
    messages = [record.getMessage() for record in caplog.records]
    assert [m.startswith("could not point Service ops/hook") for m in messages] == [True, False], messages
    assert "HTTP 403" in messages[0]
    assert messages[1] == "Service ops/hook points at this replica (10.0.0.1:8081)"
