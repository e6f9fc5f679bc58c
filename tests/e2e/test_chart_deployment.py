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
from argora_dev.kubeobjects import Objects
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import BIN_DIR
from argora_dev.process import ManagedProcess, free_port, http_ok, wait_until
from argora_dev.seed import NetBoxSeeder, Topology, add_servers

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
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = pod_environment(api_client, deployment, namespace, tmp_path / "volumes")
    assert Path(env["ARGORA_WEBHOOK_SECRET_FILE"]).read_text() == "chart-webhook-secret"
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    env["KUBECONFIG"] = str(service_account_kubeconfig(kube, api_client, namespace, account, tmp_path / "kubeconfig"))
    env["PATH"] = "/usr/bin:/bin"
    # The image's entrypoint is the console script (see Dockerfile); the Deployment adds only args.
    argv = [str(BIN_DIR / "argora-ironcore"), *container.get("args", [])]
    process = ManagedProcess("argora-ironcore (chart)", argv, tmp_path / "operator.log", env=env).start()
    try:
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
