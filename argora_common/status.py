"""Status of our own resources (ClusterImport, Update): written by server-side apply, with conditions."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import kopf

from argora_common.crds import Condition, DeviceProblem, ResourceStatus
from argora_common.kube import Kind, Kube, set_condition

# How many names an Event or summary lists before it says "and N more".
SHOWN_NAMES = 10


def short_list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def reason_summary(problems: Sequence[DeviceProblem]) -> str:
    """`3 devices: 2 NoOOBIP, 1 NameTaken`, for an Event."""
    reasons = Counter(problem.reason for problem in problems)
    return f"{len(problems)} devices: " + ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))


def make_condition(kind: str, ok: bool, reason: str, message: str = "", *, generation: int | None) -> Condition:
    return Condition(
        type=kind, status="True" if ok else "False", reason=reason, message=message, observed_generation=generation
    )


def write_status(kube: Kube, kind: Kind, body: Mapping[str, Any], status: ResourceStatus) -> None:
    kube.apply(
        kind,
        {
            "metadata": {"name": body["metadata"]["name"], "namespace": body["metadata"]["namespace"]},
            "status": status.model_dump(by_alias=True, mode="json", exclude_none=True),
        },
        subresource="status",
    )


def report_failure(
    kube: Kube,
    kind: Kind,
    body: kopf.Body,
    status_class: type[ResourceStatus],
    reason: str,
    message: str,
    condition_types: Sequence[str] = ("Ready",),
) -> None:
    """Set the given conditions False with `reason`, keep the rest of the status, post a Warning Event."""
    previous = status_class.model_validate(body.get("status") or {})
    generation = body["metadata"].get("generation")
    conditions = previous.conditions
    for condition_type in condition_types:
        conditions = set_condition(
            conditions,
            Condition(
                type=condition_type, status="False", reason=reason, message=message, observed_generation=generation
            ),
        )
    failed = previous.model_copy(update={"conditions": conditions, "state": "Error", "description": message})
    write_status(kube, kind, body, failed)
    kopf.event(body, type="Warning", reason=reason, message=message)


@contextmanager
def unexpected_errors_are_permanent(
    report: Callable[[str, str], None], logger: logging.Logger | logging.LoggerAdapter[Any]
) -> Iterator[None]:
    """A bug must not be retried forever: report it on the resource and stop until the next change or resync.

    Retryable problems are raised as kopf.TemporaryError by the reconcilers and pass through."""
    try:
        yield
    except (kopf.TemporaryError, kopf.PermanentError):
        raise
    except Exception as error:
        logger.exception("unexpected error; not retried until the resource changes or the next resync")
        message = f"{type(error).__name__}: {error}"
        try:
            report("InternalError", message)
        except Exception:
            logger.exception("could not report the error on the resource")
        raise kopf.PermanentError(message) from error
