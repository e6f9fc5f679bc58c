"""Scenario 4: the Kubernetes API server goes away in the middle of a first pass of 2,000 writes (1,000
devices: a BMC and a BMCSecret each for argora-ironcore, a BareMetalHost and its credentials Secret each
for argora-metal3).

4. kube-apiserver is restarted (SIGTERM, a few seconds down, the same etcd), as a control-plane rollout
   does.
4b. Toxiproxy between the controller (its passes and kopf alike) and the API server resets every
   connection for a while, then refuses them for a while.

What a user checks afterwards: the pass was retried with a growing delay and never reported as an internal
error (the log's retry lines, the Warning Events on the resource), it completed (status), and exactly the
2,000 objects exist, none twice, and those written before the fault are the same objects (uids).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from argora_dev.faults import TABLE, FaultRow, Tally, uids
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Clusters, Objects
from argora_dev.operator import OperatorProcess
from argora_dev.toxiproxy import Proxy, Toxiproxy
from tests.faults.conftest import Inventory, converged
from tests.faults.midpass import (
    FAULT_AFTER_WRITES,
    FIRST_PASS_TIMEOUT,
    complete,
    elapsed,
    expected_names,
    failed_passes,
    growing,
    start,
    wait_for_writes,
    warning_reasons,
    written_count,
)
from tests.faults.test_netbox_faults import Subject, identity

pytestmark = [pytest.mark.integration, pytest.mark.faults]

DOWN_SECONDS = 5
RESET_SECONDS = 10
CUT_SECONDS = 20


@pytest.fixture(scope="module")
def clusters(api_client: Any) -> Clusters:
    return Clusters(api_client)


@pytest.fixture
def kube_proxy(toxiproxy: Toxiproxy, kube: KubeCluster, prefix: str) -> Iterator[Proxy]:
    """A Toxiproxy proxy in front of the API server. TLS passes through it untouched: the serving
    certificate is for 127.0.0.1, where the proxy listens too."""
    proxy = toxiproxy.proxy(prefix, kube.server_url.removeprefix("https://"))
    yield proxy
    proxy.set_enabled(False)


def kubeconfig_through(kube: KubeCluster, proxy: Proxy, folder: Path) -> Path:
    """A copy of the cluster's kubeconfig whose server is the proxy."""
    config = yaml.safe_load(kube.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = proxy.url("https")
    path = folder / "kubeconfig-through-proxy"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Before:
    """What there was when the fault began: the objects, the writes so far, the length of the log."""

    objects: dict[str, dict[str, Any]]
    writes: float
    log_length: int

    @classmethod
    def of(cls, subject: Subject) -> Before:
        return cls(subject.written(), written_count(subject), len(subject.operator.log()))


def recovered(subject: Subject, inventory: Inventory, before: Before, scenario: str, note: str) -> None:
    """The fault has ended: the pass is retried until it completes; count and record what the fault cost."""
    writes = written_count(subject) - before.writes
    expected = expected_names(subject.controller, inventory)
    seconds = converged(lambda: complete(subject, len(expected)), FIRST_PASS_TIMEOUT, "the pass after the fault")
    log = subject.operator.log()
    failures = failed_passes(log[before.log_length :])  # the process serves the test's namespace only
    delays = [failure.delay for failure in failures]
    tally = Tally(expected, uids(before.objects), subject.written(), identity)
    TABLE.add(
        FaultRow.of(
            scenario, f"argora-{subject.controller}", tally, seconds, int(writes),
            f"{note}; {len(failures)} failed passes "
            f"({', '.join(sorted({f.reason for f in failures})) or '-'}), retried after {delays} s",
        )
    )  # fmt: skip
    assert (tally.present, tally.lost, tally.duplicated) == (len(expected), 0, 0)
    assert failures, "no pass failed: the fault came too late to show anything"
    assert {failure.reason for failure in failures} == {"KubernetesUnavailable"}, failures
    assert growing(delays), delays
    assert "InternalError" not in warning_reasons(subject)
    assert "Traceback" not in log, log[-5000:]


@pytest.mark.parametrize("controller", ["ironcore", "metal3"])
def test_api_server_restarted_mid_pass(
    controller: str,
    kube: KubeCluster,
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
    before = Before.of(subject)

    fault_started = time.monotonic()
    kube.restart_apiserver(DOWN_SECONDS)
    down = elapsed(fault_started)

    recovered(
        subject, inventory, before, "4. API server restarted mid-pass (2,000 writes)",
        f"restarted after {len(before.objects)} objects, unavailable {down:.0f} s",
    )  # fmt: skip


@pytest.mark.parametrize("controller", ["ironcore", "metal3"])
def test_api_server_connections_reset_then_cut_mid_pass(
    controller: str,
    kube: KubeCluster,
    kube_proxy: Proxy,
    objects: Objects,
    clusters: Clusters,
    inventory: Inventory,
    clean_bmcs: None,
    start_controller: Callable[..., OperatorProcess],
    namespace: str,
    credentials_secret: str,
    tmp_path: Path,
) -> None:
    kubeconfig = kubeconfig_through(kube, kube_proxy, tmp_path)
    subject = start(start_controller, controller, namespace, objects, clusters, {"KUBECONFIG": str(kubeconfig)})
    subject.create(inventory.cluster)
    wait_for_writes(subject, FAULT_AFTER_WRITES)
    before = Before.of(subject)

    kube_proxy.add_toxic("reset", "reset_peer", {"timeout": 0})
    time.sleep(RESET_SECONDS)
    kube_proxy.remove_toxic("reset")
    kube_proxy.set_enabled(False)
    time.sleep(CUT_SECONDS)
    kube_proxy.set_enabled(True)

    recovered(
        subject, inventory, before, "4b. API server connection reset / cut mid-pass",
        f"after {len(before.objects)} objects: connections reset for {RESET_SECONDS} s, refused for {CUT_SECONDS} s",
    )  # fmt: skip
