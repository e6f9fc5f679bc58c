"""Which live objects a controller may take over from the original Argora operator, and BMC access drift."""

from typing import Any

from argora_common.converge import adoptable, taken_by_another
from argora_common.kube import Kind, Owner
from ironcore_controller.apply import access_conflicts

IDENTITY = ("kubernetes.metal.cloud.sap/name", "kubernetes.metal.cloud.sap/cluster")
BMC = Kind("metal.ironcore.dev", "v1alpha1", "BMC", "bmcs", namespaced=False)
OWNER = Owner("argora-system", "big", "argora-ironcore")


def obj(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "node001-big5", "labels": labels}}


DESIRED = obj(
    **{IDENTITY[0]: "node001-big5", IDENTITY[1]: "k8s-eu-de-1a-big"},
    **OWNER.labels(),
)
ORIGINAL = obj(
    **{IDENTITY[0]: "node001-big5", IDENTITY[1]: "k8s-eu-de-1a-big", "kubernetes.metal.cloud.sap/bb": "big5"}
)


def test_the_original_operators_object_for_the_same_device_is_adopted() -> None:
    assert adoptable(ORIGINAL, DESIRED, IDENTITY)
    assert taken_by_another(OWNER, BMC, ORIGINAL, adopt=True) is None


def test_anything_else_stays_name_taken() -> None:
    other_device = obj(**{IDENTITY[0]: "node002-big5", IDENTITY[1]: "k8s-eu-de-1a-big"})
    other_cluster = obj(**{IDENTITY[0]: "node001-big5", IDENTITY[1]: "elsewhere"})
    someone_elses = obj(
        **{IDENTITY[0]: "node001-big5", IDENTITY[1]: "k8s-eu-de-1a-big"}, **{"app.kubernetes.io/managed-by": "helm"}
    )
    another_import = obj(**DESIRED["metadata"]["labels"] | {"argora.cloud.sap/owner-name": "other"})
    unlabelled = obj()
    for live in (other_device, other_cluster, someone_elses, another_import, unlabelled):
        assert not adoptable(live, DESIRED, IDENTITY), live
        assert taken_by_another(OWNER, BMC, live) is not None
    assert not adoptable(None, DESIRED, IDENTITY)


def test_access_conflicts_only_on_fields_the_bmc_has() -> None:
    wanted = {"ip": "10.0.0.97", "macAddress": "02:00:00:00:00:01"}
    assert not access_conflicts(wanted, {"ip": "10.0.0.97"})  # the original wrote no MAC
    assert access_conflicts(wanted, {"ip": "10.0.0.98"})
    assert access_conflicts(wanted, {"ip": "10.0.0.97", "macAddress": "02:00:00:00:00:02"})
    assert not access_conflicts({"ip": "10.0.0.97"}, {"ip": "10.0.0.97", "macAddress": "02:00:00:00:00:02"})
