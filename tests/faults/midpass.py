"""What scenarios 4 and 5 share: a controller's first pass of 2,000 writes, interrupted once some hundreds
are written (the API server restarted or cut off, the controller killed), and what a user then checks:
the objects, the status, the Events and the log's retry lines."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from argora_dev.kubeobjects import Clusters, Objects, wait_for
from argora_dev.operator import OperatorProcess
from tests.faults.conftest import Inventory
from tests.faults.test_netbox_faults import Subject

# Written objects after which the fault comes: well into the pass, far from its end.
FAULT_AFTER_WRITES = 300
FIRST_PASS_TIMEOUT = 900
RETRY_BASE_SECONDS = 2
RETRY_MAX_SECONDS = 32
# "ClusterImport ns/import not synced, KubernetesUnavailable: …; next attempt in 4s" (argora_common.passes).
_FAILED_PASS = re.compile(r" (\S+) (\S+/\S+) not synced, (\w+): .*; next attempt in (\d+)s$")


def start(
    start_controller: Callable[..., OperatorProcess],
    controller: str,
    namespace: str,
    objects: Objects,
    clusters: Clusters,
    env: Mapping[str, str] | None = None,
) -> Subject:
    """argora-<controller> for the test's namespace only, retrying a failed pass after 2, 4, 8 … s."""
    full_env = {
        "ARGORA_NAMESPACES": namespace,
        "ARGORA_RETRY_BASE_SECONDS": str(RETRY_BASE_SECONDS),
        "ARGORA_RETRY_MAX_SECONDS": str(RETRY_MAX_SECONDS),
        # NetBox is not what fails here: a read of 1,000 devices on a busy machine may take longer than
        # the suite's 10 s, which would fail passes for the wrong reason.
        "ARGORA_NETBOX_TIMEOUT_SECONDS": "120",
        **(env or {}),
    }
    if controller == "metal3":
        full_env["ARGORA_DEFAULT_BMC_CREDENTIALS"] = f"{namespace}/bmc"
    return Subject(controller, namespace, objects, clusters, start_controller(controller, full_env))


def written_count(subject: Subject) -> float:
    """Objects the controller created or changed so far, from its metrics (cheaper than listing 2,000)."""
    return subject.operator.metric("argora_objects_written_total")


def wait_for_writes(subject: Subject, count: float, since: float = 0.0) -> None:
    wait_for(
        lambda: written_count(subject) - since >= count,
        FIRST_PASS_TIMEOUT,
        f"{count:.0f} objects written by argora-{subject.controller}",
    )


def complete(subject: Subject, expected: int) -> bool:
    """All objects there and the last pass completed (a user's `kubectl get` and the status)."""
    return len(subject.written()) == expected and subject.passes() > 0 and subject.failure() is None


@dataclass(frozen=True)
class FailedPass:
    kind: str
    key: str  # namespace/name
    reason: str
    delay: int  # seconds until the next attempt


def failed_passes(log: str) -> list[FailedPass]:
    """The failed passes a controller's log (or the part of it since a fault began) reports, in order."""
    # Line by line, and only the lines that can match: the DEBUG log holds megabytes of response bodies.
    matches = (_FAILED_PASS.search(line) for line in log.splitlines() if " not synced, " in line)
    return [FailedPass(match[1], match[2], match[3], int(match[4])) for match in matches if match]


def growing(delays: list[int]) -> bool:
    """Each retry waits longer than the one before, up to the cap."""
    return all(later > earlier or later == RETRY_MAX_SECONDS for earlier, later in itertools.pairwise(delays))


def warning_reasons(subject: Subject) -> set[str]:
    """The reasons of the Warning Events on the controller's resource."""
    name = "import" if subject.controller == "ironcore" else "capi"
    events = subject.objects.events(subject.namespace, name)
    return {reason for kind, reason, _ in events if kind == "Warning"}


def elapsed(since: float) -> float:
    return time.monotonic() - since


def expected_names(controller: str, inventory: Inventory) -> set[str]:
    """kind/name of every object the controller should have written for the inventory."""
    if controller == "ironcore":
        return {f"{kind}/{name}" for name in inventory.devices for kind in ("BMC", "BMCSecret")}
    return {f"BareMetalHost/{name}" for name in inventory.devices} | {
        f"Secret/bmc-secret-{name}" for name in inventory.devices
    }
