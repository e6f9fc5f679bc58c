"""Converging Kubernetes to a plan, against the in-memory API server: what ends up stored, what is reported."""

import base64
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from argora_common.crds import ClusterImportSpec
from argora_common.credentials import BMCCredentials
from argora_common.inventory import BootInterfaces, Inventory, SelectedDevice
from argora_common.kinds import BMC, BMC_SECRET
from argora_common.kube import SECRET, Owner
from argora_common.netbox_schema import Cluster, Device, Site
from ironcore_controller import desired as ironcore
from ironcore_controller.apply import ApplyResult, Converger
from ironcore_controller.settings import IroncoreSettings
from metal3_controller import desired as metal3
from metal3_controller.apply import Converger as HostConverger
from metal3_controller.apply import PrunePolicy
from metal3_controller.desired import BARE_METAL_HOST
from metal3_controller.settings import Metal3Settings
from tests.unit.memory_kube import MemoryKube, Write, api_error

PREFIX = "kubernetes.metal.cloud.sap"
OWNER = Owner("metal", "import-a", "argora-ironcore")
OTHER_OWNER = Owner("metal", "import-b", "argora-ironcore")
CREDS = BMCCredentials(username="root", password=SecretStr("calvin"))
SETTINGS = IroncoreSettings(netbox_url="https://nb.example.com", netbox_token=SecretStr("t"))
CLUSTER = Cluster.model_validate({"id": 1, "name": "cc-a1", "type": {"id": 1, "slug": "cc-k8s"}})
SITE = Site.model_validate({"id": 5, "slug": "qa-de-1a", "name": "QA 1a", "region": {"id": 2, "slug": "qa-de-1"}})


def device(device_id: int, oob: str | None = None) -> Device:
    oob = oob or f"10.0.0.{device_id}/24"
    return Device.model_validate(
        {
            "id": device_id,
            "name": f"node{device_id}-bb1",
            "status": "active",
            "site": {"id": 5, "slug": "qa-de-1a"},
            "role": {"id": 1, "slug": "server"},
            "device_type": {"id": 3, "slug": "r660", "manufacturer": {"id": 1, "slug": "dell"}},
            "cluster": {"id": 1, "name": "cc-a1"},
            "oob_ip": {"id": 100 + device_id, "address": oob},
        }
    )


def inventory(*devices: Device) -> Inventory:
    return Inventory(clusters_by_selector=[[CLUSTER]], devices=[SelectedDevice(d, 0) for d in devices], sites={5: SITE})


def spec(**fields: Any) -> ClusterImportSpec:
    return ClusterImportSpec.model_validate({"clusters": [{"name": "cc-a1"}], **fields})


def converge(
    kube: MemoryKube, *devices: Device, creds: BMCCredentials = CREDS, owner: Owner = OWNER, **spec_fields: Any
) -> ApplyResult:
    """One pass of `owner` over the given NetBox devices."""
    the_plan = ironcore.plan(inventory(*devices), [creds], owner, SETTINGS)
    return Converger(kube, owner, spec(**spec_fields), PREFIX).converge(the_plan)


def names(kube: MemoryKube) -> dict[str, list[str]]:
    return {kind.kind: sorted(kube.objects(kind)) for kind in (BMC, BMC_SECRET)}


def access(kube: MemoryKube, name: str) -> dict[str, Any]:
    live = kube.get(BMC, name)
    assert live is not None
    return dict(live["spec"]["access"])


def test_a_first_pass_creates_a_bmc_and_its_secret_per_device() -> None:
    kube = MemoryKube()
    result = converge(kube, device(1), device(2))
    assert result.created == ["node1-bb1", "node2-bb1"]
    assert (result.updated, result.adopted, result.unchanged, result.failed) == ([], [], 0, [])
    assert names(kube) == {"BMC": ["node1-bb1", "node2-bb1"], "BMCSecret": ["node1-bb1", "node2-bb1"]}
    bmc = kube.get(BMC, "node1-bb1")
    assert bmc is not None
    assert bmc["spec"]["access"] == {"ip": "10.0.0.1"}
    assert bmc["spec"]["bmcSecretRef"] == {"name": "node1-bb1"}
    assert OWNER.owns(bmc) and bmc["metadata"]["labels"][f"{PREFIX}/device-id"] == "1"
    secret = kube.get(BMC_SECRET, "node1-bb1")
    assert secret is not None and base64.b64decode(secret["data"]["password"]) == b"calvin"
    assert sorted(w.resource for w in kube.writes) == ["bmcs", "bmcs", "bmcsecrets", "bmcsecrets"]


def test_a_second_identical_pass_writes_nothing() -> None:
    kube = MemoryKube()
    converge(kube, device(1), device(2))
    kube.writes.clear()
    result = converge(kube, device(1), device(2))
    assert result.unchanged == 2
    assert (result.created, result.updated, result.pruned, result.drifted) == ([], [], [], [])
    assert kube.writes == []


def test_changed_credentials_update_the_secrets_only() -> None:
    kube = MemoryKube()
    converge(kube, device(1))
    kube.writes.clear()
    result = converge(kube, device(1), creds=BMCCredentials(username="root", password=SecretStr("new")))
    assert result.updated == ["node1-bb1"] and result.unchanged == 0
    assert kube.writes == [Write("PATCH", "bmcsecrets", "node1-bb1")]
    secret = kube.get(BMC_SECRET, "node1-bb1")
    assert secret is not None and base64.b64decode(secret["data"]["password"]) == b"new"


def test_devices_leaving_the_selection_are_pruned_up_to_the_cap_and_the_rest_later() -> None:
    kube = MemoryKube()
    converge(kube, *(device(i) for i in range(1, 5)))
    kube.writes.clear()
    result = converge(kube, device(1), max_prune_per_pass=4)
    assert result.pruned == ["BMC/node2-bb1", "BMCSecret/node2-bb1", "BMC/node3-bb1", "BMCSecret/node3-bb1"]
    assert result.held_back == ["BMC/node4-bb1", "BMCSecret/node4-bb1"]
    assert result.held_back_reason == "at most 4 objects are pruned per pass"
    assert names(kube) == {"BMC": ["node1-bb1", "node4-bb1"], "BMCSecret": ["node1-bb1", "node4-bb1"]}
    assert all(write.method == "DELETE" for write in kube.writes) and len(kube.writes) == 4
    result = converge(kube, device(1), max_prune_per_pass=4)
    assert result.pruned == ["BMC/node4-bb1", "BMCSecret/node4-bb1"] and result.held_back == []
    assert names(kube) == {"BMC": ["node1-bb1"], "BMCSecret": ["node1-bb1"]}


def test_the_default_cap_is_five_objects_for_a_small_import() -> None:
    kube = MemoryKube()
    converge(kube, *(device(i) for i in range(1, 5)))
    result = converge(kube, device(1))
    # Five objects by default, counted in whole pairs: the three pairs go at once.
    assert len(result.pruned) == 6 and result.held_back == []


def test_a_cap_someone_set_is_never_exceeded_and_never_splits_a_pair() -> None:
    kube = MemoryKube()
    converge(kube, *(device(i) for i in range(1, 5)))
    result = converge(kube, device(1), max_prune_per_pass=3)
    assert result.pruned == ["BMC/node2-bb1", "BMCSecret/node2-bb1"]
    assert len(result.held_back) == 4


def test_nothing_is_pruned_with_pruning_off_or_when_netbox_selected_no_device() -> None:
    kube = MemoryKube()
    converge(kube, device(1), device(2))
    kube.writes.clear()
    off = converge(kube, device(1), prune=False)
    assert off.pruned == [] and off.held_back == ["BMC/node2-bb1", "BMCSecret/node2-bb1"]
    assert off.held_back_reason == "pruning is off (spec.prune: false)"
    empty = converge(kube)
    assert empty.pruned == [] and len(empty.held_back) == 4
    assert empty.held_back_reason == "NetBox selected nothing at all; nothing is pruned"
    assert kube.writes == []
    assert names(kube) == {"BMC": ["node1-bb1", "node2-bb1"], "BMCSecret": ["node1-bb1", "node2-bb1"]}


def test_objects_of_a_selected_device_with_bad_data_are_kept() -> None:
    kube = MemoryKube()
    converge(kube, device(1), device(2))
    v6 = device(2, oob="2001:db8::2/64")  # still selected, but skipped this pass
    result = converge(kube, device(1), v6, max_prune_per_pass=10)
    assert result.pruned == [] and result.held_back == []
    assert names(kube)["BMC"] == ["node1-bb1", "node2-bb1"]


def test_access_drift_is_reported_and_the_live_access_kept() -> None:
    kube = MemoryKube()
    converge(kube, device(1))
    uid = kube.objects(BMC)["node1-bb1"]["metadata"]["uid"]
    kube.writes.clear()
    result = converge(kube, device(1, oob="10.0.9.1/24"))
    assert [(p.device, p.reason) for p in result.drifted] == [("node1-bb1", "AccessDrift")]
    assert "NetBox has access {'ip': '10.0.9.1'}, the BMC has {'ip': '10.0.0.1'}" in result.drifted[0].message
    assert access(kube, "node1-bb1") == {"ip": "10.0.0.1"}
    assert kube.objects(BMC)["node1-bb1"]["metadata"]["uid"] == uid
    assert not any(write.method == "DELETE" for write in kube.writes)


def test_access_drift_with_recreate_replaces_the_bmc() -> None:
    kube = MemoryKube()
    converge(kube, device(1))
    uid = kube.objects(BMC)["node1-bb1"]["metadata"]["uid"]
    result = converge(kube, device(1, oob="10.0.9.1/24"), onImmutableChange="Recreate")
    assert result.drifted == [] and result.created == ["node1-bb1"]
    assert access(kube, "node1-bb1") == {"ip": "10.0.9.1"}
    assert kube.objects(BMC)["node1-bb1"]["metadata"]["uid"] != uid


def test_recreate_waits_while_the_old_bmc_is_still_going_away() -> None:
    kube = MemoryKube()
    converge(kube, device(1))
    # metal-operator's finalizer keeps a deleted BMC around for a while.
    kube.stored(BMC, "node1-bb1")["metadata"]["finalizers"] = ["metal.ironcore.dev/bmc"]
    result = converge(kube, device(1, oob="10.0.9.1/24"), onImmutableChange="Recreate")
    assert [p.reason for p in result.drifted] == ["AccessDrift"]
    assert "waiting for the old BMC to go away" in result.drifted[0].message
    live = kube.get(BMC, "node1-bb1")
    assert live is not None and live["metadata"]["deletionTimestamp"]
    assert access(kube, "node1-bb1") == {"ip": "10.0.0.1"}


def test_a_bmc_without_the_mac_netbox_now_knows_is_no_drift() -> None:
    """The original operator registered BMCs without a MAC, and spec.access cannot be completed."""
    kube = MemoryKube()
    converge(kube, device(1))
    with_mac = ironcore.plan(inventory(device(1)), [CREDS], OWNER, SETTINGS)
    with_mac.devices[0].bmc["spec"]["access"]["macAddress"] = "aa:bb:cc:00:00:01"
    result = Converger(kube, OWNER, spec(), PREFIX).converge(with_mac)
    assert result.drifted == [] and result.unchanged == 1
    assert access(kube, "node1-bb1") == {"ip": "10.0.0.1"}


def test_an_object_of_another_cluster_import_is_name_taken_and_left_alone() -> None:
    kube = MemoryKube()
    converge(kube, device(1), owner=OTHER_OWNER)
    before = kube.objects(BMC)["node1-bb1"]
    kube.writes.clear()
    result = converge(kube, device(1), device(2))
    assert [(p.device, p.reason) for p in result.failed] == [("node1-bb1", "NameTaken")]
    assert result.failed[0].message == "BMC node1-bb1 exists and is not managed by argora-ironcore for import-a"
    assert result.created == ["node2-bb1"]
    assert kube.objects(BMC)["node1-bb1"] == before
    assert {write.name for write in kube.writes} == {"node2-bb1"}


def test_the_original_operators_objects_are_adopted_in_place() -> None:
    kube = MemoryKube()
    original_labels = {f"{PREFIX}/name": "node1-bb1", f"{PREFIX}/cluster": "cc-a1", "team": "metal"}
    bmc = kube.add(
        BMC,
        {
            "metadata": {"name": "node1-bb1", "labels": original_labels},
            "spec": {"access": {"ip": "10.0.0.1"}, "bmcSecretRef": {"name": "node1-bb1"}},
        },
    )
    secret = kube.add(BMC_SECRET, {"metadata": {"name": "node1-bb1", "labels": original_labels}, "data": {}})
    result = converge(kube, device(1))
    assert result.adopted == ["node1-bb1"]
    assert (result.created, result.updated, result.unchanged, result.failed) == ([], [], 0, [])
    for kind, original in ((BMC, bmc), (BMC_SECRET, secret)):
        live = kube.get(kind, "node1-bb1")
        assert live is not None and live["metadata"]["uid"] == original["metadata"]["uid"]
        assert OWNER.owns(live) and live["metadata"]["labels"]["team"] == "metal"
    assert not any(write.method in {"POST", "DELETE"} for write in kube.writes)
    again = converge(kube, device(1))
    assert again.adopted == [] and again.unchanged == 1


def test_an_unowned_object_of_another_device_is_not_adopted() -> None:
    kube = MemoryKube()
    identity = {f"{PREFIX}/name": "other-device", f"{PREFIX}/cluster": "cc-a1"}
    kube.add(BMC, {"metadata": {"name": "node1-bb1", "labels": identity}})
    result = converge(kube, device(1))
    assert [p.reason for p in result.failed] == ["NameTaken"] and result.adopted == []
    assert kube.writes == []


def test_a_device_the_api_server_refuses_is_reported_and_the_others_go_on() -> None:
    kube = MemoryKube()
    kube.fail_next(api_error(422, 'BMC.metal.ironcore.dev "node1-bb1" is invalid'), resource="bmcs", name="node1-bb1")
    result = converge(kube, device(1), device(2))
    assert [(p.device, p.reason) for p in result.failed] == [("node1-bb1", "Rejected")]
    assert "HTTP 422" in result.failed[0].message and "is invalid" in result.failed[0].message
    assert result.created == ["node2-bb1"]
    assert names(kube)["BMC"] == ["node2-bb1"]


def test_an_unavailable_api_server_stops_the_pass() -> None:
    kube = MemoryKube()
    kube.fail_next(api_error(503, "unavailable"), method="PATCH", resource="bmcsecrets")
    with pytest.raises(ApiException) as stopped:
        converge(kube, device(1), device(2))
    assert stopped.value.status == 503
    assert kube.writes == []


# ---- metal3: BareMetalHosts and their Secrets in the Cluster's namespace ---------------------------------

METAL3_SETTINGS = Metal3Settings(netbox_url="https://nb.example.com", netbox_token=SecretStr("t"))
CAPI_CLUSTER = {"metadata": {"name": "capi", "namespace": "metal"}}
HOST_OWNER = Owner("metal", "capi", "argora-metal3")


def test_metal3_adopts_the_original_host_and_its_unlabelled_secret_and_leaves_another_owners_host() -> None:
    kube = MemoryKube()
    identity = {f"{PREFIX}/name": "node1-bb1", f"{PREFIX}/cluster": "cc-a1"}
    address = METAL3_SETTINGS.bmc_address("dell", "10.0.0.1")
    host = kube.add(
        BARE_METAL_HOST,
        {
            "metadata": {"name": "node1-bb1", "namespace": "metal", "labels": identity},
            "spec": {"online": True, "bmc": {"address": address, "credentialsName": "bmc-secret-node1-bb1"}},
        },
    )
    secret = kube.add(SECRET, {"metadata": {"name": "bmc-secret-node1-bb1", "namespace": "metal"}, "data": {}})
    other = Owner("metal", "another-cluster", "argora-metal3")
    taken = kube.add(
        BARE_METAL_HOST,
        {"metadata": {"name": "node2-bb1", "namespace": "metal", "labels": {**identity, **other.labels()}}},
    )
    the_plan = metal3.plan(CAPI_CLUSTER, inventory(device(1), device(2)), BootInterfaces(), CREDS, METAL3_SETTINGS)
    result = HostConverger(kube, HOST_OWNER, PREFIX).converge(the_plan, PrunePolicy(enabled=False, cap=None))

    assert result.adopted == ["node1-bb1"] and result.created == []
    assert [(p.device, p.reason) for p in result.failed] == [("node2-bb1", "NameTaken")]
    assert not any(write.method == "POST" for write in kube.writes)
    live_host = kube.get(BARE_METAL_HOST, "node1-bb1", "metal")
    live_secret = kube.get(SECRET, "bmc-secret-node1-bb1", "metal")
    assert live_host is not None and live_secret is not None
    assert live_host["metadata"]["uid"] == host["metadata"]["uid"] and HOST_OWNER.owns(live_host)
    assert live_secret["metadata"]["uid"] == secret["metadata"]["uid"] and HOST_OWNER.owns(live_secret)
    assert base64.b64decode(live_secret["data"]["password"]) == b"calvin"
    assert kube.get(BARE_METAL_HOST, "node2-bb1", "metal") == taken
    assert kube.get(SECRET, "bmc-secret-node2-bb1", "metal") is None
