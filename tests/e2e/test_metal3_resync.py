"""argora-metal3's resync when one Cluster's pass fails on every try, beside two healthy Clusters.

The failure is a real one: a ValidatingAdmissionPolicy makes the API server refuse (422) every update
of the labelled Cluster, so argora-metal3 can read NetBox and register the host, but never write its
sync-status annotation. A module of its own: the shared argora-metal3 of test_metal3.py watches every
namespace and would run passes over these Clusters too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.credentials import OPT_IN_LABEL
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Clusters, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Topology, add_servers

pytestmark = pytest.mark.integration

NETBOX_CLUSTER = "argora.cloud.sap/netbox-cluster"
REFUSED_LABEL = "argora-e2e/refuse-updates"
RESYNC_SECONDS = 10
RETRY_BASE_SECONDS = 2
RETRY_MAX_SECONDS = 30
WINDOW_SECONDS = 40
# A failing Cluster retried every 2 s, without a growing delay, would get this many attempts.
TICKS_IN_WINDOW = WINDOW_SECONDS // 2
FAILING, HEALTHY = "a-refused", ("b-healthy", "c-healthy")


@pytest.fixture
def refused_updates(api_client: client.ApiClient, namespace: str) -> Iterator[None]:
    """Every update (hence every patch and server-side apply) of a labelled Cluster in the test's
    namespace is refused by the API server's admission."""
    admission = client.AdmissionregistrationV1Api(api_client)
    name = f"argora-e2e-refuse-{uuid.uuid4().hex[:8]}"
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["cluster.x-k8s.io"],
                            "apiVersions": ["*"],
                            "operations": ["UPDATE"],
                            "resources": ["clusters"],
                        }
                    ]
                },
                "validations": [{"expression": "false", "message": "argora e2e: this Cluster may not change"}],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                    "objectSelector": {"matchLabels": {REFUSED_LABEL: "true"}},
                },
            },
        }
    )
    yield
    admission.delete_validating_admission_policy_binding(name)
    admission.delete_validating_admission_policy(name)


def is_refused(clusters: Clusters, namespace: str, name: str) -> bool:
    """Whether the policy is in force yet (the API server loads it within a second or so)."""
    try:
        clusters.patch(namespace, name, {"metadata": {"annotations": {"argora-e2e/probe": uuid.uuid4().hex}}})
    except ApiException as error:
        if error.status == 422:
            return True
        raise
    return False


def last_sync_time(clusters: Clusters, namespace: str, name: str) -> str:
    return str((clusters.sync_status(namespace, name) or {}).get("lastSyncTime", ""))


def refusals(clusters: Clusters, namespace: str) -> int:
    return sum(
        event_type == "Warning" and reason == "KubernetesRejected"
        for event_type, reason, _ in clusters.events(namespace, FAILING)
    )


def requests_for_clusters(operator: OperatorProcess) -> float:
    """NetBox cluster lookups: one per pass over a Cluster."""
    return operator.metric("argora_netbox_requests_total", endpoint="virtualization/clusters")


def test_a_cluster_that_fails_every_pass_is_retried_less_and_less_and_blocks_no_other(
    kube: KubeCluster,
    netbox: NetBoxServer,
    api_client: client.ApiClient,
    namespace: str,
    seeder: NetBoxSeeder,
    prefix: str,
    tmp_path: Path,
    refused_updates: None,
) -> None:
    clusters = Clusters(api_client)
    topology = Topology(seeder, prefix)
    secret = {
        "metadata": {"name": "bmc", "labels": {OPT_IN_LABEL: "true"}},
        "stringData": {"username": "u", "password": "p"},
    }
    clusters.core.create_namespaced_secret(namespace, secret)
    for name in (FAILING, *HEALTHY):
        netbox_cluster = topology.cluster(name)
        add_servers(topology, netbox_cluster, [f"{prefix}-{name}"])
        annotations = {NETBOX_CLUSTER: netbox_cluster["name"], "argora.cloud.sap/bmc-credentials": "bmc"}
        labels = {REFUSED_LABEL: "true"} if name == FAILING else {}
        clusters.create(namespace, name, annotations=annotations, labels=labels)
    wait_for(lambda: is_refused(clusters, namespace, FAILING), 30, "the admission policy in force")

    # Only this namespace: Clusters of other test modules stay out of the counts.
    env = operator_environment(
        kube, netbox, netbox.readonly_v2_token,
        ARGORA_NAMESPACES=namespace,
        ARGORA_RESYNC_INTERVAL_SECONDS=str(RESYNC_SECONDS),
        ARGORA_RETRY_BASE_SECONDS=str(RETRY_BASE_SECONDS),
        ARGORA_RETRY_MAX_SECONDS=str(RETRY_MAX_SECONDS),
    )  # fmt: skip
    operator = OperatorProcess("metal3", tmp_path, env).start()
    try:
        for name in HEALTHY:
            assert clusters.synced(namespace, name)["counts"]["created"] == 1
        wait_for(lambda: refusals(clusters, namespace), 60, "the first refused pass reported")

        requests_before = requests_for_clusters(operator)
        refusals_before = refusals(clusters, namespace)
        seen = {name: {last_sync_time(clusters, namespace, name)} for name in HEALTHY}
        deadline = time.monotonic() + WINDOW_SECONDS
        while time.monotonic() < deadline:
            for name in HEALTHY:
                seen[name].add(last_sync_time(clusters, namespace, name))
            time.sleep(0.5)
        requests = requests_for_clusters(operator) - requests_before
        attempts = refusals(clusters, namespace) - refusals_before

        # The healthy Clusters kept their resync (every 10 s: about four passes each in the window).
        passes = {name: len(times) - 1 for name, times in seen.items()}
        assert all(count >= 2 for count in passes.values()), passes
        # The failing one is still retried, but after 2, 4, 8, 16 s...: a handful of attempts, not one
        # per 2 s tick.
        assert 1 <= attempts <= 6 < TICKS_IN_WINDOW, attempts
        # One NetBox read per pass or attempt (give or take the passes under way at either end).
        assert abs(requests - (sum(passes.values()) + attempts)) <= 3, (requests, passes, attempts)
        # What the user sees on the failing Cluster: the Events, since its annotation cannot be written.
        assert clusters.sync_status(namespace, FAILING) is None
        (message, *_) = [m for _, reason, m in clusters.events(namespace, FAILING) if reason == "KubernetesRejected"]
        assert "HTTP 422" in message and "this Cluster may not change" in message
        assert f"{prefix}-{FAILING}" in clusters.hosts(namespace)
    finally:
        operator.stop()
    log = operator.log()
    assert "Traceback" not in log, log[-5000:]
    # One line per failed attempt, saying also that the annotation could not be written.
    failures = [line for line in log.splitlines() if f"Cluster {namespace}/{FAILING} not synced" in line]
    assert len(failures) == refusals(clusters, namespace), failures
    assert all("KubernetesRejected" in line and "could not report it: HTTP 422" in line for line in failures)
