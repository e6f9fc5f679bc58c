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

from argora_dev.chart import create_from_manifests, render, toggles
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Clusters, Objects
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import BIN_DIR, SOURCE_ROOT
from argora_dev.process import ManagedProcess, free_port, http_ok, wait_until
from argora_dev.seed import NetBoxSeeder, Topology, add_servers
from metal3_controller.desired import NETBOX_CLUSTER_ANNOTATION

pytestmark = pytest.mark.integration


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
        else:
            raise AssertionError(f"unresolved environment variable {item}")
    return env


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
    create_from_manifests(api_client, docs)
    process = start_as_deployed(kube, api_client, namespace, docs, tmp_path)
    try:
        assert process.env is not None
        assert Path(process.env["ARGORA_WEBHOOK_SECRET_FILE"]).read_text() == "chart-webhook-secret"
        wait_until(lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), 60, "health", process)
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
        log = (tmp_path / "operator.log").read_text()
        assert "Forbidden" not in log, log[-3000:]
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
    create_from_manifests(api_client, docs)
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
        log = (tmp_path / "operator.log").read_text()
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]
    finally:
        process.stop()
