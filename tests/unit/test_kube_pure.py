import re
from datetime import UTC, datetime

from argora_common.crds import Condition
from argora_common.kube import Owner, is_subset
from argora_common.names import assign_names, dns1123_name, label_value, name_label_value
from argora_common.status import set_condition


def test_dns1123_name() -> None:
    assert dns1123_name("Node001") == "node001"
    assert dns1123_name("node_001 rack/4") == "node-001-rack-4"
    assert dns1123_name("--a..b--") == "a.b"
    assert dns1123_name("___") is None
    assert dns1123_name("x" * 300) == "x" * 253


def test_colliding_names_get_no_name() -> None:
    result = assign_names({1: "Node_1", 2: "node-1", 3: "node2", 4: "%%%"})
    assert result.names == {3: "node2"}
    assert result.collisions == {"node-1": [1, 2]}
    assert result.unusable == [4]


def test_label_value() -> None:
    assert label_value("Dell Inc.") == "Dell-Inc"
    assert len(label_value("a" * 100)) == 63


# Kubernetes' own rule for a label value.
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LONG_NAME = "metal-cluster-import-for-the-region-eu-de-1-availability-zone-b-rack-042-and-rack-043-bare-metal-hosts"


def test_an_owner_name_too_long_for_a_label_stands_in_it_shortened_and_for_that_owner_alone() -> None:
    # Names that fit label their objects as before.
    assert Owner("metal", "import-a", "argora-ironcore").labels() == {
        "argora.cloud.sap/owner-namespace": "metal",
        "argora.cloud.sap/owner-name": "import-a",
        "app.kubernetes.io/managed-by": "argora-ironcore",
    }
    assert name_label_value("a" * 63) == "a" * 63
    # A longer one: its start and a hash of it, the same in every process and release (objects keep it).
    value = name_label_value(LONG_NAME)
    assert value == "metal-cluster-import-for-the-region-eu-de-1-av_f1a3222db350bbe8"
    assert len(value) == 63 and LABEL_VALUE.fullmatch(value)
    assert LABEL_VALUE.fullmatch(name_label_value("a" * 45 + ".-" + "b" * 60))  # no '.' or '-' before the '_'
    owner = Owner("metal", LONG_NAME, "argora-ironcore")
    sibling = Owner("metal", LONG_NAME[:-1] + "x", "argora-ironcore")  # the same start
    labelled = {"metadata": {"labels": owner.labels()}}
    assert owner.owns(labelled) and not sibling.owns(labelled)
    assert owner.selector() == (
        f"argora.cloud.sap/owner-namespace=metal,argora.cloud.sap/owner-name={value},"
        "app.kubernetes.io/managed-by=argora-ironcore"
    )


def test_is_subset() -> None:
    live = {"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"ports": [{"p": 1, "q": 2}]}}
    assert is_subset({"metadata": {"labels": {"x": "1"}}}, live)
    assert is_subset({"spec": {"ports": [{"p": 1}]}}, live)
    assert not is_subset({"spec": {"ports": [{"p": 2}]}}, live)
    assert not is_subset({"metadata": {"labels": {"z": "1"}}}, live)
    assert not is_subset({"spec": {"ports": []}}, live)


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    then = datetime(2026, 1, 1, tzinfo=UTC)
    first = [Condition(type="Ready", status="True", reason="Synced", last_transition_time=then)]
    same = set_condition(first, Condition(type="Ready", status="True", reason="Synced", message="again"))
    assert same[0].last_transition_time == then and same[0].message == "again"
    flipped = set_condition(same, Condition(type="Ready", status="False", reason="NetBoxUnavailable"))
    assert flipped[0].last_transition_time is not None and flipped[0].last_transition_time > then
    assert [c.type for c in set_condition(flipped, Condition(type="Other", status="True"))] == ["Ready", "Other"]
