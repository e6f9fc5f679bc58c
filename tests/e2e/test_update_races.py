"""argora-update when NetBox changes between a pass's read and its writes.

The pass runs in this process, step by step, against the real NetBox and API server, so the change can be
made exactly between the read and the writes; the outcome is read from the Update's status (as the
controller writes it) and from NetBox. No argora-update process runs in this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from pydantic import SecretStr

from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.settings import Settings
from argora_dev.kubeobjects import Objects
from argora_dev.netbox import NetBoxServer
from argora_dev.seed import NetBoxSeeder, Topology, add_servers, fresh_ipv4, interface_names
from update_controller.reconcile import UpdateSteps

pytestmark = pytest.mark.integration


@pytest.fixture
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


@pytest.fixture
def steps(netbox: NetBoxServer, api_client: client.ApiClient) -> UpdateSteps:
    netbox_client = NetBox(Settings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.v2_token)))
    return UpdateSteps(netbox_client, Kube(api_client, "argora-update"))


def one_pass(
    steps: UpdateSteps, objects: Objects, namespace: str, spec: dict[str, Any], meanwhile: Callable[[], object]
) -> dict[str, Any]:
    """A pass of a new Update `fix` with `meanwhile` done between its read and its writes; its status."""
    objects.create_import(namespace, "fix", spec, kind="Update")
    body = objects.get_import(namespace, "fix", kind="Update")
    assert body is not None
    facts = steps.read(body)
    meanwhile()
    planned = steps.plan(body, facts)
    steps.report(body, facts, planned, steps.converge(body, planned))
    status: dict[str, Any] = (objects.get_import(namespace, "fix", kind="Update") or {})["status"]
    return status


def vmk(seeder: NetBoxSeeder, device: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    interface = seeder.create_one("dcim/interfaces", device=device["id"], name="vmk0", type="virtual")
    address = seeder.create_one(
        "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface",
        assigned_object_id=interface["id"],
    )  # fmt: skip
    return interface, address


def test_an_ip_moved_or_added_after_the_read_keeps_its_interface(
    steps: UpdateSteps, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    moved, added, untouched = add_servers(topology, cluster, [f"{prefix}-moved", f"{prefix}-added", f"{prefix}-ok"])
    _, moved_ip = vmk(seeder, moved.device)
    added_vmk, _ = vmk(seeder, added.device)
    _, untouched_ip = vmk(seeder, untouched.device)
    eth1 = seeder.create_one("dcim/interfaces", device=moved.device["id"], name="eth1", type="1000base-t")
    late: list[dict[str, Any]] = []

    def meanwhile() -> None:
        seeder.update("ipam/ip-addresses", moved_ip["id"], assigned_object_id=eth1["id"])
        fields = {"assigned_object_type": "dcim.interface", "assigned_object_id": added_vmk["id"]}
        late.append(seeder.create_one("ipam/ip-addresses", address=fresh_ipv4(), **fields))

    status = one_pass(steps, objects, namespace, {"clusters": [{"name": cluster["name"]}]}, meanwhile)

    problems = sorted((p["device"], p["reason"]) for p in status["problems"])
    assert problems == [(added.name, "RecheckFailed"), (moved.name, "RecheckFailed")]
    assert status["failed"] == 2
    assert status["applied"]["interfaceDeleted"] == 1 and status["applied"]["ipDeleted"] == 1
    # The moved IP stays where it went, with the VMK it left; the VMK with a new IP keeps both IPs.
    (still,) = seeder.get("ipam/ip-addresses", id=moved_ip["id"])
    assert still["assigned_object_id"] == eth1["id"]
    assert interface_names(seeder, moved.device) == ["eth1", "remoteboard", "vmk0"]
    assert interface_names(seeder, added.device) == ["remoteboard", "vmk0"]
    assert len(seeder.get("ipam/ip-addresses", interface_id=added_vmk["id"])) == 2
    assert late and seeder.get("ipam/ip-addresses", id=late[0]["id"])
    # The device nobody touched is corrected in the same pass.
    assert interface_names(seeder, untouched.device) == ["remoteboard"]
    assert seeder.get("ipam/ip-addresses", id=untouched_ip["id"]) == []


def test_a_rename_refused_after_the_read_fails_only_its_device(
    steps: UpdateSteps, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    names = [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    servers = add_servers(topology, cluster, names, set_oob_ip=False, interface_name="iDRAC")
    taken = servers[1]

    def meanwhile() -> None:
        # Somebody gives the device its target name by hand: NetBox now refuses the rename.
        seeder.create_one("dcim/interfaces", device=taken.device["id"], name="remoteboard", type="1000base-t")

    status = one_pass(steps, objects, namespace, {"clusters": [{"name": cluster["name"]}]}, meanwhile)

    (problem,) = status["problems"]
    assert (problem["device"], problem["reason"]) == (taken.name, "Rejected")
    assert "already exists" in problem["message"]
    assert status["applied"]["rename"] == 2 and status["applied"]["oobIP"] == 2 and status["failed"] == 1
    for server in servers:
        (device,) = seeder.get("dcim/devices", id=server.device["id"])
        if server is taken:
            assert interface_names(seeder, server.device) == ["iDRAC", "remoteboard"]
            assert device["oob_ip"] is None  # left alone after the refused rename
        else:
            assert interface_names(seeder, server.device) == ["remoteboard"]
            assert device["oob_ip"]["id"] == server.ip["id"]


def test_an_interface_renamed_after_the_read_is_not_deleted(
    steps: UpdateSteps, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    renamed, untouched = add_servers(topology, cluster, [f"{prefix}-renamed", f"{prefix}-ok"])
    renamed_vmk, renamed_ip = vmk(seeder, renamed.device)
    _, untouched_ip = vmk(seeder, untouched.device)

    def meanwhile() -> None:
        # Somebody makes the leftover VMK a real interface: it is no VMK any more, not ours to delete.
        seeder.update("dcim/interfaces", renamed_vmk["id"], name="storage0")

    status = one_pass(steps, objects, namespace, {"clusters": [{"name": cluster["name"]}]}, meanwhile)

    assert [(p["device"], p["reason"]) for p in status["problems"]] == [(renamed.name, "RecheckFailed")]
    assert interface_names(seeder, renamed.device) == ["remoteboard", "storage0"]
    assert seeder.get("ipam/ip-addresses", id=renamed_ip["id"])
    assert interface_names(seeder, untouched.device) == ["remoteboard"]
    assert seeder.get("ipam/ip-addresses", id=untouched_ip["id"]) == []
