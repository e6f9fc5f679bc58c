"""argora-update as a process, correcting a real NetBox; the results are read back from NetBox itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_servers, fresh_ipv4, interface_names

pytestmark = pytest.mark.integration

VENDOR_NAMES = ["iDRAC", "iLO", "imm", "XClarity", "cimc", "iRMC", "XCC"]


@pytest.fixture(scope="module")
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


@pytest.fixture(scope="module")
def update_operator(
    kube: KubeCluster, netbox: NetBoxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    # The only controller that writes to NetBox: it gets a token that may.
    workdir = tmp_path_factory.mktemp("update")
    operator = OperatorProcess("update", workdir, operator_environment(kube, netbox, netbox.v2_token)).start()
    yield operator
    operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


def run_update(objects: Objects, namespace: str, spec: dict[str, Any], name: str = "fix") -> dict[str, Any]:
    objects.create_import(namespace, name, spec, kind="Update")
    return objects.synced_import(namespace, name, kind="Update")


def oob_address(seeder: NetBoxSeeder, device: dict[str, Any]) -> str | None:
    (found,) = seeder.get("dcim/devices", id=device["id"])
    return found["oob_ip"]["address"] if found["oob_ip"] else None


def changelog_size(seeder: NetBoxSeeder) -> int:
    response = seeder.session.get(f"{seeder.url}/api/core/object-changes/", params={"limit": 1}, timeout=60)
    response.raise_for_status()
    total: int = response.json()["count"]
    return total


def test_every_vendor_name_is_renamed_and_the_oob_ip_set(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    servers = [
        add_servers(topology, cluster, [f"{prefix}-{vendor.lower()}"], set_oob_ip=False, interface_name=vendor)[0]
        for vendor in VENDOR_NAMES
    ]
    status = run_update(objects, namespace, {"clusters": [{"name": cluster["name"]}]})["status"]
    assert status["applied"]["rename"] == 7 and status["applied"]["oobIP"] == 7
    assert status["state"] == "Ready"
    for server in servers:
        assert interface_names(seeder, server.device) == ["remoteboard"]
        assert oob_address(seeder, server.device) == server.ip["address"]
    assert {reason for _, reason, _ in objects.events(namespace, "fix")} >= {"InterfacesRenamed", "OOBIPsSet"}
    # A second pass finds nothing to do and writes nothing.
    before = changelog_size(seeder)
    status = objects.resync(namespace, "fix", kind="Update")["status"]
    assert status["planned"] == {"rename": 0, "oobIP": 0, "platform": 0, "interfaceDeleted": 0, "ipDeleted": 0}
    assert changelog_size(seeder) == before


def test_conflicts_and_unusable_bmc_ips_are_reported_and_left_alone(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    (both,) = add_servers(topology, cluster, [f"{prefix}-both"], set_oob_ip=False, interface_name="iDRAC")
    seeder.create_one("dcim/interfaces", device=both.device["id"], name="remoteboard", type="1000base-t")
    (no_ip,) = add_servers(topology, cluster, [f"{prefix}-no-ip"], set_oob_ip=False, interface_name="iLO")
    seeder.delete("ipam/ip-addresses", [no_ip.ip["id"]])
    (two_ips,) = add_servers(topology, cluster, [f"{prefix}-two-ips"], set_oob_ip=False)
    seeder.create_one(
        "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface",
        assigned_object_id=two_ips.interface["id"],
    )  # fmt: skip
    status = run_update(objects, namespace, {"clusters": [{"name": cluster["name"]}]})["status"]
    reasons = sorted((p["device"], p["reason"]) for p in status["problems"])
    assert reasons == [
        (f"{prefix}-both", "TargetNameTaken"),
        (f"{prefix}-no-ip", "OOBIPNotSet"),
        (f"{prefix}-two-ips", "OOBIPNotSet"),
    ]
    assert interface_names(seeder, both.device) == ["iDRAC", "remoteboard"]
    assert interface_names(seeder, no_ip.device) == ["remoteboard"]  # renamed; only the OOB IP is missing
    assert oob_address(seeder, no_ip.device) is None and oob_address(seeder, two_ips.device) is None
    conflicts = next(c for c in status["conditions"] if c["type"] == "NoConflicts")
    assert conflicts["status"] == "False"


def test_platform_is_set_only_when_asked(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    old = seeder.create_one("dcim/platforms", name=f"{prefix}-old", slug=f"{prefix}-old")
    new = seeder.create_one("dcim/platforms", name=f"{prefix}-new", slug=f"{prefix}-new")
    (server,) = add_servers(topology, cluster, [f"{prefix}-s"], platform=old["id"])
    run_update(objects, namespace, {"clusters": [{"name": cluster["name"]}]}, name="unset")
    assert seeder.get("dcim/devices", id=server.device["id"])[0]["platform"]["slug"] == old["slug"]
    status = run_update(objects, namespace, {"clusters": [{"name": cluster["name"]}], "platform": new["slug"]})[
        "status"
    ]
    assert status["applied"]["platform"] == 1
    assert seeder.get("dcim/devices", id=server.device["id"])[0]["platform"]["slug"] == new["slug"]
    assert status["changes"] == [
        {"device": server.name, "action": "platform", "before": old["slug"], "after": new["slug"], "applied": True}
    ]


def vmk(seeder: NetBoxSeeder, server: Server, name: str = "vmk0", ips: int = 1) -> list[int]:
    """A VMK interface with `ips` addresses; returns the ids of the addresses."""
    interface = seeder.create_one("dcim/interfaces", device=server.device["id"], name=name, type="virtual")
    addresses = seeder.create(
        "ipam/ip-addresses",
        [
            {"address": fresh_ipv4(), "assigned_object_type": "dcim.interface", "assigned_object_id": interface["id"]}
            for _ in range(ips)
        ],
    )
    return [address["id"] for address in addresses]


def test_vmk_interfaces_and_their_ips_go_but_not_in_other_clusters(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    selected, other = topology.cluster("selected"), topology.cluster("other")
    (mine,) = add_servers(topology, selected, [f"{prefix}-mine"])
    (theirs,) = add_servers(topology, other, [f"{prefix}-theirs"])
    my_ips = [*vmk(seeder, mine, "vmk0", ips=2), *vmk(seeder, mine, "vmk1")]
    their_ips = vmk(seeder, theirs, "vmk0")
    status = run_update(objects, namespace, {"clusters": [{"name": selected["name"]}]})["status"]
    assert status["applied"]["interfaceDeleted"] == 2 and status["applied"]["ipDeleted"] == 3
    assert interface_names(seeder, mine.device) == ["remoteboard"]
    assert seeder.get("ipam/ip-addresses", id=my_ips) == []
    assert interface_names(seeder, theirs.device) == ["remoteboard", "vmk0"]
    assert [ip["id"] for ip in seeder.get("ipam/ip-addresses", id=their_ips)] == their_ips


def test_dry_run_plans_everything_and_changes_nothing(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    (server,) = add_servers(topology, cluster, [f"{prefix}-s"], set_oob_ip=False, interface_name="iDRAC")
    vmk(seeder, server)
    before = changelog_size(seeder)
    status = run_update(objects, namespace, {"clusters": [{"name": cluster["name"]}], "dryRun": True})["status"]
    assert changelog_size(seeder) == before
    assert status["planned"] == {"rename": 1, "oobIP": 1, "platform": 0, "interfaceDeleted": 1, "ipDeleted": 1}
    assert status["applied"] == {"rename": 0, "oobIP": 0, "platform": 0, "interfaceDeleted": 0, "ipDeleted": 0}
    assert {(c["action"], c["applied"]) for c in status["changes"]} == {
        ("rename", False), ("oob_ip", False), ("interface_deleted", False), ("ip_deleted", False),
    }  # fmt: skip
    assert interface_names(seeder, server.device) == ["iDRAC", "vmk0"]
    # Turning dry run off applies the same plan.
    objects.patch_import(namespace, "fix", {"spec": {"dryRun": False}}, kind="Update")
    wait_for(lambda: interface_names(seeder, server.device) == ["remoteboard"], 60, "applied")


def test_deletes_are_capped_per_pass(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    servers = add_servers(topology, cluster, [f"{prefix}-a", f"{prefix}-b"])
    for server in servers:
        vmk(seeder, server)
    status = run_update(objects, namespace, {"clusters": [{"name": cluster["name"]}], "maxDeletesPerPass": 3})["status"]
    # An interface goes together with its IP (2 objects); the second pair does not fit in what is left.
    assert status["applied"]["interfaceDeleted"] == 1 and status["deletesHeldBack"] == 2
    status = objects.resync(namespace, "fix", kind="Update")["status"]
    assert status["applied"]["interfaceDeleted"] == 1 and status["deletesHeldBack"] == 0
    assert all(interface_names(seeder, server.device) == ["remoteboard"] for server in servers)


def test_netbox_down_writes_nothing_and_recovers(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str,
    netbox: NetBoxServer,
) -> None:  # fmt: skip
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    (server,) = add_servers(topology, cluster, [f"{prefix}-s"])
    vmk(seeder, server)
    with netbox.database_stopped():
        objects.create_import(namespace, "fix", {"clusters": [{"name": cluster["name"]}]}, kind="Update")

        def unavailable() -> bool:
            conditions = ((objects.get_import(namespace, "fix", "Update") or {}).get("status") or {}).get("conditions")
            return any(c["type"] == "Ready" and c["reason"] == "NetBoxUnavailable" for c in conditions or [])

        wait_for(unavailable, 60, "Ready=False NetBoxUnavailable")
        assert ((objects.get_import(namespace, "fix", "Update") or {}).get("status") or {}).get("state") == "Error"
    # The work queue retries the pass on its own once NetBox answers again.
    wait_for(lambda: interface_names(seeder, server.device) == ["remoteboard"], 120, "recovered")
