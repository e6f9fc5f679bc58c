"""argora-update over many devices: bulk writes, several requests of each kind, one refused device.

The results are read back from NetBox itself, the outcome from the Update's status.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_servers, fresh_ipv4

pytestmark = pytest.mark.integration

# Enough for three bulk requests of each kind (renames, device fields) and five of each delete.
DEVICES = 120


@pytest.fixture(scope="module")
def objects(api_client: client.ApiClient) -> Objects:
    return Objects(api_client)


@pytest.fixture(scope="module")
def update_operator(
    kube: KubeCluster, netbox: NetBoxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("update-bulk")
    operator = OperatorProcess("update", workdir, operator_environment(kube, netbox, netbox.v2_token)).start()
    yield operator
    operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


def add_vmks(seeder: NetBoxSeeder, servers: Sequence[Server], names: Sequence[str]) -> list[dict[str, Any]]:
    """VMK interfaces `names` with one IP each on every server, in bulk; returns the IPs."""
    interfaces = seeder.create(
        "dcim/interfaces",
        [{"device": s.device["id"], "name": name, "type": "virtual"} for s in servers for name in names],
    )
    return seeder.create(
        "ipam/ip-addresses",
        [
            {"address": fresh_ipv4(), "assigned_object_type": "dcim.interface", "assigned_object_id": i["id"]}
            for i in interfaces
        ],
    )


def by_device(records: list[dict[str, Any]]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for record in records:
        found.setdefault(record["device"]["id"], []).append(record["name"])
    return {device: sorted(names) for device, names in found.items()}


def test_a_pass_over_many_devices_renames_sets_oob_ips_and_deletes_vmks(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    names = [f"{prefix}-{n:03d}" for n in range(DEVICES)]
    servers = add_servers(topology, cluster, names, set_oob_ip=False, interface_name="iDRAC")
    vmk_ips = add_vmks(seeder, servers, ["vmk0", "vmk1"])
    spec = {"clusters": [{"name": cluster["name"]}], "maxDeletesPerPass": 4 * DEVICES}
    objects.create_import(namespace, "fix", spec, kind="Update")
    status = objects.synced_import(namespace, "fix", timeout=600, kind="Update")["status"]

    assert status["applied"] == {
        "rename": DEVICES, "oobIP": DEVICES, "platform": 0, "interfaceDeleted": 2 * DEVICES, "ipDeleted": 2 * DEVICES,
    }  # fmt: skip
    assert status["failed"] == 0 and status["problems"] == [] and status["deletesHeldBack"] == 0
    device_ids = [s.device["id"] for s in servers]
    interfaces = by_device(seeder.get("dcim/interfaces", device_id=device_ids))
    assert interfaces == {device_id: ["remoteboard"] for device_id in device_ids}
    devices = {d["id"]: d for d in seeder.get("dcim/devices", id=device_ids)}
    assert {d: (devices[d]["oob_ip"] or {}).get("id") for d in device_ids} == {
        s.device["id"]: s.ip["id"] for s in servers
    }
    assert seeder.get("ipam/ip-addresses", id=[ip["id"] for ip in vmk_ips]) == []
    # The BMC IPs stay, and the latest changes are listed device by device as before.
    assert len(seeder.get("ipam/ip-addresses", id=[s.ip["id"] for s in servers])) == DEVICES
    assert [c["device"] for c in status["changes"]][-6:] == [names[-1]] * 6
    # A second pass has nothing left to do.
    status = objects.resync(namespace, "fix", kind="Update")["status"]
    assert status["planned"] == {"rename": 0, "oobIP": 0, "platform": 0, "interfaceDeleted": 0, "ipDeleted": 0}


def test_a_device_netbox_refuses_fails_alone(
    update_operator: OperatorProcess, objects: Objects, namespace: str, seeder: NetBoxSeeder, prefix: str
) -> None:
    """NetBox refuses a platform limited to another manufacturer's device types: only that device's write
    fails, the other devices of the same bulk request get their platform and OOB IP."""
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    platform = seeder.create_one(
        "dcim/platforms", name=f"{prefix}-os", slug=f"{prefix}-os", manufacturer=topology.manufacturer["id"]
    )
    other_vendor = seeder.create_one("dcim/manufacturers", name=f"{prefix}-hpe", slug=f"{prefix}-hpe")
    other_type = seeder.create_one(
        "dcim/device-types", manufacturer=other_vendor["id"], model=f"{prefix}-dl", slug=f"{prefix}-dl"
    )
    names = [f"{prefix}-{n:02d}" for n in range(20)]
    servers = add_servers(topology, cluster, names[:10], set_oob_ip=False, interface_name="iLO")
    (odd,) = add_servers(
        topology, cluster, [names[10]], set_oob_ip=False, interface_name="iLO", device_type=other_type["id"]
    )
    servers += add_servers(topology, cluster, names[11:], set_oob_ip=False, interface_name="iLO")
    add_vmks(seeder, [*servers, odd], ["vmk0"])
    spec = {"clusters": [{"name": cluster["name"]}], "platform": platform["slug"], "maxDeletesPerPass": 100}
    objects.create_import(namespace, "fix", spec, kind="Update")
    status = objects.synced_import(namespace, "fix", timeout=300, kind="Update")["status"]

    assert status["failed"] == 1
    (problem,) = status["problems"]
    assert problem["device"] == odd.name and problem["reason"] == "Rejected"
    assert "platform" in problem["message"] and "limited to" in problem["message"]
    assert status["applied"] == {
        "rename": 20, "oobIP": 19, "platform": 19, "interfaceDeleted": 19, "ipDeleted": 19,
    }  # fmt: skip
    devices = {d["id"]: d for d in seeder.get("dcim/devices", id=[s.device["id"] for s in [*servers, odd]])}
    for server in servers:
        device = devices[server.device["id"]]
        assert device["platform"]["slug"] == platform["slug"]
        assert device["oob_ip"]["id"] == server.ip["id"]
    refused = devices[odd.device["id"]]
    assert refused["platform"] is None and refused["oob_ip"] is None
    # Its rename came before the refused write; its VMK waits until NetBox takes the device's fields.
    interfaces = by_device(seeder.get("dcim/interfaces", device_id=list(devices)))
    assert interfaces[odd.device["id"]] == ["remoteboard", "vmk0"]
    assert all(interfaces[s.device["id"]] == ["remoteboard"] for s in servers)
