"""NetBox changes reach Kubernetes without a resync: argora-ironcore following NetBox's change log, and
NetBox's own webhooks delivered by its background worker, against the real API server and NetBox.

The resync is an hour away in every test here, so whatever happens within a test's wait came from a
NetBox change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, ensure_secret, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_servers

pytestmark = pytest.mark.integration

SECRET_NAMESPACE = "argora-system"
CREDENTIALS = {"username": "changes-user", "password": "changes-pass"}
# Long enough for several looks at the change log after the change (one a second).
QUIET_SECONDS = 4.0


@pytest.fixture(scope="module")
def objects(api_client: client.ApiClient) -> Objects:
    ensure_secret(api_client, SECRET_NAMESPACE, "bmc-changes", CREDENTIALS)
    return Objects(api_client)


def start_ironcore(kube: KubeCluster, netbox: NetBoxServer, workdir: Any, **extra: str) -> OperatorProcess:
    env = operator_environment(
        kube, netbox, netbox.readonly_v2_token,
        ARGORA_DEFAULT_BMC_CREDENTIALS=f"{SECRET_NAMESPACE}/bmc-changes",
        **extra,
    )  # fmt: skip
    return OperatorProcess("ironcore", workdir, env).start()


@pytest.fixture(scope="module")
def polling(
    kube: KubeCluster, netbox: NetBoxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """argora-ironcore looking at NetBox's change log every second, no webhooks."""
    operator = start_ironcore(kube, netbox, tmp_path_factory.mktemp("polling"), ARGORA_NETBOX_CHANGES_INTERVAL="1")
    yield operator
    operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


class Slice:
    """Cluster A (imported) with three servers, cluster B (not imported) with one."""

    def __init__(self, seeder: NetBoxSeeder, prefix: str) -> None:
        self.seeder = seeder
        self.prefix = prefix
        self.a = Topology(seeder, f"{prefix}-a")
        self.b = Topology(seeder, f"{prefix}-b")
        self.cluster_a = self.a.cluster("c")
        self.cluster_b = self.b.cluster("c")
        self.servers = add_servers(self.a, self.cluster_a, [f"{prefix}-a{i}" for i in range(3)])
        self.other = add_servers(self.b, self.cluster_b, [f"{prefix}-b0"])


def import_cluster(objects: Objects, namespace: str, the_slice: Slice) -> None:
    objects.create_import(namespace, "import", {"clusters": [{"name": the_slice.cluster_a["name"]}]})
    objects.synced_import(namespace, "import")


def bmc(objects: Objects, server: Server) -> dict[str, Any] | None:
    return objects.get_metal("bmcs", server.name)


def passes_logged(operator: OperatorProcess, namespace: str) -> int:
    return operator.log().count(f"ClusterImport {namespace}/import synced")


def test_change_log_brings_dns_name_offline_and_new_device(
    polling: OperatorProcess, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    the_slice = Slice(seeder, prefix)
    import_cluster(objects, namespace, the_slice)
    first, second, _ = the_slice.servers
    assert bmc(objects, first) is not None

    seeder.update("ipam/ip-addresses", first.ip["id"], dns_name=f"{first.name}-renamed.example.com")
    wait_for(
        lambda: (bmc(objects, first) or {}).get("spec", {}).get("hostname") == f"{first.name}-renamed.example.com",
        30, "BMC hostname from the new DNS name",
    )  # fmt: skip

    seeder.update("dcim/devices", second.device["id"], status="offline")
    wait_for(lambda: bmc(objects, second) is None, 30, "BMC of the offline device gone")

    (new,) = add_servers(the_slice.a, the_slice.cluster_a, [f"{prefix}-a9"])
    wait_for(lambda: bmc(objects, new), 30, "BMC of the new device")


def test_unrelated_change_starts_no_pass(
    polling: OperatorProcess, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    the_slice = Slice(seeder, prefix)
    import_cluster(objects, namespace, the_slice)
    # Whatever the seeding started has run its course.
    time.sleep(QUIET_SECONDS)
    before = passes_logged(polling, namespace)

    (other,) = the_slice.other
    seeder.update("ipam/ip-addresses", other.ip["id"], dns_name=f"{other.name}-renamed.example.com")
    seeder.update("dcim/devices", other.device["id"], status="planned")
    time.sleep(QUIET_SECONDS)
    assert passes_logged(polling, namespace) == before

    # The same kind of change on an imported device does start one.
    first = the_slice.servers[0]
    seeder.update("ipam/ip-addresses", first.ip["id"], dns_name=f"{first.name}-moved.example.com")
    wait_for(lambda: passes_logged(polling, namespace) > before, 30, "a pass for the imported device's change")
