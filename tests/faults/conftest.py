"""The fault suite's parts: NetBox with 1,000 imported devices, Toxiproxy, the HTTP fault layer, the
controllers started with recognisable secrets, and the table of figures.

`make faults` runs every module here; `make test` runs those without the `faults` mark (the quick
ones). Each scenario adds a row to `argora_dev.faults.TABLE`; the terminal summary prints the table and
writes it to .work/faults/table.md, and, when the run passed and ARGORA_FAULTS_REPORT names a page
(`make faults` sets docs/reports/faults.md), into that page's generated section. The credentials,
tokens and webhook secret given to every controller here are recognisable (`SECRETS`):
test_zz_no_secret_leaked.py, run last, looks for them in everything the controllers wrote.
"""

from __future__ import annotations

import os
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from argora_dev import REPO_ROOT
from argora_dev.faults import TABLE, FaultyNetBox
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, wait_for
from argora_dev.netbox import NETBOX_VERSION, NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.process import cache_dir, free_port
from argora_dev.reports import generated_line, machine_facts, write_section
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_servers, skip_taken_addresses
from argora_dev.toxiproxy import Toxiproxy

DEVICES = 1000
INVENTORY = "faults"  # Topology prefix: its cluster is faults-c1000
CLUSTER = f"{INVENTORY}-c{DEVICES}"
DUMP = cache_dir() / f"netbox-{NETBOX_VERSION}" / f"faults-{DEVICES}-devices.dump"
TABLE_FILE = REPO_ROOT / ".work" / "faults" / "table.md"


@dataclass(frozen=True)
class Recognisable:
    """Values that must never show up in anything a controller writes (scenario 9)."""

    bmc_username: str
    bmc_password: str
    webhook_secret: str

    def credentials(self) -> dict[str, str]:
        return {"username": self.bmc_username, "password": self.bmc_password}


SECRETS = Recognisable(
    f"fault-user-{secrets.token_hex(6)}", f"fault-pass-{secrets.token_hex(12)}", f"fault-hook-{secrets.token_hex(12)}"
)


@dataclass(frozen=True)
class Inventory:
    """The NetBox cluster of DEVICES servers every scenario imports: device names and their ids."""

    cluster: str
    devices: Mapping[str, int]


# Every controller the suite started, to look through its log and its last metrics at the end.
STARTED: list[OperatorProcess] = []


@pytest.fixture(scope="session")
def netbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetBoxServer]:
    """NetBox restored from the cached 1,000-device dump when there is one (seeded and dumped otherwise)."""
    server = NetBoxServer(tmp_path_factory.mktemp("netbox"))
    try:
        server.start(dump=DUMP if DUMP.is_file() else None)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def inventory(netbox: NetBoxServer) -> Inventory:
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    if not seeder.get("virtualization/clusters", name=CLUSTER):
        seed_inventory(seeder)
        netbox.dump_to(DUMP)
    skip_taken_addresses(seeder)
    devices = seeder.get("dcim/devices", cluster=CLUSTER, fields="id,name")
    return Inventory(CLUSTER, {device["name"]: device["id"] for device in devices})


def seed_inventory(seeder: NetBoxSeeder) -> list[Server]:
    """DEVICES servers as production NetBox holds them: mostly a primary MAC on the BMC port, some with
    MACs only assigned, some with two; a tenth with the vendor's port name (iDRAC)."""
    topology = Topology(seeder, INVENTORY)
    cluster = topology.cluster(f"c{DEVICES}", tenant=topology.tenant["id"])
    names = [f"{INVENTORY}-n{index:04d}" for index in range(DEVICES)]
    tenth = DEVICES // 10
    return [
        *add_servers(topology, cluster, names[: -3 * tenth]),
        *add_servers(topology, cluster, names[-3 * tenth : -2 * tenth], mac_shape="assigned"),
        *add_servers(topology, cluster, names[-2 * tenth : -tenth], mac_shape="two-with-primary"),
        *add_servers(topology, cluster, names[-tenth:], interface_name="iDRAC"),
    ]


@pytest.fixture(scope="session")
def toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxiproxy]:
    server = Toxiproxy(tmp_path_factory.mktemp("toxiproxy")).start()
    yield server
    server.stop()


@pytest.fixture
def faulty_netbox(netbox: NetBoxServer) -> Iterator[FaultyNetBox]:
    """The HTTP fault layer in front of the session's NetBox, passing everything through until told."""
    layer = FaultyNetBox(netbox.url).start()
    yield layer
    layer.stop()


@pytest.fixture(scope="session")
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


@pytest.fixture
def credentials_secret(objects: Objects, namespace: str) -> str:
    """A BMC credentials Secret with the recognisable values, opted in, in the test's namespace."""
    objects.create_secret(namespace, "bmc", SECRETS.credentials())
    return "bmc"


@pytest.fixture
def fault_env(kube: KubeCluster, netbox: NetBoxServer) -> dict[str, str]:
    """A controller's environment for the fault suite: the read-only NetBox token, the recognisable
    webhook secret (so a leak of it would show), and bounded NetBox retries."""
    return operator_environment(
        kube, netbox, netbox.readonly_v2_token,
        ARGORA_WEBHOOK_SECRET=SECRETS.webhook_secret,
        ARGORA_NETBOX_RETRIES="3",
        ARGORA_NETBOX_TIMEOUT_SECONDS="30",
    )  # fmt: skip


@pytest.fixture
def start_controller(tmp_path: Path, fault_env: dict[str, str]) -> Iterator[Callable[..., OperatorProcess]]:
    """Start `argora-<name>` with the fault suite's environment plus `env`; its metrics are kept in a file
    next to its log when it stops (the leak check reads both), and it is stopped after the test."""
    started: list[OperatorProcess] = []

    def start(name: str, env: Mapping[str, str] | None = None, workdir: Path | None = None) -> OperatorProcess:
        # The webhook secret turns the webhook server on: each process needs a port of its own.
        own = {"ARGORA_WEBHOOK_PORT": str(free_port()), **fault_env, **(env or {})}
        process = OperatorProcess(name, workdir or tmp_path, own).start()
        started.append(process)
        STARTED.append(process)
        return process

    yield start
    for process in started:
        stop_keeping_metrics(process)


def stop_keeping_metrics(process: OperatorProcess) -> None:
    """Stop a controller; what its /metrics said last stays next to its log."""
    if process.process.poll() is None:
        try:
            with urllib.request.urlopen(process.metrics_url, timeout=10) as response:
                metrics_file(process).write_bytes(response.read())
        except OSError:
            pass  # not serving (killed, or still starting): its log is what there is
    process.stop()


def metrics_file(process: OperatorProcess) -> Path:
    return process.process.log_path.with_suffix(".metrics")


@pytest.fixture
def clean_bmcs(objects: Objects, start_controller: Callable[..., OperatorProcess]) -> Iterator[None]:
    """BMCs and BMCSecrets are cluster-scoped and named by device: the next scenario importing the same
    devices must start without the last one's. The test's controllers are stopped first: a running one
    would put them back. (Depending on `start_controller` does not see to that: pytest ends a fixture
    before the fixtures it depends on.) The scenario's ClusterImports go too (kopf's finalizer cleared:
    no controller runs to remove it), or a later scenario's cluster-wide replicas would import the same
    devices for them."""
    yield
    for process in STARTED:
        stop_keeping_metrics(process)
    imports = objects.custom.list_cluster_custom_object("argora.cloud.sap", "v1alpha1", "clusterimports")["items"]
    for item in imports:
        namespace, name = item["metadata"]["namespace"], item["metadata"]["name"]
        objects.patch_import(namespace, name, {"metadata": {"finalizers": None}})
        objects.delete_import(namespace, name)
    for plural in ("bmcs", "bmcsecrets"):
        objects.custom.delete_collection_cluster_custom_object(
            "metal.ironcore.dev", "v1alpha1", plural, label_selector="app.kubernetes.io/managed-by=argora-ironcore"
        )
    wait_for(
        lambda: not objects.list_metal("bmcs") and not objects.list_metal("bmcsecrets"),
        300,
        "BMCs and BMCSecrets of the scenario deleted",
    )


@pytest.fixture(autouse=True)
def release_netbox_clusters(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the API server, its Cluster API Clusters asking for NetBox hosts go: one
    NetBox cluster belongs to one Cluster (argora-metal3 refuses a second one), and the next scenario
    importing the same inventory (faults-c1000) asks for it from a namespace of its own."""
    yield
    if "api_client" not in request.fixturenames:
        return
    custom = client.CustomObjectsApi(request.getfixturevalue("api_client"))
    for cluster in custom.list_cluster_custom_object("cluster.x-k8s.io", "v1beta2", "clusters")["items"]:
        metadata = cluster["metadata"]
        if "argora.cloud.sap/netbox-cluster" in (metadata.get("annotations") or {}):
            custom.delete_namespaced_custom_object(
                "cluster.x-k8s.io", "v1beta2", metadata["namespace"], "clusters", metadata["name"]
            )


def converged(probe: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds until `probe` is truthy (from now, i.e. from the end of the fault)."""
    started = time.monotonic()
    wait_for(probe, timeout, what)
    return time.monotonic() - started


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    if not TABLE.rows:
        return
    TABLE.write(TABLE_FILE)
    terminalreporter.section("What Argora survives (fault suite)")
    terminalreporter.write(TABLE.markdown())
    terminalreporter.write_line(f"(also in {TABLE_FILE.relative_to(REPO_ROOT)})")
    report = os.environ.get("ARGORA_FAULTS_REPORT")
    if report and exitstatus == 0:  # a failed run's table lacks rows: the page keeps the last full one
        header = generated_line("make faults", datetime.now(UTC), machine_facts(f"NetBox {NETBOX_VERSION}"))
        write_section(REPO_ROOT / report, "faults", header + "\n\n" + TABLE.markdown())
        terminalreporter.write_line(f"(and in {report})")
