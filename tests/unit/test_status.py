"""What a pass tells the user: the status of a ClusterImport or Update, its conditions and its Events."""

import logging
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import SecretStr

from argora_common.backoff import Backoff
from argora_common.converge import ConvergeResult
from argora_common.crds import ClusterImportSpec, ClusterImportStatus, Condition, DeviceProblem, UpdateSpec
from argora_common.credentials import BMCCredentials
from argora_common.errors import classify
from argora_common.inventory import Inventory, SelectedDevice
from argora_common.kinds import BMC
from argora_common.kube import Owner
from argora_common.netbox import NetBox, NetBoxUnavailableError, NetBoxWriteForbiddenError
from argora_common.netbox_schema import Cluster, Device, Site
from argora_common.passes import Body, Key, PassRunner
from argora_common.status import Event, convergence_events, failed_status
from ironcore_controller.apply import ApplyResult
from ironcore_controller.desired import Plan, plan
from ironcore_controller.reconcile import CLUSTER_IMPORT, WORDS, Facts, ImportSteps, import_events, import_status
from ironcore_controller.settings import IroncoreSettings
from tests.unit.memory_kube import MemoryKube
from update_controller import apply as update_apply
from update_controller.desired import Action, Correction, DevicePlan
from update_controller.desired import Plan as UpdatePlan
from update_controller.reconcile import update_events, update_status

KEPT = "existing objects are left as they are"
SETTINGS = IroncoreSettings(netbox_url="https://nb.example.com", netbox_token=SecretStr("t"))
OWNER = Owner("metal", "import-a", "argora-ironcore")
CREDS = BMCCredentials(username="root", password=SecretStr("calvin"))
CLUSTER = Cluster.model_validate({"id": 1, "name": "cc-a1", "type": {"id": 1, "slug": "cc-k8s"}})
SITE = Site.model_validate({"id": 5, "slug": "qa-de-1a", "name": "QA 1a"})
EARLIER = datetime(2024, 1, 1, tzinfo=UTC)


def device(device_id: int, oob: str | None = "auto") -> Device:
    return Device.model_validate(
        {
            "id": device_id,
            "name": f"node{device_id}",
            "status": "active",
            "site": {"id": 5, "slug": "qa-de-1a"},
            "device_type": {"id": 3, "slug": "r660", "manufacturer": {"id": 1, "slug": "dell"}},
            "cluster": {"id": 1, "name": "cc-a1"},
            "oob_ip": {"id": 100 + device_id, "address": f"10.0.0.{device_id}/24"} if oob else None,
        }
    )


def facts(*devices: Device, **spec: Any) -> Facts:
    inventory = Inventory(
        clusters_by_selector=[[CLUSTER]], devices=[SelectedDevice(d, 0) for d in devices], sites={5: SITE}
    )
    return Facts(ClusterImportSpec.model_validate({"clusters": [{"name": "cc-a1"}], **spec}), inventory, [CREDS])


def planned(the_facts: Facts) -> Plan:
    return plan(the_facts.inventory, the_facts.credentials, OWNER, SETTINGS)


def body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "argora.cloud.sap/v1alpha1",
        "kind": "ClusterImport",
        "metadata": {"namespace": "metal", "name": "import-a", "generation": 3, "uid": "ci-uid"},
        "spec": {"clusters": [{"name": "cc-a1"}]},
        **({"status": status} if status else {}),
    }


def conditions(status: ClusterImportStatus) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in status.conditions}


def problem(device_name: str, reason: str) -> DeviceProblem:
    return DeviceProblem(device=device_name, device_id=int(device_name.removeprefix("node")), reason=reason)


# ---- ClusterImport -----------------------------------------------------------------------------------------


def test_a_clean_pass_is_ready_with_every_condition_true() -> None:
    the_facts = facts(device(1), device(2))
    result = ApplyResult(created=["node1"], unchanged=1)
    status = import_status(body(), the_facts, planned(the_facts), result)
    assert status.state == "Ready" and status.description is None
    assert status.observed_generation == 3 and status.problems == [] and status.last_sync_time is not None
    assert status.counts.model_dump(by_alias=True, exclude_defaults=True) == {
        "clusters": 1, "devices": 2, "created": 1, "unchanged": 1,
    }  # fmt: skip
    assert conditions(status) == {
        "Ready": ("True", "Synced", "2 devices"),
        "NetBoxReachable": ("True", "Read", ""),
        "DevicesSynced": ("True", "AllSynced", ""),
        "ClustersMatched": ("True", "AllMatched", ""),
        "AccessInSync": ("True", "InSync", ""),
        "PruneComplete": ("True", "Complete", ""),
    }
    assert all(c.observed_generation == 3 for c in status.conditions)


def test_a_pass_with_problems_says_which_conditions_are_not_good_and_why() -> None:
    the_facts = facts(device(1), device(2), device(3, oob=None), device(4), onImmutableChange="Recreate")
    result = ApplyResult(
        updated=["node1"],
        held_back=["BMC/node9", "BMCSecret/node9"],
        held_back_reason="at most 5 objects are pruned per pass",
        drifted=[problem("node2", "AccessDrift")],
        failed=[problem("node4", "NameTaken")],
    )
    status = import_status(body(), the_facts, planned(the_facts), result)
    assert status.state == "Ready"
    counts = status.counts
    assert (counts.devices, counts.updated, counts.prune_held_back, counts.drifted, counts.skipped, counts.failed) == (
        4, 1, 2, 1, 1, 1,
    )  # fmt: skip
    assert conditions(status) == {
        "Ready": ("True", "SyncedWithProblems", "4 devices, 2 with problems"),
        "NetBoxReachable": ("True", "Read", ""),
        "DevicesSynced": ("False", "DevicesWithProblems", "1 skipped, 1 failed: see status.problems"),
        "ClustersMatched": ("True", "AllMatched", ""),
        "AccessInSync": ("False", "AccessChanged", "1 BMCs differ from NetBox (onImmutableChange: Recreate)"),
        "PruneComplete": ("False", "HeldBack", "2 objects kept: at most 5 objects are pruned per pass"),
    }
    assert [(p.device, p.reason) for p in status.problems] == [
        ("node2", "AccessDrift"), ("node3", "NoOOBIP"), ("node4", "NameTaken"),
    ]  # fmt: skip


def test_a_selector_matching_no_cluster_is_a_condition_and_an_event() -> None:
    the_facts = facts(device(1))
    the_facts.inventory.clusters_by_selector.append([])
    the_facts.inventory.selector_errors[1] = "no region 'xx'"
    the_facts.credentials.append(CREDS)
    the_plan = planned(the_facts)
    status = import_status(body(), the_facts, the_plan, ApplyResult(unchanged=1))
    assert conditions(status)["ClustersMatched"] == (
        "False", "NoClusterMatched", "spec.clusters[1] (no region 'xx') matched no NetBox cluster",
    )  # fmt: skip
    assert import_events(the_facts, the_plan, ApplyResult(unchanged=1)) == [
        Event("Warning", "NoClusterMatched", "spec.clusters[1] matched no NetBox cluster: no region 'xx'")
    ]


def test_an_old_access_drift_condition_is_dropped_and_unchanged_conditions_keep_their_time() -> None:
    previous = ClusterImportStatus(
        state="Error",
        description="NetBox was down",
        conditions=[
            Condition(type="AccessDrift", status="True", reason="Drifted", last_transition_time=EARLIER),
            Condition(type="NetBoxReachable", status="True", reason="Read", last_transition_time=EARLIER),
            Condition(type="Ready", status="False", reason="NetBoxUnavailable", last_transition_time=EARLIER),
        ],
    )
    the_facts = facts(device(1))
    status = import_status(
        body(previous.model_dump(by_alias=True, mode="json")), the_facts, planned(the_facts), ApplyResult(unchanged=1)
    )
    times = {c.type: c.last_transition_time for c in status.conditions}
    assert "AccessDrift" not in times
    assert times["NetBoxReachable"] == EARLIER  # still True: same transition
    assert times["Ready"] != EARLIER  # False -> True: a new one
    assert status.state == "Ready" and status.description is None


def test_a_failed_pass_keeps_the_last_status_with_ready_false_and_the_error() -> None:
    the_facts = facts(device(1), device(2))
    good = import_status(body(), the_facts, planned(the_facts), ApplyResult(created=["node1", "node2"]))
    previous = body(good.model_dump(by_alias=True, mode="json"))
    decision = classify(NetBoxUnavailableError("GET /api/dcim/devices/: timed out"), KEPT)
    failed = failed_status(ClusterImportStatus, previous, decision)
    assert failed.state == "Error"
    assert failed.description == f"GET /api/dcim/devices/: timed out; {KEPT}"
    assert conditions(failed)["Ready"] == ("False", "NetBoxUnavailable", failed.description)
    assert conditions(failed)["NetBoxReachable"] == ("False", "NetBoxUnavailable", failed.description)
    assert conditions(failed)["DevicesSynced"] == ("True", "AllSynced", "")
    assert failed.counts == good.counts and failed.last_sync_time == good.last_sync_time


def test_only_a_netbox_read_failure_marks_netbox_unreachable() -> None:
    the_facts = facts(device(1))
    good = body(import_status(body(), the_facts, planned(the_facts), ApplyResult()).model_dump(mode="json"))
    for error in (NetBoxWriteForbiddenError("PATCH: HTTP 403", 403), KeyError("spec")):
        failed = failed_status(ClusterImportStatus, good, classify(error, KEPT))
        assert conditions(failed)["Ready"][0] == "False"
        assert conditions(failed)["NetBoxReachable"] == ("True", "Read", "")


# ---- Events of a convergence -------------------------------------------------------------------------------


def test_convergence_events_come_in_the_order_a_reader_wants() -> None:
    result = ConvergeResult(
        created=["a", "b"],
        updated=["c"],
        adopted=["d"],
        pruned=["BMC/e"],
        held_back=["BMC/f"],
        held_back_reason="pruning is off (spec.prune: false)",
        drifted=[DeviceProblem(device="g", reason="AccessDrift")],
        failed=[DeviceProblem(device="h", reason="NameTaken")],
    )
    skipped = [DeviceProblem(device="i", reason="NoOOBIP"), DeviceProblem(device="j", reason="NoOOBIP")]
    notes = [DeviceProblem(device="k", reason="AmbiguousMAC")]
    assert convergence_events(result, skipped, notes, WORDS) == [
        Event("Normal", "Created", "BMC and BMCSecret for a, b"),
        Event("Normal", "Updated", "BMC/BMCSecret of c"),
        Event("Normal", "Adopted", "took over the original operator's BMC/BMCSecret of d"),
        Event("Normal", "Pruned", "deleted BMC/e"),
        Event("Warning", "PruneHeldBack", "kept BMC/f: pruning is off (spec.prune: false)"),
        Event("Warning", "AccessDrift", "spec.access differs from NetBox for g"),
        Event("Warning", "DevicesSkipped", "3 devices: 1 NameTaken, 2 NoOOBIP"),
        Event("Warning", "DevicesIncomplete", "1 devices: 1 AmbiguousMAC"),
    ]


def test_an_event_names_ten_and_counts_the_rest() -> None:
    names = [f"n{i:02}" for i in range(13)]
    (event,) = convergence_events(ConvergeResult(created=names), [], [], WORDS)
    assert event.message == "BMC and BMCSecret for n00, n01, n02, n03, n04, n05, n06, n07, n08, n09 and 3 more"
    (event,) = convergence_events(ConvergeResult(created=names[:10]), [], [], WORDS)
    assert event.message.endswith("n08, n09")


def test_a_pass_that_changed_nothing_posts_no_event() -> None:
    assert convergence_events(ConvergeResult(unchanged=5), [], [], WORDS) == []


# ---- Update ------------------------------------------------------------------------------------------------

UPDATE_BODY = {"metadata": {"namespace": "metal", "name": "fix-bmcs", "generation": 2}}


def change(action: Action, device_id: int, object_id: int) -> Correction:
    return Correction(action, device_id, f"node{device_id}", object_id, before="b", after="a", interface_id=object_id)


RENAME_1, RENAME_2 = change(Action.RENAME, 1, 11), change(Action.RENAME, 2, 12)
OOB_1 = change(Action.OOB_IP, 1, 1)
VMK_DELETE = change(Action.INTERFACE_DELETED, 2, 13)
UPDATE_PLAN = UpdatePlan(
    devices=[DevicePlan(1, "node1", [RENAME_1, OOB_1]), DevicePlan(2, "node2", [RENAME_2, VMK_DELETE])],
    problems=[problem("node3", "SeveralBMCInterfaces"), problem("node3", "NoSingleIP")],
)


def update_spec(**fields: Any) -> UpdateSpec:
    return UpdateSpec.model_validate({"clusters": [{"name": "cc-a1"}], **fields})


def test_a_dry_run_shows_what_would_change_and_applies_nothing() -> None:
    spec = update_spec(dryRun=True)
    # A dry run's apply step goes through every change without writing.
    result = update_apply.ApplyResult(applied=[RENAME_1, OOB_1, RENAME_2, VMK_DELETE])
    status = update_status(UPDATE_BODY, 3, UPDATE_PLAN, result, spec)
    assert status.planned.model_dump(by_alias=True) == {
        "rename": 2, "oobIP": 1, "platform": 0, "interfaceDeleted": 1, "ipDeleted": 0,
    }  # fmt: skip
    assert status.applied.model_dump(by_alias=True) == {
        "rename": 0, "oobIP": 0, "platform": 0, "interfaceDeleted": 0, "ipDeleted": 0,
    }  # fmt: skip
    assert [(c.device, c.action, c.applied) for c in status.changes] == [
        ("node1", "rename", False), ("node1", "oob_ip", False), ("node2", "rename", False),
        ("node2", "interface_deleted", False),
    ]  # fmt: skip
    assert (status.devices, status.conflicts, status.failed, status.state) == (3, 1, 0, "Ready")
    by_type = {c.type: (c.status, c.reason, c.message) for c in status.conditions}
    assert by_type["Ready"] == ("True", "DryRun", "4 changes planned")
    assert by_type["NoConflicts"] == ("False", "DevicesLeftAsTheyAre", "1 devices with conflicts: see status.problems")
    assert by_type["DeletesComplete"] == ("True", "Complete", "")
    assert update_events(result, spec) == [
        Event("Normal", "DryRun", "would apply: 1 interface_deleted, 1 oob_ip, 2 rename")
    ]


def test_a_real_pass_reports_what_it_applied_and_what_waits() -> None:
    spec = update_spec(maxDeletesPerPass=0)
    result = update_apply.ApplyResult(applied=[RENAME_1, OOB_1, RENAME_2], held_back=[VMK_DELETE])
    status = update_status(UPDATE_BODY, 3, UPDATE_PLAN, result, spec)
    assert status.applied.model_dump(by_alias=True) == {
        "rename": 2, "oobIP": 1, "platform": 0, "interfaceDeleted": 0, "ipDeleted": 0,
    }  # fmt: skip
    assert [(c.device, c.action, c.applied) for c in status.changes] == [
        ("node1", "rename", True), ("node1", "oob_ip", True), ("node2", "rename", True),
    ]  # fmt: skip
    assert status.deletes_held_back == 1 and status.observed_generation == 2
    by_type = {c.type: (c.status, c.reason, c.message) for c in status.conditions}
    assert by_type["Ready"] == ("True", "Applied", "3 changes applied")
    assert by_type["DeletesComplete"] == ("False", "HeldBack", "1 deletions wait: at most 0 per pass")
    assert update_events(result, spec) == [
        Event("Normal", "OOBIPsSet", "1 on node1"),
        Event("Normal", "InterfacesRenamed", "2 on node1, node2"),
        Event("Warning", "DeletesHeldBack", "1 deletions wait for the next pass (maxDeletesPerPass 0)"),
    ]
    assert update_events(update_apply.ApplyResult(), spec) == []


# ---- All of it on a ClusterImport, through the skeleton and the in-memory API server ----------------------


class OfflineImportSteps(ImportSteps):
    """The ironcore steps with NetBox's answer given (or its failure)."""

    def __init__(self, kube: MemoryKube, the_facts: Facts) -> None:
        super().__init__(SETTINGS, cast(NetBox, None), kube)
        self.facts = the_facts
        self.error: Exception | None = None

    def read(self, body: Body) -> Facts:
        if self.error is not None:
            raise self.error
        return self.facts


def test_what_a_user_sees_on_the_cluster_import_across_an_outage() -> None:
    kube = MemoryKube("argora-ironcore")
    kube.add(CLUSTER_IMPORT, body())
    steps = OfflineImportSteps(kube, facts(device(1), device(2)))
    backoff: Backoff[Key] = Backoff(30, 600)
    runner = PassRunner(steps, controller="ironcore", backoff=backoff, resync_seconds=300)
    log = logging.getLogger("tests.status")

    def current() -> dict[str, Any]:
        live = kube.get(CLUSTER_IMPORT, "import-a", "metal")
        assert live is not None
        return live

    assert runner.run(current(), log) is not None
    status = current()["status"]
    assert status["state"] == "Ready" and status["counts"]["created"] == 2
    assert sorted(kube.objects(BMC)) == ["node1", "node2"]
    assert kube.events("metal") == [("Normal", "Created", "BMC and BMCSecret for node1, node2")]

    steps.error = NetBoxUnavailableError("GET /api/dcim/devices/: timed out")
    kube.writes.clear()
    outcome = runner.run(current(), log)
    assert outcome is not None and outcome.delay == 30
    status = current()["status"]
    assert status["state"] == "Error" and status["description"] == f"GET /api/dcim/devices/: timed out; {KEPT}"
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready["Ready"] == ready["NetBoxReachable"] == "False"
    assert status["counts"]["created"] == 2  # the last good pass's counts stay
    assert kube.events("metal")[-1] == ("Warning", "NetBoxUnavailable", status["description"])
    assert {write.resource for write in kube.writes} == {"clusterimports/status", "events"}

    steps.error = None
    runner.run(current(), log)
    status = current()["status"]
    assert status["state"] == "Ready" and "description" not in status
    assert {c["type"]: c["status"] for c in status["conditions"]}["NetBoxReachable"] == "True"
    assert status["counts"]["unchanged"] == 2 and status["counts"]["created"] == 0
