"""argora-ipaddress stopped, with NetBox down, with a read-only token, in a dry run: each test starts its
own process.

A module of its own: the shared argora-ipaddress of test_ipaddress.py would run passes over these
IPAddresses too (one pass covers every IPAddress of the cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Machines, Pools, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.process import free_port
from argora_dev.seed import NetBoxSeeder
from tests.e2e.test_ipaddress import SYNC, Rack, synced

pytestmark = pytest.mark.integration

type Start = Callable[..., OperatorProcess]


@pytest.fixture
def machines(api_client: client.ApiClient) -> Machines:
    return Machines(api_client)


@pytest.fixture
def rack(seeder: NetBoxSeeder, api_client: client.ApiClient, machines: Machines, prefix: str) -> Rack:
    return Rack(seeder, machines, Pools(api_client), prefix)


@pytest.fixture
def start(kube: KubeCluster, netbox: NetBoxServer, tmp_path: Path) -> Start:
    def started(token: str, **env: str) -> OperatorProcess:
        environment = operator_environment(kube, netbox, token, ARGORA_RETRY_BASE_SECONDS="1", **env)
        return OperatorProcess("ipaddress", tmp_path, environment).start()

    return started


def test_an_address_deleted_while_the_operator_is_down_is_released_on_its_next_pass(
    start: Start, netbox: NetBoxServer, machines: Machines, rack: Rack, namespace: str
) -> None:
    operator = start(netbox.v2_token)
    rack.neighbour(namespace)
    machines.claim(namespace, "m1", rack.device["name"], rack.pool)
    machines.address(namespace, "m1", rack.pool, rack.host(10), 24)
    synced(machines, namespace, "m1")
    operator.stop()
    # No finalizer of ours: the IPAddress goes at once though nobody is there to let it go.
    machines.delete_address(namespace, "m1")
    assert machines.get_address(namespace, "m1") is None
    assert rack.netbox_address(10) is not None
    operator = start(netbox.v2_token)
    try:
        wait_for(lambda: rack.netbox_address(10) is None, what="released address deleted")
    finally:
        operator.stop()


# (token, environment, the reason on the IPAddress): NetBox down, and a token that may not write.
FAILURES: dict[str, tuple[str, dict[str, str], str]] = {
    "netbox down": ("write", {"ARGORA_NETBOX_RETRIES": "1"}, "NetBoxUnavailable"),
    "read-only token": ("read", {}, "NetBoxWriteForbidden"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failing_pass_writes_nothing_and_says_why(
    start: Start, netbox: NetBoxServer, machines: Machines, rack: Rack, namespace: str, case: str
) -> None:
    token, env, reason = FAILURES[case]
    if case == "netbox down":
        # Nothing listens there: every request fails as when NetBox is down.
        env = {**env, "ARGORA_NETBOX_URL": f"http://127.0.0.1:{free_port()}"}
    operator = start(netbox.v2_token if token == "write" else netbox.readonly_v2_token, **env)
    try:
        machines.claim(namespace, "m1", rack.device["name"], rack.pool)
        machines.address(namespace, "m1", rack.pool, rack.host(10), 24)
        annotations = synced(machines, namespace, "m1", "Error")
        assert reason in annotations[SYNC]
    finally:
        operator.stop()
    assert rack.netbox_address(10) is None


def test_a_dry_run_says_what_it_would_write_and_writes_nothing(
    start: Start, netbox: NetBoxServer, machines: Machines, rack: Rack, namespace: str
) -> None:
    operator = start(netbox.v2_token, ARGORA_DRY_RUN="true")
    try:
        machines.claim(namespace, "m1", rack.device["name"], rack.pool)
        machines.address(namespace, "m1", rack.pool, rack.host(10), 24)
        annotations = synced(machines, namespace, "m1")
        assert "dry run, would create the address and make it primary" in annotations[SYNC]
    finally:
        operator.stop()
    assert rack.netbox_address(10) is None
    assert rack.primary_ip4() is None


def test_a_mass_release_trips_the_breaker_until_it_is_let_through(
    start: Start, netbox: NetBoxServer, machines: Machines, rack: Rack, namespace: str, prefix: str
) -> None:
    """Most of argora-ipaddress's NetBox addresses losing their IPAddresses at once (a `clusterctl move`, a
    restore, a wrong kubeconfig) keeps them in NetBox and says so; a person lets the release through."""
    names = [f"m{n}" for n in range(7)]
    # A tag of this test's own: the breaker weighs the releases against the addresses carrying it.
    operator = start(netbox.v2_token, ARGORA_CREATED_TAG=prefix[:50])
    try:
        rack.neighbour(namespace)
        for offset, name in enumerate(names, start=10):
            machines.claim(namespace, name, rack.device["name"], rack.pool)
            machines.address(namespace, name, rack.pool, rack.host(offset), 24)
        for name in names:
            synced(machines, namespace, name)
        for name in names:
            machines.delete_address(namespace, name)
        wait_for(lambda: operator.metric("argora_ipaddress_releases_held") == len(names) or None, what="held")
        assert all(rack.netbox_address(offset) is not None for offset in range(10, 17))
        assert "the release breaker tripped" in operator.log()
    finally:
        operator.stop()
    operator = start(netbox.v2_token, ARGORA_CREATED_TAG=prefix[:50], ARGORA_RELEASE_BREAKER_PERCENT="100")
    try:
        wait_for(lambda: all(rack.netbox_address(offset) is None for offset in range(10, 17)) or None, what="released")
    finally:
        operator.stop()
