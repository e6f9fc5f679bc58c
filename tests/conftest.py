"""Session-wide real parts (kube-apiserver + etcd, NetBox + PostgreSQL + Redis) and per-test isolation.

The servers start only when a test asks for them, once per run, and stop at the end of the run, also
after a failure or Ctrl-C (`argora_dev.process` ends every process it started at exit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster, crd_files
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.process import stop_all
from argora_dev.seed import NetBoxSeeder, unique_prefix


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    cluster = KubeCluster(tmp_path_factory.mktemp("kube"))
    try:
        cluster.start()
        cluster.install_crds(crd_files())
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def netbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetBoxServer]:
    server = NetBoxServer(tmp_path_factory.mktemp("netbox"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def api_client(kube: KubeCluster) -> client.ApiClient:
    api: client.ApiClient = kube.api_client()
    return api


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A run-unique name prefix for the test's own NetBox and Kubernetes objects."""
    return unique_prefix(request.node.name)


@pytest.fixture
def seeder(netbox: NetBoxServer) -> NetBoxSeeder:
    return NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))


@pytest.fixture
def namespace(api_client: client.ApiClient, prefix: str) -> str:
    """A namespace of the test's own (left behind: without kube-controller-manager it never finalizes)."""
    name = prefix[:63].rstrip("-")
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture
def operator_env(kube: KubeCluster, netbox: NetBoxServer) -> dict[str, str]:
    """The environment a controller gets in production, pointed at the test servers."""
    return operator_environment(kube, netbox, netbox.readonly_v2_token, ARGORA_NETBOX_RETRIES="3")


@pytest.fixture
def start_operator(tmp_path: Path, operator_env: dict[str, str]) -> Iterator[Callable[..., OperatorProcess]]:
    """Start `argora-<name>` with the default environment plus `env`; stopped after the test."""
    started: list[OperatorProcess] = []

    def start(name: str, env: Mapping[str, str] | None = None) -> OperatorProcess:
        process = OperatorProcess(name, tmp_path, {**operator_env, **(env or {})}).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_all()
