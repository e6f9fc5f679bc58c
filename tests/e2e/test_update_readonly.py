"""argora-update with a NetBox token that may only read: a clear error, and NetBox stays as it was.

A module of its own: two argora-update processes share one Lease, and one of them would stand by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Topology, add_servers, interface_names

pytestmark = pytest.mark.integration


def test_a_read_only_token_gets_a_clear_error(
    kube: KubeCluster, netbox: NetBoxServer, api_client: client.ApiClient, namespace: str, seeder: NetBoxSeeder,
    prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    objects = Objects(api_client)
    operator = OperatorProcess("update", tmp_path, operator_environment(kube, netbox, netbox.readonly_v2_token)).start()
    try:
        topology = Topology(seeder, prefix)
        cluster = topology.cluster("c")
        (server,) = add_servers(topology, cluster, [f"{prefix}-s"], set_oob_ip=False, interface_name="iDRAC")
        objects.create_import(namespace, "fix", {"clusters": [{"name": cluster["name"]}]}, kind="Update")

        def ready() -> dict[str, Any] | None:
            conditions = ((objects.get_import(namespace, "fix", "Update") or {}).get("status") or {}).get("conditions")
            return next((c for c in conditions or [] if c["type"] == "Ready"), None)

        condition = wait_for(ready, 60, "Ready condition")
        assert condition["status"] == "False" and condition["reason"] == "NetBoxWriteForbidden"
        assert "the NetBox token may not write" in condition["message"]
        assert interface_names(seeder, server.device) == ["iDRAC"]
        assert any(reason == "NetBoxWriteForbidden" for _, reason, _ in objects.events(namespace, "fix"))
    finally:
        operator.stop()
