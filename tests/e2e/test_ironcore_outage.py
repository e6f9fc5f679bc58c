"""argora-ironcore's periodic resync during a NetBox outage: retried less and less often, then recovering
by itself.

A module of its own: the shared argora-ironcore of test_ironcore.py watches every namespace; it would
run passes over this ClusterImport too, and the attempts counted here would be two operators'.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Topology, add_servers

pytestmark = pytest.mark.integration

RESYNC_SECONDS = 10
RETRY_BASE_SECONDS = 2
RETRY_MAX_SECONDS = 16
OUTAGE_SECONDS = 40
POLL_SECONDS = 0.2
# An attempt is seen at the first poll after it: a gap between two can look this much shorter.
DETECTION_SLACK_SECONDS = 0.5


def netbox_reachable(objects: Objects, namespace: str) -> dict[str, Any] | None:
    ci = objects.get_import(namespace, "import") or {}
    conditions = (ci.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "NetBoxReachable"), None)


def attempt_times(operator: OperatorProcess, seconds: float) -> list[float]:
    """When, in `seconds` from now, the operator asked NetBox for clusters (the first request of a pass)."""
    times: list[float] = []

    def requests() -> float:
        return operator.metric("argora_netbox_requests_total", endpoint="virtualization/clusters")

    last = requests()
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        current = requests()
        # Polled faster than passes come: an increase is one attempt (NETBOX_RETRIES=1: one request each).
        times += [now - start] * int(current - last)
        last = current
        time.sleep(POLL_SECONDS)
    return times


def test_resync_during_an_outage_backs_off_and_recovers_by_itself(
    kube: KubeCluster,
    netbox: NetBoxServer,
    api_client: client.ApiClient,
    namespace: str,
    seeder: NetBoxSeeder,
    prefix: str,
    tmp_path: Path,
) -> None:
    objects = Objects(api_client)
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    add_servers(topology, cluster, [f"{prefix}-s0"])
    objects.create_secret(namespace, "bmc", {"username": "u", "password": "p"})
    env = operator_environment(
        kube, netbox, netbox.readonly_v2_token,
        ARGORA_NAMESPACES=namespace,
        ARGORA_RESYNC_INTERVAL_SECONDS=str(RESYNC_SECONDS),
        ARGORA_RETRY_BASE_SECONDS=str(RETRY_BASE_SECONDS),
        ARGORA_RETRY_MAX_SECONDS=str(RETRY_MAX_SECONDS),
        ARGORA_NETBOX_RETRIES="1",
    )  # fmt: skip
    operator = OperatorProcess("ironcore", tmp_path, env).start()
    try:
        selector = {"name": cluster["name"], "bmcCredentialsRef": {"name": "bmc"}}
        objects.create_import(namespace, "import", {"clusters": [selector]})
        objects.synced_import(namespace, "import")

        # Nobody touches the ClusterImport: only the periodic resync (and its retries) runs passes.
        with netbox.database_stopped():
            attempts = attempt_times(operator, OUTAGE_SECONDS)
            condition = netbox_reachable(objects, namespace)

        # The first failed resync comes within one interval, the next ones after 2, 4, 8 s...: never
        # at the base delay each time, which would make about 15 attempts here.
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        assert 4 <= len(attempts) <= 7, attempts
        for index, gap in enumerate(gaps[:3]):
            assert gap >= RETRY_BASE_SECONDS * 2**index - DETECTION_SLACK_SECONDS, gaps
        assert condition is not None and (condition["status"], condition["reason"]) == ("False", "NetBoxUnavailable")
        events = objects.events(namespace, "import")
        assert sum(event[:2] == ("Warning", "NetBoxUnavailable") for event in events) >= len(attempts)

        # Recovery needs no request: the pending retry comes at most RETRY_MAX_SECONDS later.
        wait_for(
            lambda: (netbox_reachable(objects, namespace) or {}).get("status") == "True",
            RETRY_MAX_SECONDS + 30,
            "NetBoxReachable=True after the outage",
        )
    finally:
        operator.stop()
    log = operator.log()
    assert "Traceback" not in log, log[-5000:]
