from argora_common.kube import Kind
from argora_common.prune import OwnedObject, decide_prune, default_cap

BMC = Kind("metal.ironcore.dev", "v1alpha1", "BMC", "bmcs", namespaced=False)
SECRET = Kind("metal.ironcore.dev", "v1alpha1", "BMCSecret", "bmcsecrets", namespaced=False)


def pair(name: str, device_id: int) -> list[OwnedObject]:
    return [OwnedObject(BMC, name, device_id), OwnedObject(SECRET, name, device_id)]


def decide(owned: list[OwnedObject], **kwargs: object) -> tuple[list[str], list[str], str]:
    args: dict[str, object] = {
        "desired_names": {"keep"},
        "selected_device_ids": {1},
        "named_device_ids": {1},
        "enabled": True,
        "disabled_reason": "off",
        "cap": None,
        **kwargs,
    }
    decision = decide_prune(owned, **args)  # type: ignore[arg-type]
    return [str(o) for o in decision.delete], [str(o) for o in decision.held_back], decision.reason


def test_default_cap() -> None:
    assert default_cap(0) == 5
    assert default_cap(200) == 20
    assert default_cap(201) == 21


def test_only_devices_that_left_are_pruned_pairs_first() -> None:
    owned = [*pair("keep", 1), *pair("gone", 2), *pair("bad-data", 3)]
    assert decide(owned, selected_device_ids={1, 3}) == (["BMC/gone", "BMCSecret/gone"], [], "")


def test_renamed_device_loses_its_old_objects() -> None:
    owned = [*pair("keep", 1), *pair("old-name", 1)]
    assert decide(owned)[0] == ["BMC/old-name", "BMCSecret/old-name"]


def test_cap_holds_back_the_rest() -> None:
    owned = [*pair("a", 2), *pair("b", 3)]
    assert decide(owned, cap=2) == (
        ["BMC/a", "BMCSecret/a"],
        ["BMC/b", "BMCSecret/b"],
        "at most 2 objects are pruned per pass",
    )


def test_disabled_and_empty_selection_delete_nothing() -> None:
    owned = pair("a", 2)
    assert decide(owned, enabled=False) == ([], ["BMC/a", "BMCSecret/a"], "off")
    assert decide(owned, selected_device_ids=set(), named_device_ids=set()) == (
        [],
        ["BMC/a", "BMCSecret/a"],
        "NetBox selected nothing at all; nothing is pruned",
    )
