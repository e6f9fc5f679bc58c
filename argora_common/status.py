"""What a pass tells the user: status of our own resources (ClusterImport, Update), conditions and Events.

Every condition has one polarity: `True` is the good state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from argora_common.converge import ConvergeResult
from argora_common.crds import Condition, DeviceProblem, PrefixProblem, ResourceStatus
from argora_common.errors import Decision
from argora_common.kube import EVENT, Kind, Kube

# How many names an Event or summary lists before it says "and N more".
SHOWN_NAMES = 10


def short_list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def reason_summary(problems: Sequence[DeviceProblem | PrefixProblem], noun: str = "devices") -> str:
    """`3 devices: 2 NoOOBIP, 1 NameTaken`, for an Event."""
    reasons = Counter(problem.reason for problem in problems)
    return f"{len(problems)} {noun}: " + ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))


def now() -> datetime:
    """The time for conditions, status and Events: UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def set_condition(conditions: Sequence[Condition], new: Condition) -> list[Condition]:
    """Replace the condition of `new.type`, keeping its transition time when the status did not change."""
    updated: list[Condition] = []
    for existing in conditions:
        if existing.type != new.type:
            updated.append(existing)
    previous = next((cond for cond in conditions if cond.type == new.type), None)
    if previous is not None and previous.status == new.status and previous.last_transition_time:
        new = new.model_copy(update={"last_transition_time": previous.last_transition_time})
    elif new.last_transition_time is None:
        new = new.model_copy(update={"last_transition_time": now()})
    updated.append(new)
    return updated


def make_condition(kind: str, ok: bool, reason: str, message: str = "", *, generation: int | None) -> Condition:
    return Condition(
        type=kind, status="True" if ok else "False", reason=reason, message=message, observed_generation=generation
    )


def merge_conditions(previous: Sequence[Condition], new: Iterable[Condition]) -> list[Condition]:
    conditions = list(previous)
    for condition in new:
        conditions = set_condition(conditions, condition)
    return conditions


def write_status(kube: Kube, kind: Kind, body: Mapping[str, Any], status: ResourceStatus) -> None:
    kube.apply(
        kind,
        {
            "metadata": {"name": body["metadata"]["name"], "namespace": body["metadata"]["namespace"]},
            "status": status.model_dump(by_alias=True, mode="json", exclude_none=True),
        },
        subresource="status",
    )


def failed_status[S: ResourceStatus](status_class: type[S], body: Mapping[str, Any], decision: Decision) -> S:
    """The previous status with Ready (and NetBoxReachable when NetBox failed) False, the original
    operator's state `Error` and the error as its description; the rest is kept."""
    previous = status_class.model_validate(body.get("status") or {})
    generation = body["metadata"].get("generation")
    failed = ("Ready", "NetBoxReachable") if decision.netbox_unreachable else ("Ready",)
    conditions = merge_conditions(
        previous.conditions,
        (make_condition(kind, False, decision.reason, decision.message, generation=generation) for kind in failed),
    )
    return previous.model_copy(update={"conditions": conditions, "state": "Error", "description": decision.message})


def report_failure(
    kube: Kube, kind: Kind, body: Mapping[str, Any], status_class: type[ResourceStatus], decision: Decision
) -> None:
    """The failed status of one of our resources and a Warning Event."""
    write_status(kube, kind, body, failed_status(status_class, body, decision))
    post_event(kube, body, "Warning", decision.reason, decision.message)


def post_event(kube: Kube, involved: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
    """An Event on `involved`, posted directly (also from threads outside kopf's handlers)."""
    metadata = involved["metadata"]
    timestamp = now().isoformat().replace("+00:00", "Z")
    kube.create(
        EVENT,
        {
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": kube.field_manager},
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
        },
    )


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


def post_events(kube: Kube, involved: Mapping[str, Any], events: Iterable[Event]) -> None:
    for event in events:
        post_event(kube, involved, event.type, event.reason, event.message)


def report_counted(
    kube: Kube, kind: Kind, body: Mapping[str, Any], status: ResourceStatus, counts: BaseModel, events: Iterable[Event]
) -> str:
    """Status and Events of a completed pass; the counts, `3 created, 0 failed, …`, for its log line."""
    write_status(kube, kind, body, status)
    post_events(kube, body, events)
    return ", ".join(f"{value} {name}" for name, value in counts.model_dump(by_alias=True).items())


@dataclass(frozen=True)
class EventWords:
    """How a controller names what a convergence did: (reason, message template with {names})."""

    created: tuple[str, str]
    updated: tuple[str, str]
    adopted: tuple[str, str]
    pruned: tuple[str, str]
    held_back: tuple[str, str]  # {reason} is why they were kept
    drifted: tuple[str, str]


def convergence_events(
    result: ConvergeResult, skipped: Sequence[DeviceProblem], notes: Sequence[DeviceProblem], words: EventWords
) -> list[Event]:
    """The Events of a completed pass, in the order a reader wants them."""
    events: list[Event] = []
    for names, (reason, template) in (
        (result.created, words.created),
        (result.updated, words.updated),
        (result.adopted, words.adopted),
        (result.pruned, words.pruned),
    ):
        if names:
            events.append(Event("Normal", reason, template.format(names=short_list(names))))
    if result.held_back:
        reason, template = words.held_back
        events.append(
            Event(
                "Warning", reason, template.format(names=short_list(result.held_back), reason=result.held_back_reason)
            )
        )
    if result.drifted:
        reason, template = words.drifted
        events.append(Event("Warning", reason, template.format(names=short_list([p.device for p in result.drifted]))))
    problems = [*skipped, *result.failed]
    if problems:
        events.append(Event("Warning", "DevicesSkipped", reason_summary(problems)))
    if notes:
        events.append(Event("Warning", "DevicesIncomplete", reason_summary(notes)))
    return events
