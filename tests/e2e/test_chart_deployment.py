"""A controller run with exactly the command, arguments and environment the chart's Deployment gives
it, as its ServiceAccount: proves the chart's settings and least-privilege RBAC are enough to work.

There is no kubelet here, so the pod is played by a process: environment variables come from the
container spec (`valueFrom` resolved as the kubelet would), mounted Secrets become files in a
temporary folder (paths in the environment follow), and the ServiceAccount's credentials come from a
TokenRequest, in a kubeconfig instead of the in-cluster files.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_dev.chart import create_from_manifests, render, toggles
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Clusters, Machines, Objects, Pools, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import BIN_DIR, SOURCE_ROOT
from argora_dev.process import ManagedProcess, free_port, http_ok, wait_until
from argora_dev.seed import (
    NetBoxSeeder,
    Topology,
    add_servers,
    ensure_gateway_field,
    fresh_network,
    interface_names,
)
from metal3_controller.desired import NETBOX_CLUSTER_ANNOTATION
from tests.e2e.test_ipaddress import INTERFACE_ID, Rack, synced

pytestmark = pytest.mark.integration

KIND = "IPPoolImport"
# The pod's IP: a documentation address, as the API server refuses loopback ones in an EndpointSlice.
POD_IP = "192.0.2.10"


def service_account_kubeconfig(
    kube: KubeCluster, api: client.ApiClient, namespace: str, account: str, path: Path
) -> Path:
    token = (
        client.CoreV1Api(api)
        .create_namespaced_service_account_token(account, namespace, {"spec": {"expirationSeconds": 3600}})
        .status.token
    )
    source = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = source["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
                "current-context": account,
            }
        )
    )
    return path


def pod_environment(api: client.ApiClient, deployment: dict[str, Any], namespace: str, files: Path) -> dict[str, str]:
    """The container's environment, with mounted Secrets written under `files` and paths rewritten."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    core = client.CoreV1Api(api)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        target = files / mount["name"]
        target.mkdir(parents=True, exist_ok=True)
        secret = volumes[mount["name"]].get("secret")
        if secret:
            data = core.read_namespaced_secret(secret["secretName"], namespace).data
            for item in secret.get("items") or [{"key": key, "path": key} for key in data]:
                (target / item["path"]).write_bytes(base64.b64decode(data[item["key"]]))
        mounts[mount["mountPath"]] = target
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = str(item["value"])
            # A path inside a mounted volume points into its local copy (the longest mount wins).
            for mount_path in sorted(mounts, key=len, reverse=True):
                if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                    value = str(mounts[mount_path]) + value[len(mount_path) :]
                    break
            env[item["name"]] = value
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = f"{deployment['metadata']['name']}-test-pod"
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == "status.podIP":
            env[item["name"]] = POD_IP
        else:
            raise AssertionError(f"unresolved environment variable {item}")
    return env


def webhook_endpoint(discovery: client.DiscoveryV1Api, service: str, namespace: str) -> tuple[str, int] | None:
    """The address and port the EndpointSlice named after `service` names, once it is there."""
    try:
        found = discovery.read_namespaced_endpoint_slice(service, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    assert found.metadata.labels["kubernetes.io/service-name"] == service
    ((address,),) = [endpoint.addresses for endpoint in found.endpoints]
    (port,) = found.ports
    return str(address), int(port.port)


def install(api: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    create_from_manifests(api, docs)


def assert_nothing_forbidden(log_path: Path) -> None:
    log = log_path.read_text()
    assert "Forbidden" not in log and " 403" not in log, log[-3000:]


def start_as_deployed(
    kube: KubeCluster, api: client.ApiClient, namespace: str, docs: list[dict[str, Any]], tmp_path: Path
) -> ManagedProcess:
    """The one Deployment of `docs` played by a process: its command, arguments and environment, as its
    ServiceAccount; the log goes to tmp_path/operator.log."""
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = pod_environment(api, deployment, namespace, tmp_path / "volumes")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    env["KUBECONFIG"] = str(service_account_kubeconfig(kube, api, namespace, account, tmp_path / "kubeconfig"))
    env["PATH"] = "/usr/bin:/bin"
    # The image holds this checkout's code; the shared venv's console scripts would import another's.
    env["PYTHONPATH"] = str(SOURCE_ROOT)
    # The image's entrypoint is the console script (see Dockerfile); the Deployment adds only args.
    program = container["name"]
    argv = [str(BIN_DIR / program), *container.get("args", [])]
    return ManagedProcess(f"{program} (chart)", argv, tmp_path / "operator.log", env=env).start()


def test_ironcore_runs_as_the_chart_deploys_it(
    kube: KubeCluster, netbox: NetBoxServer, api_client: client.ApiClient, namespace: str, seeder: NetBoxSeeder,
    prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    objects = Objects(api_client)
    objects.create_secret(namespace, "argora-netbox-read", {"token": netbox.readonly_v2_token})
    objects.create_secret(namespace, "bmc", {"bmcUser": "root", "bmcPassword": "chart"})
    # The webhook's Secret, mounted as the chart mounts it: the controller starts with it.
    objects.create_secret(namespace, "argora-netbox-webhook", {"secret": "chart-webhook-secret"})
    health, metrics, webhook = free_port(), free_port(), free_port()
    docs = render(
        *toggles({"ironcore"}),
        "--set", f"netbox.url={netbox.url}",
        "--set", f"healthPort={health}", "--set", f"metricsPort={metrics}",
        "--set", "webhook.enabled=true", "--set", f"webhook.port={webhook}",
        "--set", f"ironcore.watchNamespaces={{{namespace}}}",
        release=namespace, namespace=namespace,
    )  # fmt: skip
    install(api_client, docs)
    process = start_as_deployed(kube, api_client, namespace, docs, tmp_path)
    try:
        assert process.env is not None
        assert Path(process.env["ARGORA_WEBHOOK_SECRET_FILE"]).read_text() == "chart-webhook-secret"
        wait_until(lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), 60, "health", process)
        # The only replica becomes the active one and, as its ServiceAccount, points the webhook's Service
        # (which has no selector) at itself.
        service = f"{namespace}-ironcore-webhook"
        discovery = client.DiscoveryV1Api(api_client)
        endpoint = wait_for(lambda: webhook_endpoint(discovery, service, namespace), 120, "the webhook's endpoint")
        assert endpoint == (POD_IP, webhook)
        # It holds its Lease in the release's namespace, by the name its Role grants, as the pod it is.
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease("argora-ironcore", namespace)
        assert lease.spec.holder_identity == f"{namespace}-ironcore-test-pod"
        topology = Topology(seeder, prefix)
        cluster = topology.cluster("c")
        servers = add_servers(topology, cluster, [f"{prefix}-n0", f"{prefix}-n1"])
        objects.create_import(
            namespace, "import", {"clusters": [{"name": cluster["name"], "bmcCredentialsRef": {"name": "bmc"}}]}
        )
        ci = objects.synced_import(namespace, "import")
        assert ci["status"]["counts"]["created"] == 2, ci["status"]
        assert set(objects.owned("bmcs", namespace, "import")) == {server.name for server in servers}
        assert http_ok(f"http://127.0.0.1:{metrics}/metrics")
        assert_nothing_forbidden(tmp_path / "operator.log")
    finally:
        process.stop()


def test_metal3_limited_to_a_namespace_works_with_its_roles_alone(
    kube: KubeCluster, netbox: NetBoxServer, api_client: client.ApiClient, namespace: str, seeder: NetBoxSeeder,
    prefix: str, tmp_path: Path,
) -> None:  # fmt: skip
    """With watchNamespaces argora-metal3 has Secrets only through a Role in the watched namespace and
    the default credentials through a Role for that one Secret in a namespace it does not watch: enough
    to register hosts with the default credentials, with no request refused."""
    objects = Objects(api_client)
    objects.create_secret(namespace, "argora-netbox-read", {"token": netbox.readonly_v2_token})
    credentials = f"{namespace[:50]}-creds"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": credentials}})
    # The default Secret needs no opt-in label: whoever installs the chart chose it.
    objects.create_secret(credentials, "bmc-default", {"username": "metal", "password": "chart"}, bmc_credentials=False)
    health, metrics = free_port(), free_port()
    docs = render(
        *toggles({"metal3"}),
        "--set", f"netbox.url={netbox.url}",
        "--set", f"healthPort={health}", "--set", f"metricsPort={metrics}",
        "--set", f"metal3.watchNamespaces={{{namespace}}}",
        "--set", f"defaultBmcCredentials={credentials}/bmc-default",
        release=namespace, namespace=namespace,
    )  # fmt: skip
    assert {(d["kind"], d["metadata"].get("namespace")) for d in docs if d["kind"] == "Role"} == {
        ("Role", namespace),
        ("Role", credentials),
    }
    install(api_client, docs)
    process = start_as_deployed(kube, api_client, namespace, docs, tmp_path)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), 60, "health", process)
        topology = Topology(seeder, prefix)
        cluster = topology.cluster("c")
        servers = add_servers(topology, cluster, [f"{prefix}-n0", f"{prefix}-n1"])
        clusters = Clusters(api_client)
        clusters.create(namespace, "capi", annotations={NETBOX_CLUSTER_ANNOTATION: cluster["name"]})
        status = clusters.synced(namespace, "capi")
        assert status["counts"]["created"] == 2, status
        hosts = clusters.hosts(namespace)
        assert set(hosts) == {server.name for server in servers}
        for server in servers:
            secret = clusters.secret(namespace, hosts[server.name]["spec"]["bmc"]["credentialsName"])
            assert {k: base64.b64decode(v).decode() for k, v in secret.data.items()} == {
                "username": "metal",
                "password": "chart",
            }
        assert_nothing_forbidden(tmp_path / "operator.log")
    finally:
        process.stop()


def watching(controller: str, namespace: str, limited: bool) -> list[str]:
    """The values limiting `controller` to `namespace`, when `limited`; none (the default: the whole
    cluster) otherwise."""
    return ["--set", f"{controller}.watchNamespaces={{{namespace}}}"] if limited else []


def roles(docs: list[dict[str, Any]]) -> set[str]:
    """The namespaces the rendered chart has Roles in, besides the -own Role (the controller's Lease) in the
    release's namespace, which every controller has."""
    return {
        doc["metadata"]["namespace"]
        for doc in docs
        if doc["kind"] == "Role" and not doc["metadata"]["name"].endswith("-own")
    }


@pytest.mark.parametrize("limited", [False, True], ids=["cluster", "namespace"])
def test_update_corrects_netbox_as_its_service_account(
    kube: KubeCluster, netbox: NetBoxServer, api_client: client.ApiClient, namespace: str, seeder: NetBoxSeeder,
    prefix: str, tmp_path: Path, limited: bool,
) -> None:  # fmt: skip
    """Its ClusterRole (the whole cluster) or the Role in the watched namespace lets argora-update write its
    Update's status and Events, and runs a pass itself when NetBox's change log
    touches what it corrected."""
    objects = Objects(api_client)
    # The chart mounts argora-netbox-write for argora-update: it writes to NetBox.
    objects.create_secret(namespace, "argora-netbox-write", {"token": netbox.v2_token})
    health, metrics = free_port(), free_port()
    docs = render(
        *toggles({"update"}),
        "--set", f"netbox.url={netbox.url}",
        "--set", f"healthPort={health}", "--set", f"metricsPort={metrics}",
        *watching("update", namespace, limited),
        release=namespace, namespace=namespace,
    )  # fmt: skip
    assert roles(docs) == ({namespace} if limited else set())
    install(api_client, docs)
    process = start_as_deployed(kube, api_client, namespace, docs, tmp_path)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), 60, "health", process)
        topology = Topology(seeder, prefix)
        cluster = topology.cluster("c")
        (server,) = add_servers(topology, cluster, [f"{prefix}-s"], set_oob_ip=False, interface_name="iDRAC")
        objects.create_import(namespace, "fix", {"clusters": [{"name": cluster["name"]}]}, kind="Update")
        status = objects.synced_import(namespace, "fix", kind="Update")["status"]
        assert status["state"] == "Ready" and status["applied"]["rename"] == 1 and status["applied"]["oobIP"] == 1
        assert interface_names(seeder, server.device) == ["remoteboard"]
        (device,) = seeder.get("dcim/devices", id=server.device["id"])
        assert device["oob_ip"]["address"] == server.ip["address"]
        assert {reason for _, reason, _ in objects.events(namespace, "fix")} >= {"InterfacesRenamed", "OOBIPsSet"}
        # Someone renames the interface back: the change log queues a pass of the Update, which renames it
        # again.
        seeder.update("dcim/interfaces", server.interface["id"], name="iDRAC")
        wait_for(lambda: interface_names(seeder, server.device) == ["remoteboard"], 120, "renamed again")
        assert_nothing_forbidden(tmp_path / "operator.log")
    finally:
        process.stop()


@pytest.mark.parametrize("limited", [False, True], ids=["cluster", "namespace"])
def test_ippool_creates_updates_and_prunes_pools_as_its_service_account(
    kube: KubeCluster, netbox: NetBoxServer, api_client: client.ApiClient, namespace: str, seeder: NetBoxSeeder,
    prefix: str, tmp_path: Path, limited: bool,
) -> None:  # fmt: skip
    """argora-ippool has its IPPoolImports, their status and Events through its ClusterRole, or with
    watchNamespaces only through the Role in the watched namespace; the cluster-scoped pools and every
    namespace's IPAddresses through its ClusterRole: enough to create, update, prune and (on deletion)
    remove pools."""
    objects = Objects(api_client)
    pools = Pools(api_client)
    objects.create_secret(namespace, "argora-netbox-read", {"token": netbox.readonly_v2_token})
    ensure_gateway_field(seeder)
    health, metrics = free_port(), free_port()
    docs = render(
        *toggles({"ippool"}),
        "--set", f"netbox.url={netbox.url}",
        "--set", f"healthPort={health}", "--set", f"metricsPort={metrics}",
        *watching("ippool", namespace, limited),
        release=namespace, namespace=namespace,
    )  # fmt: skip
    assert roles(docs) == ({namespace} if limited else set())
    install(api_client, docs)
    process = start_as_deployed(kube, api_client, namespace, docs, tmp_path)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), 60, "health", process)
        role = seeder.create_one("ipam/roles", name=f"{prefix}-role", slug=f"{prefix}-role")
        other_role = seeder.create_one("ipam/roles", name=f"{prefix}-other", slug=f"{prefix}-other")
        kept, leaving = Topology(seeder, f"{prefix}-k"), Topology(seeder, f"{prefix}-l")
        kept_prefix, leaving_prefix = seeder.create(
            "ipam/prefixes",
            [
                {"prefix": str(fresh_network()), "scope_type": "dcim.site", "scope_id": site["id"], "role": role["id"]}
                for site in (kept.site, leaving.site)
            ],
        )
        objects.create_import(namespace, "pools", {"ippools": [{"namePrefix": "np", "role": role["slug"]}]}, kind=KIND)
        status = objects.synced_import(namespace, "pools", kind=KIND)["status"]
        assert status["state"] == "Ready" and status["counts"]["created"] == 2, status
        kept_pool, leaving_pool = f"np-{kept.site['slug']}", f"np-{leaving.site['slug']}"
        assert set(pools.owned(namespace, "pools")) == {kept_pool, leaving_pool}
        # NetBox renumbers one prefix and gives the other another role: the change log asks for a pass
        # (the controller annotates its IPPoolImport) that updates the one pool and prunes the other.
        moved = fresh_network()
        seeder.update("ipam/prefixes", kept_prefix["id"], prefix=str(moved))
        seeder.update("ipam/prefixes", leaving_prefix["id"], role=other_role["id"])

        def converged() -> dict[str, dict[str, Any]] | None:
            owned = pools.owned(namespace, "pools")
            done = set(owned) == {kept_pool} and owned[kept_pool]["spec"]["addresses"] == [str(moved)]
            return owned if done else None

        pool = wait_for(converged, 120, "pool updated and pruned")[kept_pool]
        assert pool["spec"] == {
            "addresses": [str(moved)], "prefix": 24, "gateway": str(moved.network_address + 1),
            "excludedAddresses": [],
        }  # fmt: skip
        reasons = {reason for _, reason, _ in objects.events(namespace, "pools")}
        assert reasons >= {"Created", "Updated", "Pruned"}, reasons
        # Deleted, the IPPoolImport takes its pools with it and kopf lets it go (its finalizer removed).
        objects.delete_import(namespace, "pools", kind=KIND)
        wait_for(lambda: objects.get_import(namespace, "pools", KIND) is None, 60, "IPPoolImport gone")
        assert pools.get(kept_pool) is None
        assert_nothing_forbidden(tmp_path / "operator.log")
    finally:
        process.stop()


@pytest.mark.parametrize("limited", [False, True], ids=["cluster", "namespace"])
def test_ipaddress_records_addresses_and_annotates_them_as_its_service_account(
    kube: KubeCluster, netbox: NetBoxServer, api_client: client.ApiClient, namespace: str, seeder: NetBoxSeeder,
    prefix: str, tmp_path: Path, limited: bool,
) -> None:  # fmt: skip
    """argora-ipaddress's ClusterRole is all it has, watchNamespaces or not: its passes read the IPAddresses,
    the chain to the NetBox device and the pools of every namespace, and annotate the addresses and post
    Events wherever they are, also outside the watched namespaces."""
    objects = Objects(api_client)
    machines, pools = Machines(api_client), Pools(api_client)
    # The chart mounts argora-netbox-write for argora-ipaddress: it writes addresses and primary IPs.
    objects.create_secret(namespace, "argora-netbox-write", {"token": netbox.v2_token})
    elsewhere = f"{namespace[:50]}-other"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": elsewhere}})
    health, metrics = free_port(), free_port()
    docs = render(
        *toggles({"ipaddress"}),
        "--set", f"netbox.url={netbox.url}",
        "--set", f"healthPort={health}", "--set", f"metricsPort={metrics}",
        *watching("ipaddress", namespace, limited),
        release=namespace, namespace=namespace,
    )  # fmt: skip
    # No Role in a watched namespace: its passes read every namespace, and kopf's peering is gone.
    assert roles(docs) == set()
    install(api_client, docs)
    process = start_as_deployed(kube, api_client, namespace, docs, tmp_path)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), 60, "health", process)
        rack = Rack(seeder, machines, pools, prefix)
        # One address where the controller does not watch when limited: the pass the other one's event
        # starts covers it too.
        machines.claim(elsewhere, "m2", rack.device["name"], rack.pool)
        machines.address(elsewhere, "m2", rack.pool, rack.host(11), 24)
        machines.claim(namespace, "m1", rack.device["name"], rack.pool)
        machines.address(namespace, "m1", rack.pool, rack.host(10), 24)
        for where, name, offset in ((namespace, "m1", 10), (elsewhere, "m2", 11)):
            annotations = synced(machines, where, name)
            assert annotations[INTERFACE_ID] == str(rack.interfaces["LAG2"]["id"])
            recorded = rack.netbox_address(offset)
            assert recorded is not None and recorded["assigned_object_id"] == rack.interfaces["LAG2"]["id"]
            assert ("Normal", "Recorded") in {(kind, reason) for kind, reason, _ in objects.events(where, name)}
        assert rack.primary_ip4() is not None
        # Released, the address the controller created leaves NetBox.
        machines.delete_address(namespace, "m1")
        wait_for(lambda: rack.netbox_address(10) is None, 60, "released NetBox address deleted")
        assert_nothing_forbidden(tmp_path / "operator.log")
    finally:
        process.stop()
