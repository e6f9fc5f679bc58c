"""`make demo`: a local kube-apiserver and NetBox with a small inventory, and the Argora controllers.

Starts everything on loopback (the same parts the tests use), seeds NetBox, runs each controller as
its console script, and prints what the user would look at. `DEMO_KEEP=1 make demo` leaves it all
running until Ctrl-C and prints how to reach it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from pydantic import SecretStr

from argora_common.netbox import CLUSTERS, DEVICES, NetBox
from argora_common.settings import Settings
from tests.harness.kube import KubeCluster, upstream_crd_files
from tests.harness.netbox import NetBoxServer
from tests.harness.operator import OperatorProcess
from tests.harness.process import stop_all
from tests.harness.seed import NetBoxSeeder, Topology

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKDIR = REPO_ROOT / ".work" / "demo"
CONTROLLERS = ("ironcore", "metal3", "update")

# (cluster, site suffix, vendor, device count)
INVENTORY = [("k8s-a1", "Dell", 4), ("k8s-b1", "HPE", 3), ("k8s-c1", "Lenovo", 2)]


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def seed(netbox: NetBoxServer) -> None:
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    for cluster_name, vendor, count in INVENTORY:
        topology = Topology(seeder, f"demo-{cluster_name}", manufacturer=vendor)
        cluster = topology.cluster("cluster")
        devices = topology.devices(cluster, [f"{cluster_name}-node{i:03d}" for i in range(1, count + 1)])
        addresses = topology.bmc_interfaces(devices)
        seeder.update_many(
            "dcim/devices",
            [{"id": device["id"], "oob_ip": ip["id"]} for device, ip in zip(devices, addresses, strict=True)],
        )


def show_netbox(netbox: NetBoxServer) -> None:
    reader = NetBox(Settings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.readonly_v2_token)))
    clusters = reader.select(CLUSTERS, name=[f"demo-{name}-cluster" for name, _, _ in INVENTORY])
    devices = reader.list_by_ids(DEVICES, "cluster_id", [cluster.id for cluster in clusters])
    say(f"NetBox inventory ({reader.request_count} requests to read it)")
    for cluster in clusters:
        print(f"    cluster {cluster.name} (type {cluster.type.slug})")
        for device in devices:
            if device.cluster and device.cluster.id == cluster.id:
                oob = device.oob_ip.address if device.oob_ip else "-"
                vendor = device.device_type.manufacturer.slug
                print(f"      {device.name:<18} {device.status:<8} {vendor:<22} oob {oob}")


def show_kubernetes(api: client.ApiClient) -> None:
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    say("CustomResourceDefinitions served by the API server")
    for crd in sorted(crds, key=lambda c: c.metadata.name):
        print(f"    {crd.metadata.name}")


def main() -> int:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    try:
        say("starting kube-apiserver + etcd")
        kube = KubeCluster(WORKDIR / "kube")
        kube.start()
        kube.install_crds([*upstream_crd_files(), *sorted((REPO_ROOT / "charts/argora/crds").glob("*.yaml"))])
        say("starting NetBox (PostgreSQL, Redis, gunicorn)")
        netbox = NetBoxServer(WORKDIR / "netbox")
        netbox.start()
        seed(netbox)
        show_netbox(netbox)
        api = kube.api_client()
        show_kubernetes(api)
        env: dict[str, Any] = {
            "KUBECONFIG": str(kube.kubeconfig),
            "ARGORA_NETBOX_URL": netbox.url,
            "ARGORA_NETBOX_TOKEN": netbox.readonly_v2_token,
        }
        for name in CONTROLLERS:
            operator = OperatorProcess(name, WORKDIR, env).start()
            say(f"argora-{name} is running: health {operator.health_url}, metrics {operator.metrics_url}")
        if os.environ.get("DEMO_KEEP"):
            say(f"export KUBECONFIG={kube.kubeconfig}")
            say(f"NetBox API: {netbox.url}  (local demo token: {netbox.v2_token})")
            say("running until Ctrl-C")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping everything")
        stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
