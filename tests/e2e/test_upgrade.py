"""Replacing the original Argora operator: its objects, as it wrote them, are taken over in place.

Each test seeds NetBox, writes the objects the original operator writes for that inventory (its names,
labels, field manager and owner references, as captured from a real run of it), then starts Argora
on them and checks what a platform team would: no second object, nothing deleted, no drift reported,
every label kept, the credentials rotated into the existing Secrets.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kubeobjects import Clusters, Objects
from argora_dev.operator import OperatorProcess
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_servers

pytestmark = pytest.mark.integration

ORIGINAL_MANAGER = "manager"  # the original operator's field manager (controller-runtime's default)
PREFIX = "kubernetes.metal.cloud.sap"
METAL = ("metal.ironcore.dev", "v1alpha1")
METAL3 = ("metal3.io", "v1alpha1")
NEW_CREDENTIALS = {"username": "argora", "password": "rotated-by-argora"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decoded(data: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def building_block(prefix: str) -> str:
    """Device names are `<node>-<bb>`; the run-unique part of the prefix keeps cluster-scoped names apart."""
    return prefix.split("-", maxsplit=1)[0]


def original_labels(topology: Topology, cluster: dict[str, Any], server: Server) -> dict[str, str]:
    node, bb = server.name.split("-")
    return {
        f"{PREFIX}/bb": bb,
        f"{PREFIX}/cluster": cluster["name"],
        f"{PREFIX}/name": server.name,
        f"{PREFIX}/nodename": node,
        "topology.kubernetes.io/region": topology.region["slug"],
        "topology.kubernetes.io/zone": topology.site["slug"],
    }


def assert_labels_kept(obj: dict[str, Any], labels: dict[str, str]) -> None:
    have = obj["metadata"]["labels"]
    assert {key: have.get(key) for key in labels} == labels


@pytest.fixture
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


def test_argora_ironcore_adopts_the_original_bmcs_and_bmcsecrets(
    objects: Objects,
    namespace: str,
    seeder: NetBoxSeeder,
    prefix: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    topology = Topology(seeder, prefix)
    platform = seeder.create_one("dcim/platforms", name=f"{prefix}-linux", slug=f"{prefix}-linux")
    cluster = topology.cluster("big")
    bb = building_block(prefix)
    servers = add_servers(
        topology, cluster, [f"node{i:03d}-{bb}" for i in (1, 2, 3)], platform=platform["id"], mac_shape="assigned"
    )
    adopted, foreign = servers[:2], servers[2]
    labels: dict[str, dict[str, str]] = {}
    uids: dict[str, str] = {}
    for server in servers:
        labels[server.name] = {
            **original_labels(topology, cluster, server),
            f"{PREFIX}/cluster-type": topology.cluster_type["slug"],
            f"{PREFIX}/platform": platform["slug"],
            f"{PREFIX}/role": topology.role["slug"],
            f"{PREFIX}/type": topology.device_type["slug"],
        }
        if server is foreign:
            # Same name, but the original operator wrote it for another device: not ours to take.
            labels[server.name][f"{PREFIX}/name"] = f"node999-{bb}"
        bmc = objects.custom.create_cluster_custom_object(
            *METAL, "bmcs",
            {
                "apiVersion": "/".join(METAL), "kind": "BMC",
                "metadata": {"name": server.name, "labels": labels[server.name]},
                "spec": {
                    "access": {"ip": server.address},
                    "bmcSecretRef": {"name": server.name},
                    "protocol": {"name": "Redfish", "port": 443},
                },
            },
            field_manager=ORIGINAL_MANAGER,
        )  # fmt: skip
        secret = objects.custom.create_cluster_custom_object(
            *METAL, "bmcsecrets",
            {
                "apiVersion": "/".join(METAL), "kind": "BMCSecret",
                "metadata": {
                    "name": server.name,
                    "labels": labels[server.name],
                    "ownerReferences": [
                        {
                            "apiVersion": "/".join(METAL), "kind": "BMC", "name": server.name,
                            "uid": bmc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
                        }
                    ],
                },
                "data": {"username": b64("admin"), "password": b64("secret")},
            },
            field_manager=ORIGINAL_MANAGER,
        )  # fmt: skip
        uids[server.name] = bmc["metadata"]["uid"]
        uids[f"secret/{server.name}"] = secret["metadata"]["uid"]
    objects.create_secret(namespace, "bmc", NEW_CREDENTIALS)
    objects.create_import(
        namespace, "big", {"clusters": [{"name": cluster["name"], "bmcCredentialsRef": {"name": "bmc"}}]}
    )
    objects.custom.patch_namespaced_custom_object_status(
        "argora.cloud.sap", "v1alpha1", namespace, "clusterimports", "big",
        {"status": {"state": "Ready", "conditions": [{
            "type": "Ready", "status": "True", "reason": "ClusterImportSucceeded",
            "message": "ClusterImport succeeded", "lastTransitionTime": "2026-11-26T08:20:50Z",
        }]}},
    )  # fmt: skip

    operator = start_operator("ironcore", {"ARGORA_NAMESPACES": namespace})
    ci = objects.synced_import(namespace, "big")

    counts = ci["status"]["counts"]
    assert (counts["created"], counts["adopted"], counts["drifted"], counts["pruned"]) == (0, 2, 0, 0)
    assert [(p["device"], p["reason"]) for p in ci["status"]["problems"]] == [(foreign.name, "NameTaken")]
    assert ci["status"]["state"] == "Ready"
    assert any(reason == "Adopted" for _, reason, _ in objects.events(namespace, "big"))
    for server in servers:
        bmc = objects.get_metal("bmcs", server.name)
        secret = objects.get_metal("bmcsecrets", server.name)
        assert bmc is not None and secret is not None
        # The same objects, no second one: nothing was deleted and created anew.
        assert (bmc["metadata"]["uid"], secret["metadata"]["uid"]) == (uids[server.name], uids[f"secret/{server.name}"])
        assert_labels_kept(bmc, labels[server.name])
        assert_labels_kept(secret, labels[server.name])
        assert secret["metadata"]["ownerReferences"][0]["uid"] == uids[server.name]
        assert "scheme" not in bmc["spec"]["protocol"]
        # spec.access cannot change after the BMC was made; the original wrote it without a MAC.
        assert bmc["spec"]["access"] == {"ip": server.address}
        credentials = NEW_CREDENTIALS if server in adopted else {"username": "admin", "password": "secret"}
        assert decoded(secret["data"]) == credentials
    assert objects.owned("bmcs", namespace, "big").keys() == {server.name for server in adopted}
    assert operator.metric("argora_objects_written_total", action="create") == 0
    assert operator.metric("argora_objects_written_total", action="delete") == 0

    # Once adopted, they are ours like any other: the next pass has nothing to do.
    counts = objects.resync(namespace, "big")["status"]["counts"]
    assert (counts["created"], counts["updated"], counts["adopted"], counts["unchanged"]) == (0, 0, 0, 2)


def test_argora_metal3_adopts_the_original_hosts_and_their_secrets(
    api_client: client.ApiClient,
    namespace: str,
    seeder: NetBoxSeeder,
    prefix: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    clusters = Clusters(api_client)
    topology = Topology(seeder, prefix, manufacturer="Dell", shared_vendor=True)
    cluster = topology.cluster("k8s")
    bb = building_block(prefix)
    ceph = seeder.ensure("extras/tags", "ceph-hdd", name="ceph-HDD")
    storage, plain = add_servers(topology, cluster, [f"node001-{bb}", f"node002-{bb}"], mac_shape="two-with-primary")
    seeder.update("dcim/devices", storage.device["id"], tags=[ceph["id"]])
    roles = {storage.name: "ceph-osd", plain.name: topology.role["slug"]}
    labels: dict[str, dict[str, str]] = {}
    uids: dict[str, str] = {}
    for server in (storage, plain):
        labels[server.name] = {
            key: value
            for key, value in original_labels(topology, cluster, server).items()
            if key != f"{PREFIX}/nodename"  # the original's hosts carry no nodename
        } | {f"{PREFIX}/role": roles[server.name]}
        host = clusters.custom.create_namespaced_custom_object(
            *METAL3, namespace, "baremetalhosts",
            {
                "apiVersion": "/".join(METAL3), "kind": "BareMetalHost",
                "metadata": {"name": server.name, "labels": labels[server.name]},
                "spec": {
                    "architecture": "x86_64",
                    "automatedCleaningMode": "disabled",
                    "bmc": {
                        "address": f"idrac-redfish://{server.address}/redfish/v1/Systems/System.Embedded.1",
                        "credentialsName": f"bmc-secret-{server.name}",
                        "disableCertificateVerification": True,
                    },
                    "networkData": {"name": f"networkdata-{server.name}", "namespace": namespace},
                    "online": True,
                    "rootDeviceHints": {"model": "BOSS"},
                },
            },
            field_manager=ORIGINAL_MANAGER,
        )  # fmt: skip
        secret = clusters.core.create_namespaced_secret(
            namespace,
            {
                "metadata": {"name": f"bmc-secret-{server.name}"},
                "type": "Opaque",
                "data": {"username": b64("admin"), "password": b64("secret")},
            },
            field_manager=ORIGINAL_MANAGER,
        )
        uids[server.name] = host["metadata"]["uid"]
        uids[f"secret/{server.name}"] = secret.metadata.uid
    before = {name: host["spec"] for name, host in clusters.hosts(namespace).items()}
    clusters.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "bmc"}, "stringData": NEW_CREDENTIALS, "type": "Opaque"}
    )
    clusters.create(
        namespace, cluster["name"], labels={"discovery.inf.sap.cloud/clusterRole": topology.cluster_type["slug"]}
    )

    operator = start_operator(
        "metal3", {"ARGORA_NAMESPACES": namespace, "ARGORA_DEFAULT_BMC_CREDENTIALS": f"{namespace}/bmc"}
    )
    status = clusters.synced(namespace, cluster["name"])

    counts = status["counts"]
    assert (counts["created"], counts["adopted"], counts["drifted"], counts["pruned"]) == (0, 2, 0, 0), status
    assert status["problems"] == []
    hosts = clusters.hosts(namespace)
    assert set(hosts) == {storage.name, plain.name}
    for server in (storage, plain):
        host = hosts[server.name]
        assert host["metadata"]["uid"] == uids[server.name]
        assert_labels_kept(host, labels[server.name])
        # Registered as the original did it: same address (another driver, same IP, is no drift) and the
        # fields Argora does not manage stay.
        assert host["spec"] == before[server.name]
        secret = clusters.secret(namespace, f"bmc-secret-{server.name}")
        assert secret.metadata.uid == uids[f"secret/{server.name}"]
        assert decoded(secret.data) == NEW_CREDENTIALS
        assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "argora-metal3"
    names = {secret.metadata.name for secret in clusters.core.list_namespaced_secret(namespace).items}
    assert names == {"bmc", f"bmc-secret-{storage.name}", f"bmc-secret-{plain.name}"}
    assert operator.metric("argora_objects_written_total", action="create") == 0
    assert operator.metric("argora_objects_written_total", action="delete") == 0

    counts = clusters.resync(namespace, cluster["name"])["counts"]
    assert (counts["created"], counts["updated"], counts["adopted"], counts["unchanged"]) == (0, 0, 0, 2)
