"""The in-memory API server answers the way the `Kube` helpers expect of a real one."""

import pytest
from kubernetes.client.exceptions import ApiException

from argora_common.kube import EVENT, SECRET, Kind
from argora_common.status import post_event
from tests.unit.memory_kube import MemoryKube, Write, api_error

WIDGET = Kind("example.com", "v1", "Widget", "widgets", namespaced=False)


def test_apply_creates_then_merges_and_reads_back() -> None:
    kube = MemoryKube()
    assert kube.get(WIDGET, "a") is None
    created = kube.apply(WIDGET, {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"size": 1, "tags": ["p"]}})
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    updated = kube.apply(WIDGET, {"metadata": {"name": "a", "labels": {"y": "2"}}, "spec": {"tags": ["q"]}})
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    # What the same field manager no longer applies is gone: see the last test.
    assert updated["metadata"]["labels"] == {"y": "2"}
    assert updated["spec"] == {"tags": ["q"]}
    assert updated["metadata"]["generation"] == 2
    assert kube.get(WIDGET, "a") == updated
    assert kube.writes == [Write("PATCH", "widgets", "a"), Write("PATCH", "widgets", "a")]


def test_status_subresource_takes_only_the_status_and_needs_the_object() -> None:
    kube = MemoryKube()
    with pytest.raises(ApiException) as missing:
        kube.apply(WIDGET, {"metadata": {"name": "a"}, "status": {"ok": True}}, subresource="status")
    assert missing.value.status == 404
    kube.apply(WIDGET, {"metadata": {"name": "a"}, "spec": {"size": 1}, "status": {"ignored": True}})
    kube.apply(WIDGET, {"metadata": {"name": "a"}, "spec": {"size": 2}, "status": {"ok": True}}, subresource="status")
    live = kube.get(WIDGET, "a")
    assert live is not None and live["spec"] == {"size": 1} and live["status"] == {"ok": True}
    assert kube.writes[-1] == Write("PATCH", "widgets/status", "a")


def test_list_by_namespace_and_label_selector() -> None:
    kube = MemoryKube()
    stored = (("a", "s1", {"k": "v", "o": "1"}), ("a", "s2", {"k": "w"}), ("b", "s3", {"k": "v"}))
    for namespace, name, labels in stored:
        kube.add(SECRET, {"metadata": {"name": name, "namespace": namespace, "labels": labels}})
    assert [s["metadata"]["name"] for s in kube.list(SECRET, "a")] == ["s1", "s2"]
    assert [s["metadata"]["name"] for s in kube.list(SECRET, label_selector="k=v")] == ["s1", "s3"]
    assert [s["metadata"]["name"] for s in kube.list(SECRET, "a", label_selector="k=v,o=1")] == ["s1"]
    assert kube.writes == []


def test_events_are_created_with_generated_names() -> None:
    kube = MemoryKube()
    involved = {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "t", "namespace": "n", "uid": "u"}}
    post_event(kube, involved, "Warning", "Oops", "first")
    post_event(kube, involved, "Normal", "Fine", "second")
    assert kube.events("n") == [("Warning", "Oops", "first"), ("Normal", "Fine", "second")]
    names = [write.name for write in kube.writes]
    assert [write.resource for write in kube.writes] == ["events", "events"]
    assert all(name.startswith("t.") for name in names) and len(set(names)) == 2
    assert all(event["involvedObject"]["uid"] == "u" for event in kube.objects(EVENT).values())


def test_delete_is_false_when_gone_and_finalizers_only_mark_it() -> None:
    kube = MemoryKube()
    assert kube.delete(WIDGET, "a") is False
    kube.add(WIDGET, {"metadata": {"name": "a"}})
    kube.add(WIDGET, {"metadata": {"name": "b", "finalizers": ["example.com/hold"]}})
    assert kube.delete(WIDGET, "a") is True and kube.get(WIDGET, "a") is None
    assert kube.delete(WIDGET, "b") is True
    held = kube.get(WIDGET, "b")
    assert held is not None and held["metadata"]["deletionTimestamp"]


def test_an_injected_failure_hits_the_next_matching_request_once() -> None:
    kube = MemoryKube()
    kube.fail_next(api_error(503, "busy"), method="PATCH", resource="widgets")
    assert kube.get(WIDGET, "a") is None  # a GET does not match
    with pytest.raises(ApiException) as failed:
        kube.apply(WIDGET, {"metadata": {"name": "a"}})
    assert failed.value.status == 503
    assert kube.writes == [] and kube.get(WIDGET, "a") is None
    kube.apply(WIDGET, {"metadata": {"name": "a"}})
    assert kube.get(WIDGET, "a") is not None


def test_a_field_the_same_manager_no_longer_applies_is_removed() -> None:
    """Server-side apply: a manager's apply is the whole of its intent; fields of others stay."""
    kube = MemoryKube()
    kube.add(WIDGET, {"metadata": {"name": "a", "labels": {"theirs": "1"}}, "spec": {"owner": "them"}})
    kube.stored(WIDGET, "a")["metadata"]["finalizers"] = ["example.com/hold"]  # another client's edit
    kube.apply(WIDGET, {"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"size": 1, "color": "red"}})
    kube.apply(WIDGET, {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"size": 2}})
    live = kube.get(WIDGET, "a")
    assert live is not None
    assert live["metadata"]["labels"] == {"theirs": "1", "x": "1"}
    assert live["metadata"]["finalizers"] == ["example.com/hold"]
    assert live["spec"] == {"owner": "them", "size": 2}
    kube.apply(
        WIDGET, {"metadata": {"name": "a"}, "status": {"state": "Error", "description": "x"}}, subresource="status"
    )
    kube.apply(WIDGET, {"metadata": {"name": "a"}, "status": {"state": "Ready"}}, subresource="status")
    live = kube.get(WIDGET, "a")
    assert live is not None and live["status"] == {"state": "Ready"}
