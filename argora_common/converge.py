"""Pieces every controller's plan and apply steps share: device names, problems, counted writes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from argora_common.apiserver import api_message, is_transient
from argora_common.crds import DeviceProblem
from argora_common.kube import (
    MANAGED_BY_LABEL,
    OWNER_NAME_LABEL,
    OWNER_NAMESPACE_LABEL,
    Kind,
    Kube,
    Owner,
    WriteOutcome,
)
from argora_common.metrics import OBJECTS_WRITTEN
from argora_common.names import assign_names
from argora_common.netbox_schema import Device
from argora_common.parallel import in_parallel
from argora_common.prune import OwnedObject, PruneDecision, decide_prune


@dataclass
class ConvergeResult:
    """What one pass did to the objects of one owner; names are object (or device) names."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    # Made by the original Argora operator and taken over by this pass.
    adopted: list[str] = field(default_factory=list)
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)
    held_back_reason: str = ""
    drifted: list[DeviceProblem] = field(default_factory=list)
    failed: list[DeviceProblem] = field(default_factory=list)

    def fail(self, device: str, device_id: int, reason: str, message: str) -> None:
        self.failed.append(DeviceProblem(device=device, device_id=device_id, reason=reason, message=message))

    @contextmanager
    def refusal_reported(self, device: str, device_id: int, name: str) -> Iterator[None]:
        """The API server refusing one device's object is that device's problem and the others go on;
        a transient error stops the pass (the skeleton retries it)."""
        try:
            yield
        except ApiException as error:
            if is_transient(error):
                raise
            self.fail(
                device,
                device_id,
                "Rejected",
                f"the API server refused {name}: HTTP {error.status} {api_message(error)}",
            )

    def count(self, name: str, outcomes: Iterable[WriteOutcome], *, adopted: bool = False) -> None:
        """Counts a device once, by the outcomes of writing its objects."""
        outcome = _device_outcome(outcomes)
        if adopted:
            self.adopted.append(name)
        elif outcome is WriteOutcome.UNCHANGED:
            self.unchanged += 1
        else:
            (self.created if outcome is WriteOutcome.CREATED else self.updated).append(name)


class Problems:
    """Why devices were skipped or failed, named as NetBox names them."""

    def __init__(self, devices: Iterable[Device]) -> None:
        self.names = {device.id: device.name or f"#{device.id}" for device in devices}
        self.items: list[DeviceProblem] = []

    def add(self, device_id: int, reason: str, message: str) -> None:
        self.items.append(
            DeviceProblem(
                device=self.names.get(device_id, f"#{device_id}"), device_id=device_id, reason=reason, message=message
            )
        )


def name_devices(devices: Iterable[Device], problems: Problems, max_length: int = 253) -> dict[int, str]:
    """Kubernetes names by device id; devices whose names collide or are unusable get none and a problem."""
    names = assign_names({device.id: device.name or "" for device in devices}, max_length)
    for name, device_ids in names.collisions.items():
        for device_id in device_ids:
            others = sorted(other for other in device_ids if other != device_id)
            problems.add(device_id, "NameCollision", f"name {name!r} would also be the name of device(s) {others}")
    for device_id in names.unusable:
        problems.add(device_id, "UnusableName", "no DNS-1123 name can be made of it")
    return names.names


OWNERSHIP_LABELS = (MANAGED_BY_LABEL, OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL)


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def unowned(live: Mapping[str, Any] | None) -> bool:
    """No owner, Argora's or anybody else's, is recorded on the object."""
    return live is not None and not any(key in _labels(live) for key in OWNERSHIP_LABELS)


def adoptable(live: Mapping[str, Any] | None, desired: Mapping[str, Any], identity_labels: Sequence[str]) -> bool:
    """Written by the original Argora operator for the same NetBox device: no owner recorded, and the
    identity labels it wrote (device name, NetBox cluster) have the values we would write."""
    wanted = _labels(desired)
    return unowned(live) and all(key in wanted and _labels(live).get(key) == wanted[key] for key in identity_labels)


def taken_by_another(owner: Owner, kind: Kind, live: Mapping[str, Any] | None, *, adopt: bool = False) -> str | None:
    """Why an object of that name is not ours to write, or None when it is, may be adopted, or does not exist."""
    if live is None or owner.owns(live) or adopt:
        return None
    return f"{kind.kind} {live['metadata']['name']} exists and is not managed by {owner.manager} for {owner.name}"


@dataclass
class DesiredObjects:
    """What one NetBox device should become: the name of its objects and its credentials Secret; each
    controller adds the object it registers the machine with."""

    device_id: int
    device_name: str
    name: str
    secret: dict[str, Any]


@dataclass(frozen=True)
class LastPlan:
    """A completed pass's devices as planned, by id, and those the next pass must look at again whatever
    their plan says (their write failed, or their live object drifted)."""

    devices: Mapping[int, DesiredObjects]
    again: frozenset[int]

    @classmethod
    def of(cls, devices: Sequence[DesiredObjects], result: ConvergeResult) -> LastPlan:
        problems = (*result.failed, *result.drifted)
        return cls({d.device_id: d for d in devices}, frozenset(p.device_id for p in problems if p.device_id))

    def scope(self, devices: Sequence[DesiredObjects]) -> set[int]:
        """The devices a pass on a delta read converges: those planned otherwise than last time (new,
        changed or gone) and those to look at again; every other device's objects are as last planned."""
        now = {desired.device_id: desired for desired in devices}
        changed = {device_id for device_id, desired in now.items() if self.devices.get(device_id) != desired}
        return changed | (set(self.devices) - set(now)) | set(self.again)


class LastPlans[K: Hashable]:
    """Per resource, its last completed pass's plan: a pass on a delta read converges only what the plan
    changed (`LastPlan.scope`). A failed pass may have written part of its plan, so its resource's entry
    goes (`forget`) and the next pass converges everything."""

    def __init__(self) -> None:
        self._plans: dict[K, LastPlan] = {}
        self._lock = threading.Lock()

    def scope(self, key: K, devices: Sequence[DesiredObjects], *, delta: bool) -> set[int] | None:
        """The devices to converge; None: every device (not a delta read, or nothing to compare with)."""
        with self._lock:
            last = self._plans.pop(key, None)
        return last.scope(devices) if delta and last is not None else None

    def record(self, key: K, devices: Sequence[DesiredObjects], result: ConvergeResult) -> None:
        with self._lock:
            self._plans[key] = LastPlan.of(devices, result)

    def forget(self, key: K) -> None:
        with self._lock:
            self._plans.pop(key, None)


class DeviceConverger[Result: ConvergeResult]:
    """What converging the objects of many devices shares: the writes counted, the devices side by side,
    and the labels by which the original operator's objects name their NetBox device (adoption)."""

    def __init__(self, kube: Kube, owner: Owner, label_prefix: str, result: Result) -> None:
        self.kube = kube
        self.owner = owner
        self.device_id_label = f"{label_prefix}/device-id"
        self.identity_labels = (f"{label_prefix}/name", f"{label_prefix}/cluster")
        self.result = result

    def each_device[Desired: DesiredObjects](
        self, devices: Sequence[Desired], converge: Callable[[Desired], None]
    ) -> None:
        """`converge` for each device, up to the writes in flight at once; the API server refusing one
        device's object is that device's failure, the others go on."""

        def one(desired: Desired) -> None:
            with self.result.refusal_reported(desired.device_name, desired.device_id, desired.name):
                converge(desired)

        in_parallel(one, devices, self.kube.writes_in_flight, name="argora-write")

    def adoptable(self, live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
        return adoptable(live, desired, self.identity_labels)

    def name_taken(
        self, desired: DesiredObjects, objects: Iterable[tuple[Kind, Mapping[str, Any] | None, bool]]
    ) -> bool:
        """Whether an object of another owner holds one of the device's names: (kind, live object, whether
        it is adopted) for each of them. The device then fails, and none of its objects is written."""
        for kind, live, adopt in objects:
            taken = taken_by_another(self.owner, kind, live, adopt=adopt)
            if taken:
                self.result.fail(desired.device_name, desired.device_id, "NameTaken", taken)
                return True
        return False

    def write(self, kind: Kind, body: Mapping[str, Any], live: Mapping[str, Any] | None) -> WriteOutcome:
        return write_counted(self.kube, kind, body, live)

    def delete(self, kind: Kind, name: str, namespace: str | None = None, *, uid: str) -> bool:
        return delete_counted(self.kube, kind, name, namespace, uid=uid)

    def prune_decision(
        self,
        owned_live: Iterable[tuple[Kind, Mapping[str, Mapping[str, Any]]]],
        devices: Sequence[DesiredObjects],
        selected_device_ids: set[int],
        *,
        enabled: bool,
        disabled_reason: str,
        cap: int | None,
    ) -> PruneDecision:
        """Which of our live objects (of each kind in `owned_live`) a prune may delete this pass."""
        owned = [
            OwnedObject.of(kind, obj, self.device_id_label)
            for kind, objects in owned_live
            for obj in objects.values()
            if self.owner.owns(obj)
        ]
        return decide_prune(
            owned,
            desired_names={device.name for device in devices},
            selected_device_ids=selected_device_ids,
            named_device_ids={device.device_id for device in devices},
            enabled=enabled,
            disabled_reason=disabled_reason,
            cap=cap,
        )


def write_counted(kube: Kube, kind: Kind, body: Mapping[str, Any], live: Mapping[str, Any] | None) -> WriteOutcome:
    outcome = kube.apply_if_changed(kind, body, live)
    if outcome is not WriteOutcome.UNCHANGED:
        OBJECTS_WRITTEN.labels(controller=kube.controller, kind=kind.kind, action=outcome.value).inc()
    return outcome


def delete_counted(kube: Kube, kind: Kind, name: str, namespace: str | None = None, *, uid: str = "") -> bool:
    """Delete (only the object `uid` names, when given) and count it; False when it was already gone."""
    deleted = kube.delete(kind, name, namespace, uid=uid)
    if deleted:
        OBJECTS_WRITTEN.labels(controller=kube.controller, kind=kind.kind, action="delete").inc()
    return deleted


def _device_outcome(outcomes: Iterable[WriteOutcome]) -> WriteOutcome:
    """A device is created when all its writes created objects, updated when any changed one."""
    changed = [outcome for outcome in outcomes if outcome is not WriteOutcome.UNCHANGED]
    if not changed:
        return WriteOutcome.UNCHANGED
    if all(outcome is WriteOutcome.CREATED for outcome in changed):
        return WriteOutcome.CREATED
    return WriteOutcome.UPDATED
