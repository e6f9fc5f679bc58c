"""argora-metal3 between tenants: which namespace may import which NetBox cluster, and who holds one.

Whoever may annotate a Cluster is a tenant of its namespace; the operator's own record (a ConfigMap in its
namespace) and its allow-list decide, never what a tenant writes on a Cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kubeobjects import Clusters, ensure_secret, wait_for
from argora_dev.operator import OperatorProcess
from argora_dev.seed import NetBoxSeeder, Topology, add_servers

pytestmark = pytest.mark.integration

NETBOX_CLUSTER = "argora.cloud.sap/netbox-cluster"
SYNC_STATUS = "argora.cloud.sap/sync-status"
CLAIMS = "argora-metal3-claims"


class Tenants:
    """Two tenants' namespaces, the operator's own, and a NetBox cluster of two servers."""

    def __init__(self, api: client.ApiClient, seeder: NetBoxSeeder, namespace: str) -> None:
        self.clusters = Clusters(api)
        self.a = namespace
        self.b = f"{namespace[:55]}-b"
        self.own = f"{namespace[:55]}-own"
        for name in (self.b, self.own):
            self.clusters.core.create_namespace({"metadata": {"name": name}})
        ensure_secret(api, self.own, "bmc", {"username": "metal", "password": "three"})
        topology = Topology(seeder, namespace)
        netbox_cluster = topology.cluster("c")
        self.netbox_cluster = netbox_cluster["name"]
        servers = add_servers(topology, netbox_cluster, [f"{namespace}-s1", f"{namespace}-s2"])
        self.servers = {server.name for server in servers}

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "ARGORA_NAMESPACES": f"{self.a},{self.b}",
            "ARGORA_OWN_NAMESPACE": self.own,
            "ARGORA_DEFAULT_BMC_CREDENTIALS": f"{self.own}/bmc",
            **extra,
        }

    def claims(self) -> dict[str, Any]:
        config_map = self.clusters.core.read_namespaced_config_map(CLAIMS, self.own)
        clusters: dict[str, Any] = json.loads(config_map.data["claims.json"]).get("clusters", {})
        return clusters

    def holder(self) -> str | None:
        holder = self.claims().get(self.netbox_cluster, {}).get("holder")
        return f"{holder['namespace']}/{holder['name']}" if holder else None


@pytest.fixture
def tenants(api_client: client.ApiClient, seeder: NetBoxSeeder, namespace: str) -> Tenants:
    return Tenants(api_client, seeder, namespace)


def test_a_forged_sync_status_takes_no_netbox_cluster(
    start_operator: Callable[..., OperatorProcess], tenants: Tenants
) -> None:
    """The forger's Cluster (namespace a) is older, or as old and first by namespace; once b's Cluster
    imported the NetBox cluster, the forger asks for it too and writes the sync-status the importer
    carries. The hosts stay the importer's, the forger gets none, until the importer is deleted."""
    clusters = tenants.clusters
    operator = start_operator("metal3", tenants.env())
    clusters.create(tenants.a, "older")
    clusters.create(tenants.b, "capi", annotations={NETBOX_CLUSTER: tenants.netbox_cluster})
    assert clusters.synced(tenants.b, "capi")["counts"]["created"] == 2
    hosts = clusters.hosts(tenants.b)
    assert set(hosts) == tenants.servers and tenants.holder() == f"{tenants.b}/capi"

    forged = json.dumps({"lastSyncTime": "2020-01-01T00:00:00Z", "netboxCluster": tenants.netbox_cluster})
    clusters.patch(
        tenants.a,
        "older",
        {"metadata": {"annotations": {NETBOX_CLUSTER: tenants.netbox_cluster, SYNC_STATUS: forged}}},
    )
    refused = clusters.synced(tenants.a, "older", after="2020-01-01T00:00:00Z")
    assert refused["error"] == "NetBoxClusterTaken" and f"Cluster {tenants.b}/capi" in refused["message"]
    assert clusters.hosts(tenants.a) == {}
    assert [name for name in clusters.secret_names(tenants.a) if name.startswith("bmc-secret-")] == []
    events = clusters.events(tenants.a, "older")
    assert ("Warning", "NetBoxClusterTaken") in {(kind, reason) for kind, reason, _ in events}
    # The importer's next pass still finds its hosts its own.
    assert clusters.resync(tenants.b, "capi")["counts"]["unchanged"] == 2
    assert {name: host["metadata"]["uid"] for name, host in clusters.hosts(tenants.b).items()} == {
        name: host["metadata"]["uid"] for name, host in hosts.items()
    }

    # Once the importer is deleted, the NetBox cluster is the other's.
    clusters.custom.delete_namespaced_custom_object("cluster.x-k8s.io", "v1beta2", tenants.b, "clusters", "capi")
    # The deletion releases the claim and asks at once for the pass of the Cluster that waited for it,
    # which may take it before the record is ever seen empty.
    importer = f"{tenants.b}/capi"
    wait_for(lambda: tenants.holder() != importer, 60, "the deleted Cluster's claim released")
    # The pass the deletion asks for, or this one: whichever comes first registers the hosts.
    assert "error" not in clusters.resync(tenants.a, "older")
    assert set(clusters.hosts(tenants.a)) == tenants.servers and tenants.holder() == f"{tenants.a}/older"
    assert "Traceback" not in operator.log()


def test_only_allowed_namespaces_import_a_netbox_cluster(
    start_operator: Callable[..., OperatorProcess], tenants: Tenants
) -> None:
    allowed = {tenants.a: [tenants.netbox_cluster.rsplit("-", 1)[0] + "-*"], tenants.b: ["elsewhere-*"]}
    operator = start_operator("metal3", tenants.env(ARGORA_ALLOWED_NETBOX_CLUSTERS=json.dumps(allowed)))
    clusters = tenants.clusters
    clusters.create(tenants.b, "capi", annotations={NETBOX_CLUSTER: tenants.netbox_cluster})
    refused = clusters.synced(tenants.b, "capi")
    assert refused["error"] == "NetBoxClusterNotAllowed" and repr(tenants.b) in refused["message"]
    assert clusters.hosts(tenants.b) == {}
    assert ("Warning", "NetBoxClusterNotAllowed") in {
        (kind, reason) for kind, reason, _ in clusters.events(tenants.b, "capi")
    }
    # A namespace that may not import it never holds it, so it is free for one that may, though younger.
    clusters.create(tenants.a, "capi", annotations={NETBOX_CLUSTER: tenants.netbox_cluster})
    assert clusters.synced(tenants.a, "capi")["counts"]["created"] == 2
    assert set(clusters.hosts(tenants.a)) == tenants.servers and tenants.holder() == f"{tenants.a}/capi"
    assert "Traceback" not in operator.log()


def test_at_the_upgrade_the_importer_keeps_its_hosts(
    start_operator: Callable[..., OperatorProcess], tenants: Tenants
) -> None:
    """No record yet (an earlier Argora kept the claim on the Cluster): the Cluster whose sync-status says
    it imported the NetBox cluster keeps it, although another asking for it is older."""
    clusters = tenants.clusters
    clusters.create(tenants.b, "older", annotations={NETBOX_CLUSTER: tenants.netbox_cluster})
    imported = json.dumps({"lastSyncTime": "2026-01-01T00:00:00Z", "netboxCluster": tenants.netbox_cluster})
    clusters.create(tenants.a, "capi", annotations={NETBOX_CLUSTER: tenants.netbox_cluster, SYNC_STATUS: imported})
    operator = start_operator("metal3", tenants.env())
    assert clusters.synced(tenants.b, "older", after="2026-01-01T00:00:00Z")["error"] == "NetBoxClusterTaken"
    assert clusters.synced(tenants.a, "capi", after="2026-01-01T00:00:00Z")["counts"]["created"] == 2
    assert tenants.holder() == f"{tenants.a}/capi" and clusters.hosts(tenants.b) == {}
    assert "Traceback" not in operator.log()
