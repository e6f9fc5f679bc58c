"""`make demo`: a local kube-apiserver and NetBox with a small inventory, and the Argora controllers.

Starts everything on loopback (the same parts the tests use), seeds NetBox, runs each controller as
its console script, and prints what the user would look at. `DEMO_KEEP=1 make demo` leaves it all
running until Ctrl-C and prints how to reach it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any

from kubernetes import client
from pydantic import SecretStr

from argora_common.crds import IPPoolSelector
from argora_common.netbox import NetBox
from argora_common.netbox_schema import CLUSTERS, DEVICES, IP_ADDRESSES
from argora_common.prefixes import read_prefixes
from argora_common.settings import Settings
from argora_dev import REPO_ROOT
from argora_dev.demo_inventory import IPPOOL_SELECTORS, LAG_DEVICE, POOL, cluster_names, seed
from argora_dev.kube import KubeCluster, crd_files
from argora_dev.kubeobjects import Clusters, Machines, Objects, Pools, first_free, ipaddress_state, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess
from argora_dev.process import stop_all
from argora_dev.seed import NetBoxSeeder

WORKDIR = REPO_ROOT / ".work" / "demo"
CONTROLLERS = ("ironcore", "metal3", "update", "ippool", "ipaddress")
# They alone write to NetBox: they alone get a token that may.
WRITERS = ("update", "ipaddress")


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def readonly_netbox(netbox: NetBoxServer) -> NetBox:
    """NetBox as the read-only controllers see it."""
    return NetBox(Settings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.readonly_v2_token)))


def show_netbox(netbox: NetBoxServer) -> None:
    reader = readonly_netbox(netbox)
    clusters = reader.select(CLUSTERS, name=cluster_names())
    devices = reader.list_by_ids(DEVICES, "cluster_id", [cluster.id for cluster in clusters])
    selection = read_prefixes(reader, [IPPoolSelector.model_validate(selector) for selector in IPPOOL_SELECTORS])
    say(f"NetBox inventory ({reader.request_count} requests to read it)")
    for cluster in clusters:
        print(f"    cluster {cluster.name} (type {cluster.type.slug})")
        for device in devices:
            if device.cluster and device.cluster.id == cluster.id:
                oob = device.oob_ip.address if device.oob_ip else "-"
                vendor = device.device_type.manufacturer.slug
                print(f"      {device.name:<18} {device.status:<8} {vendor:<22} oob {oob}")
    for scoped in (scoped for prefixes in selection.by_selector for scoped in prefixes):
        prefix = scoped.prefix
        role = prefix.role.slug if prefix.role else "-"
        scope = f"{prefix.scope_type} {prefix.scope.name if prefix.scope else '-'}"
        site = scoped.site.slug if scoped.site else "-"
        vlan = prefix.vlan.name if prefix.vlan else "-"
        print(f"    prefix {prefix.prefix:<13} role {role:<32} {scope:<22} site {site:<11} vlan {vlan}")


def show_kubernetes(api: client.ApiClient) -> None:
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    say("CustomResourceDefinitions served by the API server")
    for crd in sorted(crds, key=lambda c: c.metadata.name):
        print(f"    {crd.metadata.name}")


def show_cluster_import(objects: Objects) -> None:
    objects.core.create_namespace({"metadata": {"name": "demo"}})
    objects.create_secret("demo", "bmc-credentials", {"bmcUser": "admin", "bmcPassword": "demo-password"})
    selectors = [
        {"name": "demo-k8s-a1-cluster", "bmcCredentialsRef": {"name": "bmc-credentials"}},
        {"type": "demo-k8s-b1-ctype", "bmcCredentialsRef": {"name": "bmc-credentials"}},
    ]
    say("kubectl -n demo apply -f clusterimport.yaml  (clusters: demo-k8s-a1 by name, demo-k8s-b1 by type)")
    objects.create_import("demo", "demo", {"clusters": selectors})
    show_ready(objects.synced_import("demo", "demo")["status"], "devices", "device")
    say("kubectl get bmcs  (metal.ironcore.dev, written by argora-ironcore)")
    for name, bmc in sorted(objects.owned("bmcs", "demo", "demo").items()):
        access = bmc["spec"]["access"]
        zone = bmc["metadata"]["labels"].get("topology.kubernetes.io/zone", "")
        print(f"    {name:<18} ip {access['ip']:<13} mac {access.get('macAddress', '-'):<18} zone {zone}")
    show_events(objects, "demo")


def show_ready(status: dict[str, Any], counted: str, subject: str) -> None:
    """An import's Ready condition, how many `counted` it selected and created, and its problems by `subject`."""
    counts = status["counts"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    print(f"    Ready={ready['status']} ({ready['reason']}): {counts[counted]} {counted}, {counts['created']} created")
    for problem in status.get("problems", []):
        print(f"    problem: {problem[subject]}: {problem['reason']}: {problem['message']}")


def show_events(objects: Objects, name: str) -> None:
    say(f"kubectl -n demo get events --field-selector involvedObject.name={name}")
    for event_type, reason, message in objects.events("demo", name):
        print(f"    {event_type:<8} {reason:<16} {message}")


def show_metal3(clusters: Clusters) -> None:
    say("kubectl -n demo apply -f cluster.yaml  (Cluster API Cluster annotated netbox-cluster: demo-k8s-b1-cluster)")
    annotations = {
        "argora.cloud.sap/netbox-cluster": "demo-k8s-b1-cluster",
        "argora.cloud.sap/bmc-credentials": "bmc-credentials",
    }
    clusters.create("demo", "workload-b1", annotations=annotations)
    summary = clusters.synced("demo", "workload-b1")
    print(f"    annotation argora.cloud.sap/sync-status: {summary['counts']}")
    for problem in summary.get("problems", []):
        print(f"    problem: {problem}")
    say("kubectl -n demo get baremetalhosts  (metal3.io, written by argora-metal3)")
    for name, host in sorted(clusters.hosts("demo").items()):
        print(f"    {name:<18} {host['spec']['bmc']['address']}")


def show_update(objects: Objects) -> None:
    say("kubectl -n demo apply -f update.yaml  (cluster demo-k8s-c1, dryRun: true)")
    objects.create_import(
        "demo", "fix-c1", {"clusters": [{"name": "demo-k8s-c1-cluster"}], "dryRun": True}, kind="Update"
    )
    show_changes(objects.synced_import("demo", "fix-c1", kind="Update")["status"])
    say('kubectl -n demo patch update fix-c1 --type merge -p \'{"spec": {"dryRun": false}}\'')
    previous = objects.get_import("demo", "fix-c1", "Update") or {}
    objects.patch_import("demo", "fix-c1", {"spec": {"dryRun": False}}, kind="Update")
    after = (previous.get("status") or {}).get("lastSyncTime")
    show_changes(objects.synced_import("demo", "fix-c1", after=after, kind="Update")["status"])


def show_ippool_import(objects: Objects, pools: Pools) -> None:
    say("kubectl -n demo apply -f ippoolimport.yaml  (the prefixes of two roles: nodes and compute transit)")
    objects.create_import("demo", "pools", {"ippools": IPPOOL_SELECTORS}, kind="IPPoolImport")
    show_ready(objects.synced_import("demo", "pools", kind="IPPoolImport")["status"], "prefixes", "prefix")
    say("kubectl get globalinclusterippools  (ipam.cluster.x-k8s.io, written by argora-ippool)")
    for name, pool in sorted(pools.owned("demo", "pools").items()):
        spec = pool["spec"]
        excluded = ",".join(spec.get("excludedAddresses") or []) or "-"
        print(f"    {name:<22} {spec['addresses'][0]:<13} gateway {spec['gateway']:<11} excluded {excluded}")
    show_events(objects, "pools")


def show_ipaddress(objects: Objects, pools: Pools, machines: Machines, netbox: NetBoxServer) -> None:
    address, prefix = first_free((pools.get(POOL) or {})["spec"])
    say(
        f"a machine on {LAG_DEVICE}: metal-operator's Server for argora-ironcore's BMC, a ServerClaim with an"
        f" IPAddressClaim from {POOL}, and the IPAddress {address}/{prefix} the in-cluster provider hands out first"
    )
    machines.machine("demo", "machine-a1", LAG_DEVICE, POOL, address, prefix)
    wait_for(
        lambda: ipaddress_state(machines.get_address("demo", "machine-a1") or {}) == "Synced",
        what="IPAddress demo/machine-a1 Synced",
    )
    say("kubectl -n demo get ipaddress machine-a1 -o yaml  (the annotations argora-ipaddress wrote)")
    for key, value in sorted(machines.annotations("demo", "machine-a1").items()):
        print(f"    {key}: {value}")
    reader = readonly_netbox(netbox)
    recorded = reader.select(IP_ADDRESSES, address=address)[0]
    device = reader.select(DEVICES, name=[LAG_DEVICE])[0]
    on = recorded.assigned_object
    interface = f"{on.device.name} {on.name}" if on and on.device else "-"
    vrf = recorded.vrf.name if recorded.vrf else "global"
    tags = ", ".join(tag.slug or "" for tag in recorded.tags)
    primary = device.primary_ip4.address if device.primary_ip4 else "-"
    say("NetBox now records (written by argora-ipaddress)")
    print(f"    ip address {recorded.address} on {interface}, vrf {vrf}, tags {tags}")
    print(f"      description: {recorded.description}")
    print(f"    device {device.name}: primary IPv4 {primary}")
    show_events(objects, "machine-a1")


def show_changes(status: dict[str, Any]) -> None:
    print(f"    planned {status['planned']}")
    print(f"    applied {status['applied']}")
    for change in status["changes"]:
        mark = "applied" if change["applied"] else "planned"
        print(f"    {mark:<8} {change['device']:<16} {change['action']:<18} {change['before']} -> {change['after']}")


def main() -> int:
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    try:
        say("starting kube-apiserver + etcd")
        kube = KubeCluster(WORKDIR / "kube")
        kube.start()
        kube.install_crds(crd_files())
        say("starting NetBox (PostgreSQL, Redis, gunicorn)")
        netbox = NetBoxServer(WORKDIR / "netbox")
        netbox.start()
        seed(NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token)))
        show_netbox(netbox)
        api = kube.api_client()
        show_kubernetes(api)
        env: dict[str, Any] = {
            "KUBECONFIG": str(kube.kubeconfig),
            "ARGORA_NETBOX_URL": netbox.url,
            "ARGORA_NETBOX_TOKEN": netbox.readonly_v2_token,
        }
        for name in CONTROLLERS:
            token = {"ARGORA_NETBOX_TOKEN": netbox.v2_token} if name in WRITERS else {}
            operator = OperatorProcess(name, WORKDIR, {**env, **token}).start()
            say(f"argora-{name} is running: health {operator.health_url}, metrics {operator.metrics_url}")
        show_cluster_import(Objects(api))
        show_metal3(Clusters(api))
        show_update(Objects(api))
        show_ippool_import(Objects(api), Pools(api))
        show_ipaddress(Objects(api), Pools(api), Machines(api), netbox)
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
