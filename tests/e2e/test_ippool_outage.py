"""argora-ippool while NetBox cannot be reached: the IPPoolImport reports it, and no pool is written,
changed or deleted.

A module of its own: the shared argora-ippool of test_ippool.py watches every namespace and reaches
NetBox; it would run passes over this IPPoolImport too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, Pools, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.process import free_port

pytestmark = pytest.mark.integration


def test_netbox_down_writes_nothing(
    kube: KubeCluster, netbox: NetBoxServer, api_client: client.ApiClient, namespace: str, prefix: str, tmp_path: Path
) -> None:
    objects, pools = Objects(api_client), Pools(api_client)
    # A pool this IPPoolImport wrote before the outage: a failed read must not prune it.
    owner = {
        "argora.cloud.sap/owner-namespace": namespace,
        "argora.cloud.sap/owner-name": "pools",
        "app.kubernetes.io/managed-by": "argora-ippool",
    }
    kept = f"{prefix}-kept"
    pools.create(kept, {"addresses": ["100.127.0.0/24"], "prefix": 24, "gateway": "100.127.0.1"}, labels=owner)
    env = operator_environment(
        kube, netbox, netbox.readonly_v2_token,
        # Nothing listens there: every request fails as when NetBox is down.
        ARGORA_NETBOX_URL=f"http://127.0.0.1:{free_port()}",
        ARGORA_NAMESPACES=namespace,
        ARGORA_NETBOX_RETRIES="1",
        ARGORA_RETRY_BASE_SECONDS="2",
    )  # fmt: skip
    operator = OperatorProcess("ippool", tmp_path, env).start()
    try:
        objects.create_import(namespace, "pools", {"ippools": [{"namePrefix": "np", "region": "any"}]}, "IPPoolImport")

        def unreachable() -> dict[str, Any] | None:
            obj = objects.get_import(namespace, "pools", "IPPoolImport") or {}
            status = obj.get("status") or {}
            conditions = {c["type"]: c for c in status.get("conditions", [])}
            reachable = conditions.get("NetBoxReachable")
            return status if reachable and reachable["status"] == "False" else None

        status = wait_for(unreachable, timeout=60, what="NetBoxReachable False")
        assert status["state"] == "Error"
        assert "NetBox" in status["description"]
        assert set(pools.owned(namespace, "pools")) == {kept}
        pool = pools.get(kept)
        assert pool is not None and pool["spec"]["addresses"] == ["100.127.0.0/24"]
        assert any(reason == "NetBoxUnavailable" for _, reason, _ in objects.events(namespace, "pools")), (
            objects.events(namespace, "pools")
        )
    finally:
        operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-5000:]
