"""argora-ironcore as a process against the real API server (upstream metal-operator CRDs) and NetBox."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from argora_common.names import name_label_value
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, ensure_secret, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_servers, fresh_ipv4

pytestmark = pytest.mark.integration

DEFAULT_SECRET_NAMESPACE = "argora-system"
DEFAULT_CREDENTIALS = {"username": "default-user", "password": "default-pass"}


@pytest.fixture(scope="module")
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


@pytest.fixture(scope="module")
def ironcore(
    kube: KubeCluster, netbox: NetBoxServer, objects: Objects, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One argora-ironcore for the module, with a read-only NetBox token and a default Secret."""
    ensure_secret(objects.core.api_client, DEFAULT_SECRET_NAMESPACE, "bmc-default", DEFAULT_CREDENTIALS)
    env = operator_environment(
        kube, netbox, netbox.readonly_v2_token,
        ARGORA_DEFAULT_BMC_CREDENTIALS=f"{DEFAULT_SECRET_NAMESPACE}/bmc-default",
    )  # fmt: skip
    operator = OperatorProcess("ironcore", tmp_path_factory.mktemp("ironcore"), env).start()
    yield operator
    operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


class Site:
    """A NetBox slice for one test: cluster A (selected) and cluster B (not), three servers each."""

    def __init__(self, seeder: NetBoxSeeder, prefix: str, servers: int = 3) -> None:
        self.seeder = seeder
        self.prefix = prefix
        self.a = Topology(seeder, f"{prefix}-a")
        self.b = Topology(seeder, f"{prefix}-b", manufacturer="HPE")
        self.tag = seeder.create_one("extras/tags", name=f"{prefix}-tag", slug=f"{prefix}-tag")
        self.cluster_a = self.a.cluster("c", tenant=self.a.tenant["id"], tags=[self.tag["id"]])
        self.cluster_b = self.b.cluster("c", tenant=self.b.tenant["id"])
        self.servers_a = add_servers(self.a, self.cluster_a, [f"{prefix}-a{i}" for i in range(servers)])
        self.servers_b = add_servers(self.b, self.cluster_b, [f"{prefix}-b{i}" for i in range(servers)])


@pytest.fixture
def site(seeder: NetBoxSeeder, prefix: str) -> Site:
    return Site(seeder, prefix)


def by_name(servers: list[Server]) -> set[str]:
    return {server.name for server in servers}


CRITERIA: dict[str, Callable[[Site], dict[str, Any]]] = {
    "name": lambda s: {"name": s.cluster_a["name"]},
    "region": lambda s: {"region": s.a.region["slug"]},
    "type": lambda s: {"type": s.a.cluster_type["slug"]},
    "site": lambda s: {"site": s.a.site["slug"]},
    "tenant": lambda s: {"tenant": s.a.tenant["slug"]},
    "tags": lambda s: {"tags": [s.tag["slug"]]},
    # Role narrows devices, not clusters: both clusters match the type list, only A's devices the role.
    "role": lambda s: {"role": s.a.role["slug"], "region": s.a.region["slug"]},
}


@pytest.mark.parametrize("criterion", list(CRITERIA))
def test_creates_bmc_and_secret_for_each_selected_device(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site, criterion: str
) -> None:
    objects.create_import(namespace, "import", {"clusters": [CRITERIA[criterion](site)]})
    ci = objects.synced_import(namespace, "import")
    bmcs = objects.owned("bmcs", namespace, "import")
    assert set(bmcs) == by_name(site.servers_a)
    assert ci["status"]["counts"]["devices"] == 3
    assert ci["status"]["counts"]["created"] == 3
    ready = next(c for c in ci["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Synced")
    server = site.servers_a[0]
    bmc = bmcs[server.name]
    assert bmc["spec"] == {
        "access": {"ip": server.address, "macAddress": server.mac},
        "protocol": {"name": "Redfish", "port": 443},
        "bmcSecretRef": {"name": server.name},
        "hostname": f"{server.name}-r.example.com",
    }
    # BMCs are metal-operator's to delete: we leave no finalizer that a stopped operator would hold.
    assert not bmc["metadata"].get("finalizers")
    labels = bmc["metadata"]["labels"]
    assert labels["topology.kubernetes.io/region"] == site.a.region["slug"]
    assert labels["topology.kubernetes.io/zone"] == site.a.site["slug"]
    assert labels["kubernetes.metal.cloud.sap/cluster"] == site.cluster_a["name"]
    assert labels["kubernetes.metal.cloud.sap/device-id"] == str(server.device["id"])
    assert labels["app.kubernetes.io/managed-by"] == "argora-ironcore"
    secret = objects.get_metal("bmcsecrets", server.name)
    assert secret is not None and decoded(secret) == DEFAULT_CREDENTIALS


def test_entry_credentials_in_the_original_keys(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site
) -> None:
    objects.create_secret(namespace, "bmc", {"bmcUser": "admin", "bmcPassword": "s3cret"})
    selectors = [
        {"name": site.cluster_a["name"], "bmcCredentialsRef": {"name": "bmc"}},
        {"name": site.cluster_b["name"]},
    ]
    objects.create_import(namespace, "import", {"clusters": selectors})
    objects.synced_import(namespace, "import")
    secret_a = objects.get_metal("bmcsecrets", site.servers_a[0].name)
    secret_b = objects.get_metal("bmcsecrets", site.servers_b[0].name)
    assert secret_a is not None and decoded(secret_a) == {"username": "admin", "password": "s3cret"}
    assert secret_b is not None and decoded(secret_b) == DEFAULT_CREDENTIALS
    # Rotated credentials follow on the next pass.
    objects.replace_secret_data(namespace, "bmc", {"bmcPassword": "rotated"})
    ci = objects.resync(namespace, "import")
    secret_a = objects.get_metal("bmcsecrets", site.servers_a[0].name)
    assert secret_a is not None and decoded(secret_a)["password"] == "rotated"
    assert ci["status"]["counts"]["updated"] == 3
    assert "rotated" not in ironcore.log() and "s3cret" not in ironcore.log()


def test_missing_credentials_are_reported_not_fatal(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site
) -> None:
    selectors = [
        {"name": site.cluster_a["name"], "bmcCredentialsRef": {"name": "absent"}},
        {"name": site.cluster_b["name"]},
    ]
    objects.create_import(namespace, "import", {"clusters": selectors})
    ci = objects.synced_import(namespace, "import")
    assert set(objects.owned("bmcs", namespace, "import")) == by_name(site.servers_b)
    problems = ci["status"]["problems"]
    assert {p["reason"] for p in problems} == {"CredentialsUnavailable"}
    assert f"Secret {namespace}/absent not found" in problems[0]["message"]


def test_a_secret_that_did_not_opt_in_is_never_copied_into_bmc_secrets(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site
) -> None:
    # Any Secret of the namespace, e.g. an application's: creating a ClusterImport must not copy it out.
    objects.create_secret(namespace, "app-db", {"username": "app", "password": "db-password"}, bmc_credentials=False)
    selectors = [{"name": site.cluster_a["name"], "bmcCredentialsRef": {"name": "app-db"}}]
    objects.create_import(namespace, "import", {"clusters": selectors})
    ci = objects.synced_import(namespace, "import")
    assert objects.owned("bmcs", namespace, "import") == {}
    assert objects.owned("bmcsecrets", namespace, "import") == {}
    problems = ci["status"]["problems"]
    assert {p["reason"] for p in problems} == {"CredentialsNotOptedIn"}
    assert {p["device"] for p in problems} == by_name(site.servers_a)
    assert "argora.cloud.sap/bmc-credentials" in problems[0]["message"]
    assert "db-password" not in str(ci) and "db-password" not in ironcore.log()
    # Labelled by its owner, it serves on the next pass.
    objects.core.patch_namespaced_secret(
        "app-db", namespace, {"metadata": {"labels": {"argora.cloud.sap/bmc-credentials": "true"}}}
    )
    objects.resync(namespace, "import")
    assert set(objects.owned("bmcsecrets", namespace, "import")) == by_name(site.servers_a)


def test_ignored_bmc_secret_is_never_overwritten(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site
) -> None:
    objects.create_secret(namespace, "bmc", {"username": "u", "password": "p1"})
    objects.create_import(
        namespace, "import", {"clusters": [{"name": site.cluster_a["name"], "bmcCredentialsRef": {"name": "bmc"}}]}
    )
    objects.synced_import(namespace, "import")
    kept, followed = site.servers_a[0].name, site.servers_a[1].name
    hand_edit = {
        "metadata": {"annotations": {"argora.cloud.sap/ignore": "true"}},
        "data": {"password": base64.b64encode(b"hand").decode()},
    }
    objects.custom.patch_cluster_custom_object("metal.ironcore.dev", "v1alpha1", "bmcsecrets", kept, hand_edit)
    objects.replace_secret_data(namespace, "bmc", {"password": "p2"})
    objects.resync(namespace, "import")
    kept_secret, followed_secret = objects.get_metal("bmcsecrets", kept), objects.get_metal("bmcsecrets", followed)
    assert kept_secret is not None and decoded(kept_secret)["password"] == "hand"
    assert followed_secret is not None and decoded(followed_secret)["password"] == "p2"


def test_changes_in_netbox_follow_on_the_next_pass(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site, seeder: NetBoxSeeder
) -> None:
    objects.create_import(namespace, "import", {"clusters": [{"name": site.cluster_a["name"]}]})
    objects.synced_import(namespace, "import")
    server = site.servers_a[0]
    gpu = f"{site.prefix}-gpu"
    new_role = seeder.create_one("dcim/device-roles", name=gpu, slug=gpu, color="ff0000")
    new_region = seeder.create_one("dcim/regions", name=f"{site.prefix}-r2", slug=f"{site.prefix}-r2")
    new_site = seeder.create_one(
        "dcim/sites", name=f"{site.prefix}-s2", slug=f"{site.prefix}-s2", status="active", region=new_region["id"]
    )
    # A device may leave its cluster's site only when the cluster is not bound to that site.
    seeder.update("virtualization/clusters", site.cluster_a["id"], scope_type=None, scope_id=None)
    seeder.update("ipam/ip-addresses", server.ip["id"], dns_name="renamed-r.example.com")
    seeder.update("dcim/devices", server.device["id"], role=new_role["id"], site=new_site["id"])
    ci = objects.resync(namespace, "import")
    bmc = objects.get_metal("bmcs", server.name)
    assert bmc is not None
    assert bmc["spec"]["hostname"] == "renamed-r.example.com"
    assert bmc["metadata"]["labels"]["kubernetes.metal.cloud.sap/role"] == new_role["slug"]
    assert bmc["metadata"]["labels"]["topology.kubernetes.io/zone"] == new_site["slug"]
    assert bmc["metadata"]["labels"]["topology.kubernetes.io/region"] == new_region["slug"]
    assert ci["status"]["counts"]["updated"] == 1 and ci["status"]["counts"]["unchanged"] == 2
    # Nothing changed since: a pass writes nothing.
    ci = objects.resync(namespace, "import")
    assert ci["status"]["counts"]["unchanged"] == 3


@pytest.mark.parametrize("policy", ["Report", "Recreate"])
def test_oob_ip_change_is_reported_or_recreated(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site, seeder: NetBoxSeeder, policy: str
) -> None:
    objects.create_import(
        namespace, "import", {"clusters": [{"name": site.cluster_a["name"]}], "onImmutableChange": policy}
    )
    objects.synced_import(namespace, "import")
    server = site.servers_a[0]
    new_ip = fresh_ipv4()
    seeder.update("ipam/ip-addresses", server.ip["id"], address=new_ip)
    ci = objects.resync(namespace, "import")
    bmc = objects.get_metal("bmcs", server.name)
    assert bmc is not None
    drift = next(c for c in ci["status"]["conditions"] if c["type"] == "AccessInSync")
    if policy == "Report":
        assert bmc["spec"]["access"]["ip"] == server.address
        assert drift["status"] == "False" and drift["reason"] == "AccessChanged"
        assert [p["reason"] for p in ci["status"]["problems"]] == ["AccessDrift"]
        assert any(reason == "AccessDrift" for _, reason, _ in objects.events(namespace, "import"))
    else:
        assert bmc["spec"]["access"]["ip"] == new_ip.split("/")[0]
        assert drift["status"] == "True"


def test_devices_that_leave_the_selection_are_pruned_within_the_cap(
    ironcore: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    site = Site(seeder, prefix, servers=5)
    objects.create_import(namespace, "import", {"clusters": [{"name": site.cluster_a["name"]}], "maxPrunePerPass": 4})
    objects.synced_import(namespace, "import")
    moved, offline, deleted, kept = site.servers_a[0], site.servers_a[1], site.servers_a[2], site.servers_a[3:]
    seeder.update("dcim/devices", moved.device["id"], cluster=site.cluster_b["id"], site=site.b.site["id"])
    seeder.update("dcim/devices", offline.device["id"], status="offline")
    seeder.delete("dcim/devices", [deleted.device["id"]])
    ci = objects.resync(namespace, "import")
    # Six objects are stale, four may go per pass: two device pairs now, one held back.
    assert ci["status"]["counts"]["pruned"] == 4
    assert ci["status"]["counts"]["pruneHeldBack"] == 2
    held = next(c for c in ci["status"]["conditions"] if c["type"] == "PruneComplete")
    assert held["status"] == "False" and "at most 4 objects are pruned per pass" in held["message"]
    ci = objects.resync(namespace, "import")
    assert ci["status"]["counts"]["pruned"] == 2
    assert set(objects.owned("bmcs", namespace, "import")) == by_name(kept)
    assert set(objects.owned("bmcsecrets", namespace, "import")) == by_name(kept)


def test_prune_off_keeps_everything(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site, seeder: NetBoxSeeder
) -> None:
    objects.create_import(namespace, "import", {"clusters": [{"name": site.cluster_a["name"]}], "prune": False})
    objects.synced_import(namespace, "import")
    seeder.update("dcim/devices", site.servers_a[0].device["id"], status="offline")
    ci = objects.resync(namespace, "import")
    assert ci["status"]["counts"]["pruned"] == 0
    assert set(objects.owned("bmcs", namespace, "import")) == by_name(site.servers_a)


def test_netbox_down_changes_nothing_and_recovers(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site, netbox: NetBoxServer, seeder: NetBoxSeeder
) -> None:
    objects.create_import(namespace, "import", {"clusters": [{"name": site.cluster_a["name"]}]})
    objects.synced_import(namespace, "import")
    seeder.update("dcim/devices", site.servers_a[0].device["id"], status="offline")
    with netbox.database_stopped():
        objects.request_sync(namespace, "import")

        def netbox_condition() -> dict[str, Any] | None:
            ci = objects.get_import(namespace, "import") or {}
            conditions = (ci.get("status") or {}).get("conditions") or []
            reachable = next((c for c in conditions if c["type"] == "NetBoxReachable"), None)
            return reachable if reachable and reachable["status"] == "False" else None

        condition = wait_for(netbox_condition, 60, "NetBoxReachable=False")
        assert condition["reason"] == "NetBoxUnavailable"
        assert set(objects.owned("bmcs", namespace, "import")) == by_name(site.servers_a)
        # The original operator's status fields, which users' alerts watch, say so too.
        failed = (objects.get_import(namespace, "import") or {})["status"]
        assert failed["state"] == "Error" and "existing objects are left as they are" in failed["description"]
    ci = objects.resync(namespace, "import")
    reachable = next(c for c in ci["status"]["conditions"] if c["type"] == "NetBoxReachable")
    assert reachable["status"] == "True"
    assert ci["status"]["state"] == "Ready" and "description" not in ci["status"]
    assert set(objects.owned("bmcs", namespace, "import")) == by_name(site.servers_a[1:])


def test_bad_devices_do_not_block_the_good_ones(
    ironcore: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    good = add_servers(topology, cluster, [f"{prefix}-good"])
    add_servers(topology, cluster, [f"{prefix}-no-oob"], set_oob_ip=False, interface_name="eth0")
    # NetBox tells these names apart; as Kubernetes names both become "...-twin-x".
    add_servers(topology, cluster, [f"{prefix}-twin_x", f"{prefix}-twin-x"])
    objects.create_import(namespace, "import", {"clusters": [{"name": cluster["name"]}]})
    ci = objects.synced_import(namespace, "import")
    assert set(objects.owned("bmcs", namespace, "import")) == by_name(good)
    reasons = sorted((p["device"], p["reason"]) for p in ci["status"]["problems"])
    assert reasons == [
        (f"{prefix}-no-oob", "NoOOBIP"),
        (f"{prefix}-twin-x", "NameCollision"),
        (f"{prefix}-twin_x", "NameCollision"),
    ]
    assert ci["status"]["counts"]["skipped"] == 3
    devices_synced = next(c for c in ci["status"]["conditions"] if c["type"] == "DevicesSynced")
    assert devices_synced["status"] == "False"
    assert any(reason == "DevicesSkipped" for _, reason, _ in objects.events(namespace, "import"))


def test_macs_and_bmc_ports_as_production_netbox_holds_them(
    ironcore: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    """NetBox 4.2+ MAC objects (assigned but not primary, several per port), BMC ports still under the
    vendor's name with the OOB IP on them, and an OOB IP that NetBox links to another device's port."""
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    shapes: list[tuple[str, dict[str, Any]]] = [
        ("primary", {}),
        ("assigned", {"mac_shape": "assigned"}),
        ("two-primary", {"mac_shape": "two-with-primary"}),
        ("two-assigned", {"mac_shape": "two-assigned"}),
        ("idrac", {"interface_name": "iDRAC", "mac_shape": "assigned"}),
        ("ilo-no-oob", {"interface_name": "iLO", "set_oob_ip": False}),
        ("nat", {"set_oob_ip": False}),
    ]
    servers = {name: add_servers(topology, cluster, [f"{prefix}-{name}"], **shape)[0] for name, shape in shapes}
    # The NAT'd OOB IP sits on a firewall's port (a device outside the cluster); NetBox accepts it as the
    # OOB IP because its inside address is on the server's own port.
    (firewall,) = add_servers(topology, None, [f"{prefix}-fw"], set_oob_ip=False, interface_name="outside")
    seeder.update("ipam/ip-addresses", firewall.ip["id"], nat_inside=servers["nat"].ip["id"])
    seeder.update("dcim/devices", servers["nat"].device["id"], oob_ip=firewall.ip["id"])

    objects.create_import(namespace, "import", {"clusters": [{"name": cluster["name"]}]})
    ci = objects.synced_import(namespace, "import")

    bmcs = objects.owned("bmcs", namespace, "import")
    access = {name: bmcs[server.name]["spec"]["access"] for name, server in servers.items()}
    expected = {name: {"ip": server.address, "macAddress": server.mac} for name, server in servers.items()}
    expected["two-assigned"] = {"ip": servers["two-assigned"].address}
    expected["nat"] = {"ip": firewall.address}
    assert access == expected
    assert all(server.mac for name, server in servers.items() if name != "two-assigned")
    problems = sorted((p["device"], p["reason"]) for p in ci["status"]["problems"])
    assert problems == [(f"{prefix}-nat", "OOBIPOnOtherDevice"), (f"{prefix}-two-assigned", "AmbiguousMAC")]
    assert (ci["status"]["counts"]["created"], ci["status"]["counts"]["warnings"]) == (7, 2)
    assert any(reason == "DevicesIncomplete" for _, reason, _ in objects.events(namespace, "import"))


def test_edited_and_deleted_objects_are_put_back(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site
) -> None:
    objects.create_import(namespace, "import", {"clusters": [{"name": site.cluster_a["name"]}]})
    objects.synced_import(namespace, "import")
    edited, deleted = site.servers_a[0].name, site.servers_a[1].name
    objects.custom.patch_cluster_custom_object(
        "metal.ironcore.dev", "v1alpha1", "bmcs", edited, {"spec": {"protocol": {"port": 8443}}}
    )
    objects.custom.delete_cluster_custom_object("metal.ironcore.dev", "v1alpha1", "bmcsecrets", deleted)
    wait_for(
        lambda: (objects.get_metal("bmcs", edited) or {}).get("spec", {}).get("protocol", {}).get("port") == 443,
        30,
        "BMC put back",
    )
    wait_for(lambda: objects.get_metal("bmcsecrets", deleted), 30, "BMCSecret put back")


@pytest.mark.parametrize("policy", ["Delete", "Orphan"])
def test_deleting_the_cluster_import(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site, policy: str
) -> None:
    objects.create_import(
        namespace, "import", {"clusters": [{"name": site.cluster_a["name"]}], "deletionPolicy": policy}
    )
    objects.synced_import(namespace, "import")
    objects.delete_import(namespace, "import")
    wait_for(lambda: objects.get_import(namespace, "import") is None, 30, "ClusterImport gone")
    remaining = objects.owned("bmcs", namespace, "import")
    assert set(remaining) == (by_name(site.servers_a) if policy == "Orphan" else set())
    assert set(objects.owned("bmcsecrets", namespace, "import")) == set(remaining)


def test_a_cluster_import_named_beyond_what_a_label_holds_syncs_repairs_and_is_deleted(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site
) -> None:
    name = "import-" + "of-the-bare-metal-servers-of-cluster-a-" * 3 + "and-nothing-else"
    assert len(name) > 100
    objects.create_import(namespace, name, {"clusters": [{"name": site.cluster_a["name"]}]})
    ci = objects.synced_import(namespace, name)
    ready = next(c for c in ci["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Synced")
    bmcs = objects.owned("bmcs", namespace, name)
    assert set(bmcs) == by_name(site.servers_a)
    assert {bmc["metadata"]["labels"]["argora.cloud.sap/owner-name"] for bmc in bmcs.values()} == {
        name_label_value(name)
    }
    # The repair of an edit waits for the import's own passes, though its labels hold only a hash of its name.
    edited = site.servers_a[0].name
    objects.custom.patch_cluster_custom_object(
        "metal.ironcore.dev", "v1alpha1", "bmcs", edited, {"spec": {"protocol": {"port": 8443}}}
    )
    wait_for(
        lambda: (objects.get_metal("bmcs", edited) or {}).get("spec", {}).get("protocol", {}).get("port") == 443,
        30,
        "BMC put back",
    )
    objects.delete_import(namespace, name)
    wait_for(lambda: objects.get_import(namespace, name) is None, 30, "ClusterImport gone")
    assert objects.owned("bmcs", namespace, name) == {} and objects.owned("bmcsecrets", namespace, name) == {}


def test_a_second_cluster_import_never_touches_the_first_ones_objects(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site
) -> None:
    objects.create_import(namespace, "first", {"clusters": [{"name": site.cluster_a["name"]}]})
    objects.synced_import(namespace, "first")
    first = objects.owned("bmcs", namespace, "first")
    # The second one selects the same devices plus others: it reports the taken names, takes nothing.
    objects.create_import(
        namespace, "second", {"clusters": [{"name": site.cluster_a["name"]}, {"name": site.cluster_b["name"]}]}
    )
    ci = objects.synced_import(namespace, "second")
    assert {p["reason"] for p in ci["status"]["problems"]} == {"NameTaken"}
    assert set(objects.owned("bmcs", namespace, "second")) == by_name(site.servers_b)
    # Narrowed to nothing of its own, it prunes only what it made.
    objects.patch_import(namespace, "second", {"spec": {"clusters": [{"name": site.cluster_a["name"]}]}})
    objects.synced_import(namespace, "second")
    assert objects.owned("bmcs", namespace, "second") == {}
    assert {
        name: bmc["metadata"]["resourceVersion"] for name, bmc in objects.owned("bmcs", namespace, "first").items()
    } == {name: bmc["metadata"]["resourceVersion"] for name, bmc in first.items()}


def test_selector_that_matches_nothing_is_reported(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site
) -> None:
    selectors = [{"name": site.cluster_a["name"]}, {"region": "no-such-region"}, {"name": "no-such-cluster"}]
    objects.create_import(namespace, "import", {"clusters": selectors})
    ci = objects.synced_import(namespace, "import")
    assert set(objects.owned("bmcs", namespace, "import")) == by_name(site.servers_a)
    matched = next(c for c in ci["status"]["conditions"] if c["type"] == "ClustersMatched")
    assert matched["status"] == "False"
    assert "spec.clusters[1]" in matched["message"] and "spec.clusters[2]" in matched["message"]


def test_a_selector_netbox_refuses_blocks_every_prune(
    ironcore: OperatorProcess, objects: Objects, namespace: str, site: Site, seeder: NetBoxSeeder
) -> None:
    """A region renamed in NetBox makes NetBox refuse the entry (400): that says nothing about its devices,
    whose BMCs must stay, nor about the other entries' devices that did leave."""
    selectors = [{"region": site.a.region["slug"]}, {"name": site.cluster_b["name"]}]
    objects.create_import(namespace, "import", {"clusters": selectors})
    objects.synced_import(namespace, "import")
    seeder.update("dcim/regions", site.a.region["id"], slug=f"{site.a.region['slug']}-renamed")
    seeder.update("dcim/devices", site.servers_b[0].device["id"], status="offline")
    ci = objects.resync(namespace, "import")
    assert ci["status"]["counts"]["pruned"] == 0
    held = next(c for c in ci["status"]["conditions"] if c["type"] == "PruneComplete")
    assert held["status"] == "False" and "NetBox refused spec.clusters[0]" in held["message"], held
    assert set(objects.owned("bmcs", namespace, "import")) == by_name(site.servers_a) | by_name(site.servers_b)


def test_recreate_deletes_no_more_bmcs_per_pass_than_the_prune_cap(
    ironcore: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    """A bulk change of OOB IPs in NetBox (a renumbering, or a mistake) recreates the BMCs a few at a time."""
    site = Site(seeder, prefix, servers=5)
    spec = {"clusters": [{"name": site.cluster_a["name"]}], "onImmutableChange": "Recreate", "maxPrunePerPass": 2}
    objects.create_import(namespace, "import", spec)
    objects.synced_import(namespace, "import")
    new_ips = {server.name: fresh_ipv4() for server in site.servers_a}
    for server in site.servers_a:
        seeder.update("ipam/ip-addresses", server.ip["id"], address=new_ips[server.name])

    def recreated() -> set[str]:
        bmcs = objects.owned("bmcs", namespace, "import")
        return {name for name, bmc in bmcs.items() if bmc["spec"]["access"]["ip"] == new_ips[name].split("/")[0]}

    ci = objects.resync(namespace, "import")
    assert len(recreated()) == 2
    waiting = [p for p in ci["status"]["problems"] if p["reason"] == "AccessDrift"]
    assert len(waiting) == 3 and all("recreating waits for a later pass" in p["message"] for p in waiting)
    objects.resync(namespace, "import")
    assert len(recreated()) == 4
    objects.resync(namespace, "import")
    assert recreated() == by_name(site.servers_a)
