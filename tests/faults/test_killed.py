"""Scenario 5: the controller is SIGKILLed in the middle of a pass and a new process takes over, as when a
node dies under the Pod or the OOM killer strikes: no clean shutdown, writes cut off halfway.

- In the first pass of 2,000 writes (1,000 devices), once some hundreds are written.
- In a pass that changes things: after the full import the BMC credentials are rotated (1,000 Secrets to
  rewrite) and five devices leave the selection (offline in NetBox: their objects are to be pruned, for
  argora-metal3 with pruning opted in); the kill comes once some hundreds of Secrets are rewritten.

What a user checks afterwards: the new process completes the pass; exactly the objects that should exist
do, each once, those that existed before the kill are the same objects (uids: nothing deleted and made
again), only the five devices that left are pruned, and every Secret carries the rotated password.
"""

from __future__ import annotations

import base64
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from argora_dev.faults import TABLE, FaultRow, Tally, uids
from argora_dev.kubeobjects import Clusters, Objects
from argora_dev.operator import OperatorProcess
from argora_dev.seed import NetBoxSeeder
from tests.faults.conftest import SECRETS, Inventory, converged
from tests.faults.midpass import (
    FAULT_AFTER_WRITES,
    FIRST_PASS_TIMEOUT,
    complete,
    expected_names,
    start,
    wait_for_writes,
    warning_reasons,
    written_count,
)
from tests.faults.test_netbox_faults import Subject, identity

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LEAVING = 5  # devices that go offline in NetBox before the pass that is killed
ROTATED_PASSWORD = f"{SECRETS.bmc_password}-rotated"  # still recognisable to the leak check
PRUNE_ANNOTATION = "argora.cloud.sap/prune"


@pytest.fixture(scope="module")
def clusters(api_client: Any) -> Clusters:
    return Clusters(api_client)


@pytest.fixture
def leaving(seeder: NetBoxSeeder, inventory: Inventory) -> Iterator[dict[str, int]]:
    """LEAVING devices of the inventory (name → id), put back to active after the test."""
    names = sorted(inventory.devices)[-LEAVING:]
    chosen = {name: inventory.devices[name] for name in names}
    yield chosen
    for device_id in chosen.values():
        seeder.update("dcim/devices", device_id, status="active")


def kill(subject: Subject) -> float:
    """SIGKILL the controller's process group; returns the objects it had written (its last metrics)."""
    written = written_count(subject)
    os.killpg(subject.operator.process.pid, signal.SIGKILL)
    subject.operator.process.stop()  # reaps it and closes its log
    return written


def successor(
    subject: Subject, start_controller: Callable[..., OperatorProcess], objects: Objects, clusters: Clusters
) -> Subject:
    """A new process of the same controller, configured as the killed one was."""
    return start(start_controller, subject.controller, subject.namespace, objects, clusters)


def passwords(subject: Subject) -> dict[str, str]:
    """Secret name → the BMC password it carries."""
    if subject.controller == "ironcore":
        found = subject.objects.owned("bmcsecrets", subject.namespace, "import")
        return {name: obj["data"]["password"] for name, obj in found.items()}
    secrets = subject.clusters.core.list_namespaced_secret(
        subject.namespace, label_selector="app.kubernetes.io/managed-by=argora-metal3"
    ).items
    return {secret.metadata.name: secret.data["password"] for secret in secrets}


def decoded(value: str) -> str:
    return base64.b64decode(value).decode()


def peering_pause(log: str) -> float:
    """Seconds from the process's first log line until it acquired its Lease: a new process stands by
    while the killed one's Lease, unchanged, has not yet run out by its clock."""
    lines = log.splitlines()
    resumed = next((line for line in lines if "acquired the Lease" in line), None)
    if not lines or resumed is None:
        return 0.0
    stamp = "%Y-%m-%d %H:%M:%S,%f"
    return (datetime.strptime(resumed[:23], stamp) - datetime.strptime(lines[0][:23], stamp)).total_seconds()


def taken_over_note(successor: Subject, before: int, killed_writes: float) -> str:
    pause = peering_pause(successor.operator.log())
    return (
        f"killed after {killed_writes:.0f} writes ({before} objects there); the new one stood by {pause:.0f} s (Lease)"
    )


@pytest.mark.parametrize("controller", ["ironcore", "metal3"])
def test_killed_mid_first_pass(
    controller: str,
    objects: Objects,
    clusters: Clusters,
    inventory: Inventory,
    clean_bmcs: None,
    start_controller: Callable[..., OperatorProcess],
    namespace: str,
    credentials_secret: str,
) -> None:
    subject = start(start_controller, controller, namespace, objects, clusters)
    subject.create(inventory.cluster)
    wait_for_writes(subject, FAULT_AFTER_WRITES)
    killed_writes = kill(subject)
    killed_at = time.monotonic()
    before = subject.written()

    expected = expected_names(controller, inventory)
    new = successor(subject, start_controller, objects, clusters)
    converged(lambda: complete(new, len(expected)), FIRST_PASS_TIMEOUT, "the new process's pass")
    seconds = time.monotonic() - killed_at  # from the kill: the new process's start counts too
    tally = Tally(expected, uids(before), new.written(), identity)
    redone = written_count(new)
    TABLE.add(
        FaultRow.of(
            "5. operator SIGKILLed mid-pass", f"argora-{controller}", tally, seconds, int(redone),
            f"first pass; {taken_over_note(new, len(before), killed_writes)}; it wrote {redone:.0f}",
        )
    )  # fmt: skip
    assert (tally.present, tally.lost, tally.duplicated) == (len(expected), 0, 0)
    # What was written before the kill is left as it is: only the missing objects are written.
    assert redone <= len(expected) - len(before)
    assert "InternalError" not in warning_reasons(new)
    assert "Traceback" not in new.operator.log()


@pytest.mark.parametrize("controller", ["ironcore", "metal3"])
def test_killed_mid_pass_that_rotates_and_prunes(
    controller: str,
    objects: Objects,
    clusters: Clusters,
    inventory: Inventory,
    seeder: NetBoxSeeder,
    leaving: dict[str, int],
    clean_bmcs: None,
    start_controller: Callable[..., OperatorProcess],
    namespace: str,
    credentials_secret: str,
) -> None:
    subject = start(start_controller, controller, namespace, objects, clusters)
    subject.create(inventory.cluster)
    everything = expected_names(controller, inventory)
    converged(lambda: complete(subject, len(everything)), FIRST_PASS_TIMEOUT, "the full import")
    if controller == "metal3":
        # Pruning hosts is opt-in for argora-metal3.
        done = subject.passes()
        clusters.patch(namespace, "capi", {"metadata": {"annotations": {PRUNE_ANNOTATION: "true"}}})
        converged(lambda: subject.passed_after(done), FIRST_PASS_TIMEOUT, "the pass after opting in to pruning")

    for device_id in leaving.values():
        seeder.update("dcim/devices", device_id, status="offline")
    objects.replace_secret_data(
        namespace, credentials_secret, {"username": SECRETS.bmc_username, "password": ROTATED_PASSWORD}
    )
    written_before = written_count(subject)
    subject.request_pass()
    wait_for_writes(subject, FAULT_AFTER_WRITES, since=written_before)
    killed_writes = kill(subject) - written_before
    killed_at = time.monotonic()
    before_kill = subject.written()
    rotated_before = sum(decoded(value) == ROTATED_PASSWORD for value in passwords(subject).values())

    staying = everything - expected_names(controller, Inventory(inventory.cluster, leaving))
    new = successor(subject, start_controller, objects, clusters)

    def converged_after_kill() -> bool:
        found = passwords(new)
        return (
            complete(new, len(staying))
            and len(found) == len(inventory.devices) - LEAVING
            and all(decoded(value) == ROTATED_PASSWORD for value in found.values())
        )

    converged(converged_after_kill, FIRST_PASS_TIMEOUT, "the new process's pass")
    seconds = time.monotonic() - killed_at
    after = new.written()
    tally = Tally(staying, uids({name: obj for name, obj in before_kill.items() if name in staying}), after, identity)
    redone = written_count(new)
    TABLE.add(
        FaultRow.of(
            "5. operator SIGKILLed mid-pass", f"argora-{controller}", tally, seconds, int(redone),
            f"pass rotating 1,000 Secrets and pruning {LEAVING} devices' objects, killed with {rotated_before}"
            f" rotated; {taken_over_note(new, len(before_kill), killed_writes)}; it wrote {redone:.0f}"
            f" and pruned {len(set(before_kill) - set(after))}",
        )
    )  # fmt: skip
    assert (tally.present, tally.lost, tally.duplicated) == (len(staying), 0, 0)
    # Only what had to go is gone: the objects of the devices that left.
    assert set(before_kill) - set(after) == everything - staying
    assert 0 < rotated_before < len(inventory.devices), "the kill came before or after the rotation"
    assert "InternalError" not in warning_reasons(new)
    assert "Traceback" not in new.operator.log()
