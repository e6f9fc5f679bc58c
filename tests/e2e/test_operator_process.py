"""Each controller's console script, run as a process the way a Deployment runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.webhook import PATH, signature
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, run_console_script
from argora_dev.process import free_port, http_ok, wait_until

pytestmark = pytest.mark.integration

CONTROLLERS = ["ironcore", "metal3", "update", "ippool", "ipaddress"]
NETBOX = {"ARGORA_NETBOX_URL": "http://netbox.invalid"}


@pytest.mark.parametrize("name", CONTROLLERS)
def test_help_lists_every_setting(name: str) -> None:
    result = run_console_script(name, {}, "--help")
    assert result.returncode == 0
    for variable in ("ARGORA_NETBOX_URL", "ARGORA_NETBOX_TOKEN_FILE", "ARGORA_METRICS_PORT", "ARGORA_HEALTH_PORT"):
        assert variable in result.stdout


@pytest.mark.parametrize("name", CONTROLLERS)
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "ARGORA_NETBOX_URL: Field required"),
        (
            {"ARGORA_NETBOX_URL": "http://nb", "ARGORA_NETBOX_TOKEN": "t", "ARGORA_METRICS_PORT": "0"},
            "ARGORA_METRICS_PORT",
        ),
        (
            {"ARGORA_NETBOX_URL": "http://nb", "ARGORA_NETBOX_TOKEN_FILE": "/nonexistent"},
            "cannot read file /nonexistent",
        ),
    ],
)
def test_a_bad_setting_stops_the_controller_with_one_line(name: str, env: dict[str, str], expected: str) -> None:
    result = run_console_script(name, env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"argora-{name}: invalid configuration:")
    assert expected in result.stderr


def test_a_token_netbox_rejects_stops_the_controller_with_one_line(
    netbox: NetBoxServer, operator_env: dict[str, str]
) -> None:
    result = run_console_script("ironcore", {**operator_env, "ARGORA_NETBOX_TOKEN": "nbt_unknown.token"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "NetBox rejected our request, check ARGORA_NETBOX_TOKEN" in result.stderr
    assert "unknown.token" not in result.stderr


@pytest.mark.parametrize("name", CONTROLLERS)
@pytest.mark.parametrize(
    ("kubeconfig", "expected"),
    [
        (None, "No configuration found"),
        ("clusters: [\n", "while parsing"),
        ("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n", "current-context"),
    ],
    ids=["missing", "not-yaml", "no-context"],
)
def test_a_bad_kubeconfig_stops_the_controller_with_one_line(
    name: str, kubeconfig: str | None, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "kubeconfig"
    if kubeconfig is not None:
        path.write_text(kubeconfig)
    result = run_console_script(name, {**NETBOX, "ARGORA_NETBOX_TOKEN": "t", "KUBECONFIG": str(path)})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"argora-{name}: no usable Kubernetes configuration (not in a Pod; $KUBECONFIG=")
    assert expected in result.stderr


@contextmanager
def forwarding(port: int, upstream: str) -> Iterator[None]:
    """Loopback `port` forwards TCP to `upstream` (a URL's host and port) from now to the end of the block."""
    target = urlsplit(upstream)
    server = socket.create_server(("127.0.0.1", port))
    stopped = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with source, sink, suppress(OSError):  # the other direction ended first and closed both
            while data := source.recv(65536):
                sink.sendall(data)

    def accept() -> None:
        while not stopped.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            backend = socket.create_connection((target.hostname or "127.0.0.1", target.port or 443))
            for a, b in ((client, backend), (backend, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield
    finally:
        stopped.set()
        server.close()


def test_ipaddress_waits_for_an_api_server_that_is_not_there_yet(
    kube: KubeCluster, operator_env: dict[str, str], tmp_path: Path
) -> None:
    """argora-ipaddress asks the API server which IPAddress version it serves before kopf runs: while
    nothing answers it asks again, and it starts once the API server is there. Standalone, as in
    docker-compose.yml."""
    port = free_port()
    config = yaml.safe_load(kube.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig = tmp_path / "kubeconfig-late"
    kubeconfig.write_text(yaml.safe_dump(config))
    env = {**operator_env, "KUBECONFIG": str(kubeconfig), "ARGORA_STANDALONE": "true"}
    operator = OperatorProcess("ipaddress", tmp_path, env)
    operator.process.start()
    try:
        wait_until(
            lambda: operator.log().count("The Kubernetes API server is not reachable yet") >= 2,
            60,
            "argora-ipaddress asking the API server again",
            operator.process,
        )
        with forwarding(port, kube.server_url):
            try:
                wait_until(lambda: http_ok(operator.health_url), 90, "argora-ipaddress health", operator.process)
            finally:
                operator.stop()
    finally:
        operator.stop()
    assert "Traceback" not in operator.log()


@pytest.mark.parametrize("name", CONTROLLERS)
def test_controller_serves_health_and_metrics(name: str, start_operator: Callable[..., OperatorProcess]) -> None:
    operator = start_operator(name)
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        metrics = response.read().decode()
    # The start-up check of NetBox's status went through the counted session.
    assert 'argora_netbox_requests_total{code="200",endpoint="status",method="GET"} 1.0' in metrics
    assert "_created" not in metrics
    assert "Traceback" not in operator.log()


def test_controller_authenticates_with_a_token_file(
    tmp_path: Path, netbox: NetBoxServer, start_operator: Callable[..., OperatorProcess]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(netbox.readonly_v2_token)
    # An empty variable counts as unset, as Helm renders an unset value.
    operator = start_operator("ironcore", {"ARGORA_NETBOX_TOKEN": "", "ARGORA_NETBOX_TOKEN_FILE": str(token_file)})
    assert "NetBox 4.7" in operator.log()


def test_controller_stops_on_sigterm(start_operator: Callable[..., OperatorProcess]) -> None:
    operator = start_operator("update")
    operator.process.stop(timeout=30)
    wait_until(lambda: operator.process.poll() is not None, 30, "argora-update exit")
    assert "Traceback" not in operator.log()


def test_unreachable_netbox_at_start_is_only_a_warning(start_operator: Callable[..., OperatorProcess]) -> None:
    operator = start_operator(
        "metal3", {"ARGORA_NETBOX_URL": f"http://127.0.0.1:{free_port()}", "ARGORA_NETBOX_RETRIES": "1"}
    )
    assert "NetBox is not reachable yet, reconciles will retry" in operator.log()


def standing(operator: OperatorProcess) -> float | None:
    """`argora_peering_active` now (1 active, 0 standing by); None once the process no longer answers."""
    try:
        return operator.metric("argora_peering_active")
    except OSError:
        return None


def lease_holder(api_client: client.ApiClient, namespace: str, name: str) -> str | None:
    """The Lease's holderIdentity; None while there is no Lease or nobody holds it."""
    try:
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


def passes_run(operator: OperatorProcess) -> float:
    return operator.metric("argora_reconcile_duration_seconds_count")


def replicas_of_update(start_operator: Callable[..., OperatorProcess], namespace: str) -> dict[str, OperatorProcess]:
    """Two argora-update replicas named as pods are (POD_ID), their Lease in the test's namespace."""
    return {
        pod: start_operator(
            "update", {"ARGORA_NAMESPACES": namespace, "ARGORA_OWN_NAMESPACE": namespace, "POD_ID": pod}
        )
        for pod in ("argora-update-a", "argora-update-b")
    }


def test_two_replicas_one_holds_the_lease_and_runs_passes_the_other_stands_by_until_it_stops(
    start_operator: Callable[..., OperatorProcess], namespace: str, api_client: client.ApiClient
) -> None:
    replicas = replicas_of_update(start_operator, namespace)
    holder = wait_for(lambda: lease_holder(api_client, namespace, "argora-update"), 60, "a replica holding the Lease")
    leader = replicas[holder]
    (standby_pod,) = [pod for pod in replicas if pod != holder]
    standby = replicas[standby_pod]
    wait_for(lambda: standing(leader) == 1, 30, "the holder reporting itself active")
    assert standing(standby) == 0

    # A pass asked for now runs in the holder alone (an Update of a cluster NetBox does not have ends
    # in a status all the same).
    objects = Objects(api_client)
    objects.create_import(namespace, "probe", {"clusters": [{"name": f"{namespace}-absent"}]}, kind="Update")
    wait_for(
        lambda: ((objects.get_import(namespace, "probe", "Update") or {}).get("status") or {}).get("state"),
        120,
        "the Update's pass",
    )
    assert passes_run(leader) >= 1
    assert passes_run(standby) == 0 and standby.metric("argora_kube_writes_total") == 0
    assert standing(standby) == 0 and lease_holder(api_client, namespace, "argora-update") == holder

    # A graceful stop releases the Lease: the standby need not wait out its term.
    leader.stop()
    wait_for(lambda: lease_holder(api_client, namespace, "argora-update") == standby_pod, 30, "the standby taking over")
    wait_for(lambda: standing(standby) == 1, 30, "the new holder reporting itself active")
    assert "released the Lease" in leader.log()
    assert "Traceback" not in leader.log() + standby.log()


def test_a_holder_frozen_past_its_term_is_replaced_and_exits_when_it_runs_again(
    start_operator: Callable[..., OperatorProcess], namespace: str, api_client: client.ApiClient
) -> None:
    """A holder that cannot renew (here frozen with SIGSTOP, as a stalled node or a cut would leave it):
    the standby takes the Lease once it saw it unchanged for its term; the old holder, continued, exits
    instead of writing next to the new one."""
    replicas = {
        pod: start_operator(
            "update",
            {
                "ARGORA_NAMESPACES": namespace,
                "ARGORA_OWN_NAMESPACE": namespace,
                "POD_ID": pod,
                "ARGORA_PEERING_LIFETIME_SECONDS": "10",
            },
        )
        for pod in ("argora-update-a", "argora-update-b")
    }
    holder = wait_for(lambda: lease_holder(api_client, namespace, "argora-update"), 60, "a replica holding the Lease")
    (other,) = [pod for pod in replicas if pod != holder]
    frozen = replicas[holder]
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: lease_holder(api_client, namespace, "argora-update") == other, 120, "the standby taking over")
        wait_for(lambda: standing(replicas[other]) == 1, 30, "the new holder reporting itself active")
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
    wait_for(lambda: frozen.process.poll() is not None, 30, "the frozen holder exiting")
    assert frozen.process.poll() == 1
    assert "exiting, to be restarted as a new replica that stands by" in frozen.log()
    assert lease_holder(api_client, namespace, "argora-update") == other


HOOK_SECRET = "argora-tests-webhook-secret"
HOOK_SERVICE = "argora-update-webhook"
HOOK_BODY = json.dumps({"event": "updated", "object_type": "dcim.device", "data": {"id": 1}}).encode()


def post_change(port: int) -> int:
    """A change signed as NetBox signs it, POSTed to the replica serving the webhook on `port`; the answer's
    status."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{PATH}",
        data=HOOK_BODY,
        headers={"Content-Type": "application/json", "X-Hook-Signature": signature(HOOK_SECRET, HOOK_BODY)},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def webhook_slice(api_client: client.ApiClient, namespace: str) -> Any:
    try:
        return client.DiscoveryV1Api(api_client).read_namespaced_endpoint_slice(HOOK_SERVICE, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def named_endpoint(api_client: client.ApiClient, namespace: str) -> tuple[str, int] | None:
    """The one address and port the webhook Service's EndpointSlice names, once it names one."""
    found = webhook_slice(api_client, namespace)
    if found is None or len(found.endpoints or []) != 1 or len(found.ports or []) != 1:
        return None
    (address,) = found.endpoints[0].addresses
    return str(address), int(found.ports[0].port)


def test_the_webhook_service_names_the_active_replica_alone_and_a_standby_answers_503(
    start_operator: Callable[..., OperatorProcess], namespace: str, api_client: client.ApiClient
) -> None:
    """Two replicas of argora-update with the webhook on, as the chart runs them (ARGORA_WEBHOOK_SERVICE,
    POD_IP; the operator's own namespace is the test's), each with its own pod IP and port: the active one
    writes the EndpointSlice naming itself alone, a change sent to the standby is refused (NetBox would log
    the failure) and one sent to the active replica is taken; when the active one stops, the other takes
    over and the slice names it. The API server refuses loopback addresses in an EndpointSlice: the pod IPs
    are documentation addresses, and the port the slice names reaches its replica on loopback."""
    replicas: dict[tuple[str, int], OperatorProcess] = {}
    for ip in ("192.0.2.1", "192.0.2.2"):
        port = free_port()
        replicas[ip, port] = start_operator(
            "update",
            {
                "ARGORA_NAMESPACES": namespace,
                "ARGORA_OWN_NAMESPACE": namespace,
                "ARGORA_WEBHOOK_PORT": str(port),
                "ARGORA_WEBHOOK_SECRET": HOOK_SECRET,
                "ARGORA_WEBHOOK_SERVICE": HOOK_SERVICE,
                "POD_IP": ip,
            },
        )
    first = wait_for(lambda: named_endpoint(api_client, namespace), 120, "the slice naming a replica")
    assert first in replicas
    (standby,) = [endpoint for endpoint in replicas if endpoint != first]
    written = webhook_slice(api_client, namespace)
    assert written.address_type == "IPv4"
    assert written.metadata.labels == {
        "kubernetes.io/service-name": HOOK_SERVICE,
        "endpointslice.kubernetes.io/managed-by": "argora.cloud.sap",
    }
    assert written.ports[0].name == "webhook" and written.endpoints[0].conditions.ready
    assert {entry.manager for entry in written.metadata.managed_fields} == {"argora-update"}
    assert post_change(standby[1]) == 503
    assert replicas[standby].metric("argora_webhook_requests_total", result="standby") == 1
    assert post_change(first[1]) == 202
    assert replicas[first].metric("argora_webhook_requests_total", result="accepted") == 1
    # The slice keeps naming the active replica alone: the standby never wrote it.
    assert named_endpoint(api_client, namespace) == first

    replicas[first].stop()
    wait_for(lambda: named_endpoint(api_client, namespace) == standby, 180, "the slice naming the replica taking over")
    assert post_change(standby[1]) == 202
    assert "Traceback" not in replicas[standby].log()
