"""Scenario 7: NetBox data that is wrong in every way, one record at a time, among good data.

One NetBox cluster of its own (the shared `faults-c1000` inventory stays clean) holds GOOD servers shaped
like production and 100 bad ones of seven kinds. Each controller must write objects for exactly the good
ones, report every bad one with a reason naming it, and never let a bad record stop the others.

What NetBox lets one store decides what "bad" can be here (checked against NetBox 4.7.3):
- a 10 kB name is refused (names are at most 64 characters: asserted below); the long kind uses the
  longest names NetBox takes, with 10 kB of comments, in pairs that only NetBox tells apart;
- an OOB IP on an interface of another device is refused both ways (setting it, and moving the IP away
  while it is an OOB IP); what NetBox does take is the same address on another device's port in another
  VRF: one BMC that two devices claim;
- a network or broadcast address on an interface is refused; loopback, "this network", link-local,
  multicast, reserved and limited-broadcast addresses are stored without complaint.
A device belongs to one NetBox cluster; "a device in two selected clusters" is a cluster selected twice:
by a second ClusterImport or Cluster in another namespace (after the first import: reported, nothing
written twice), and by two entries of one ClusterImport with different credentials (reported).
Names with underscores, spaces or capitals are no bad data: the controllers make DNS-1123 names of them
by design (docs/controllers/ironcore.md, "named after the device (DNS-1123-safe)"). Bad are the names of
which no DNS name can be made and those that become another device's name.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from argora_dev.faults import TABLE, FaultRow, Tally, uids
from argora_dev.kubeobjects import Clusters, Objects
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_macs, add_servers, fresh_ipv4
from tests.faults.conftest import SECRETS, Inventory

# The first test seeds 1,000 devices (10-20 minutes on two busy cores): more than the suite's 900 s a test.
pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(3600)]

GOOD = 900
PREFIX = "faults7"
SCENARIO = "7. 100 bad devices among 1,000"
DEVICE_ID = "kubernetes.metal.cloud.sap/device-id"
FIRST_PASS_TIMEOUT = 900  # seconds; 1,000 devices on two busy cores

# Loopback, "this network", unspecified, link-local (IPv4 and IPv6), multicast, reserved, limited broadcast.
UNREACHABLE_IPS = (
    "127.0.0.5/8", "127.0.0.6/8", "127.1.2.3/8", "0.0.0.7/8", "0.0.0.8/8", "0.0.0.0/32",
    "169.254.3.4/16", "169.254.3.5/16", "224.0.0.9/32", "239.1.2.3/32", "240.0.0.1/4", "240.0.0.2/4",
    "255.255.255.255/32", "fe80::7/64", "fe80::8/64",
)  # fmt: skip
# Names of which nothing is left for a DNS name (two devices without any name at all).
NAMELESS = ("___", "...", "-", "_", "~", "+", "—", "🖥️", "ü", "☃☃", "日本", "Ω", None, None)
# Pairs of names NetBox keeps apart that become one DNS name.
UNICODE_PAIRS = (("ü", "ö"), ("🔥", "💧"), ("日本", "中国"), ("Ω", "Ж"), ("é", "è"), ("ßß", "ÿÿ"), ("☃", "★"))
PAIRS = 7


@dataclass
class BadData:
    """The scenario's NetBox cluster: the good servers, and the bad devices' ids by the reason each must get."""

    cluster: str
    good: dict[str, Server]
    bad: dict[int, str] = field(default_factory=dict)  # device id -> expected reason
    bad_names: dict[int, str] = field(default_factory=dict)  # device id -> the name a problem shows

    @property
    def reasons(self) -> Counter[str]:
        return Counter(self.bad.values())

    def add_bad(self, devices: Sequence[Mapping[str, Any]], reason: str) -> None:
        for device in devices:
            self.bad[device["id"]] = reason
            self.bad_names[device["id"]] = device["name"] or f"#{device['id']}"


def devices_with_bmc_port(
    topology: Topology,
    cluster: Mapping[str, Any],
    names: Sequence[str | None],
    addresses: Sequence[str | None],
    ip_fields: Mapping[str, Any] | None = None,
    **device_fields: Any,
) -> list[dict[str, Any]]:
    """Devices with a `remoteboard` port and a primary MAC on it; an address on that port (set as the
    device's OOB IP) where `addresses` gives one."""
    seeder = topology.seeder
    devices = topology.devices(cluster, names, **device_fields)  # type: ignore[arg-type]
    ports = seeder.create(
        "dcim/interfaces",
        [{"device": d["id"], "name": "remoteboard", "type": "1000base-t", "mgmt_only": True} for d in devices],
    )
    add_macs(seeder, ports, "primary")
    with_ip = [(d, port, address) for d, port, address in zip(devices, ports, addresses, strict=True) if address]
    ips = seeder.create(
        "ipam/ip-addresses",
        [
            {"address": address, "assigned_object_type": "dcim.interface", "assigned_object_id": port["id"]}
            | dict(ip_fields or {})
            for _, port, address in with_ip
        ],
    )
    seeder.update_many(
        "dcim/devices", [{"id": d["id"], "oob_ip": ip["id"]} for (d, _, _), ip in zip(with_ip, ips, strict=True)]
    )
    return devices


def seed_bad_data(seeder: NetBoxSeeder) -> BadData:
    topology = Topology(seeder, PREFIX)
    cluster = topology.cluster(f"c{GOOD + 100}", tenant=topology.tenant["id"])
    other_tenant = seeder.create_one("tenancy/tenants", name=f"{PREFIX}-tenant-b", slug=f"{PREFIX}-tenant-b")
    vrf = seeder.create_one("ipam/vrfs", name=f"{PREFIX}-vrf")
    names = [f"{PREFIX}-n{index:04d}" for index in range(GOOD)]
    tenth = GOOD // 10
    # Production's shapes, as the shared inventory has them: a primary MAC on the BMC port mostly, some
    # with MACs only assigned, some with two, a tenth with the vendor's port name.
    good = [
        *add_servers(topology, cluster, names[: -3 * tenth]),
        *add_servers(topology, cluster, names[-3 * tenth : -2 * tenth], mac_shape="assigned"),
        *add_servers(topology, cluster, names[-2 * tenth : -tenth], mac_shape="two-with-primary"),
        *add_servers(topology, cluster, names[-tenth:], interface_name="iDRAC"),
    ]
    data = BadData(cluster["name"], {server.name: server for server in good})

    def bad(names: Sequence[str | None], addresses: Sequence[str | None] | None = None, **fields: Any) -> list[Any]:
        return devices_with_bmc_port(topology, cluster, names, addresses or [fresh_ipv4() for _ in names], **fields)

    data.add_bad(bad([f"{PREFIX}-no-oob-{i:02d}" for i in range(15)], [None] * 15), "NoOOBIP")
    data.add_bad(
        bad([f"{PREFIX}-bad-ip-{i:02d}" for i in range(len(UNREACHABLE_IPS))], UNREACHABLE_IPS), "InvalidOOBIP"
    )
    # NetBox keeps names unique per site and tenant, case-insensitively: in another tenant, in other case.
    data.add_bad(bad([f"{PREFIX}-dup-{i:02d}" for i in range(PAIRS)]), "NameCollision")
    data.add_bad(
        bad([f"{PREFIX.upper()}-Dup-{i:02d}" for i in range(PAIRS)], tenant=other_tenant["id"]), "NameCollision"
    )
    data.add_bad(bad(list(NAMELESS)), "UnusableName")
    longest = [f"{PREFIX}-long-{i}-".ljust(63, "x") for i in range(PAIRS)]
    comments = "10 kB of comments. " * 540
    data.add_bad(bad([name + end for name in longest for end in "_."], comments=comments), "NameCollision")
    data.add_bad(
        bad([f"{PREFIX}-knoten-{char}-{i}" for i, pair in enumerate(UNICODE_PAIRS) for char in pair]), "NameCollision"
    )
    shared = [fresh_ipv4() for _ in range(PAIRS)]
    data.add_bad(bad([f"{PREFIX}-ip-a-{i}" for i in range(PAIRS)], shared), "DuplicateOOBIP")
    data.add_bad(
        bad([f"{PREFIX}-ip-b-{i}" for i in range(PAIRS)], shared, ip_fields={"vrf": vrf["id"]}), "DuplicateOOBIP"
    )
    assert len(data.bad) == 100, data.reasons
    return data


@pytest.fixture(scope="module")
def bad_data(netbox: NetBoxServer, inventory: Inventory) -> BadData:
    """Seeded once per run (minutes for 1,000 devices), after the shared inventory: its addresses are skipped."""
    return seed_bad_data(NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token)))


def test_netbox_refuses_a_10_kb_name(netbox: NetBoxServer, seeder: NetBoxSeeder, bad_data: BadData) -> None:
    """Why the long kind is 64 characters: NetBox itself refuses more."""
    (site,) = seeder.get("dcim/sites", slug=f"{PREFIX}-site")
    (device_type,) = seeder.get("dcim/device-types", slug=f"{PREFIX}-model")
    (role,) = seeder.get("dcim/device-roles", slug=f"{PREFIX}-server")
    body = {"name": "x" * 10_000, "site": site["id"], "device_type": device_type["id"], "role": role["id"]}
    answer = seeder.session.post(f"{netbox.url}/api/dcim/devices/", json=body, timeout=60)
    assert answer.status_code == 400 and "64 characters" in answer.text


def decoded(obj: Mapping[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in obj["data"].items()}


def reason_counts(event_message: str) -> Counter[str]:
    """`100 devices: 15 NoOOBIP, 14 UnusableName` -> the counts by reason."""
    _, _, listed = event_message.partition(": ")
    return Counter({reason: int(count) for count, reason in (item.split(" ") for item in listed.split(", "))})


def problem_lines_name_bad_devices(problems: Sequence[str], data: BadData) -> None:
    """Every listed problem reads `device: Reason: message` for a bad device with the reason it should get."""
    expected = {(data.bad_names[device_id], reason) for device_id, reason in data.bad.items()}
    for line in problems:
        device, reason, message = line.split(": ", 2)
        assert (device, reason) in expected, line
        assert message


def second_namespace(objects: Objects, namespace: str) -> str:
    """Another namespace of the test, with the same opted-in credentials Secret."""
    other = f"{namespace[:56]}-twice"
    objects.core.create_namespace({"metadata": {"name": other}})
    objects.create_secret(other, "bmc", SECRETS.credentials())
    return other


def assert_no_traceback(process: OperatorProcess) -> None:
    log = process.log()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture
def ironcore(clean_bmcs: None, start_controller: Callable[..., OperatorProcess]) -> Iterator[OperatorProcess]:
    # After `clean_bmcs` so that the controller is stopped before its objects are deleted (it puts them back).
    process = start_controller("ironcore")
    yield process
    assert_no_traceback(process)


def test_ironcore_writes_the_good_and_reports_the_bad(
    ironcore: OperatorProcess, objects: Objects, namespace: str, credentials_secret: str, bad_data: BadData
) -> None:
    objects.create_import(
        namespace,
        "bad-data",
        {"clusters": [{"name": bad_data.cluster, "bmcCredentialsRef": {"name": credentials_secret}}]},
    )
    started = time.monotonic()
    ci = objects.synced_import(namespace, "bad-data", timeout=FIRST_PASS_TIMEOUT)
    seconds = time.monotonic() - started
    status = ci["status"]
    bmcs = objects.owned("bmcs", namespace, "bad-data")
    secrets = objects.owned("bmcsecrets", namespace, "bad-data")

    tally = Tally(set(bad_data.good), {}, bmcs, identity=lambda bmc: bmc["metadata"]["labels"][DEVICE_ID])
    assert (tally.present, tally.lost, tally.duplicated) == (GOOD, 0, 0)
    assert set(bmcs) == set(secrets) == set(bad_data.good)
    for name, server in bad_data.good.items():
        assert bmcs[name]["spec"]["access"] == {"ip": server.address, "macAddress": server.mac}, name
        assert bmcs[name]["spec"]["hostname"] == f"{name}-r.example.com"
        assert bmcs[name]["metadata"]["labels"][DEVICE_ID] == str(server.device["id"])
        assert decoded(secrets[name]) == SECRETS.credentials()

    counts = status["counts"]
    assert counts["devices"] == GOOD + 100
    assert (counts["created"], counts["skipped"], counts["failed"], counts["warnings"]) == (GOOD, 100, 0, 0)
    ready = {c["type"]: c for c in status["conditions"]}
    assert (ready["Ready"]["status"], ready["Ready"]["reason"]) == ("True", "SyncedWithProblems")
    assert ready["DevicesSynced"]["reason"] == "DevicesWithProblems"
    # The status lists the first 50 (by device name); the Event counts every reason.
    assert len(status["problems"]) == 50
    problem_lines_name_bad_devices(
        [f"{p['device']}: {p['reason']}: {p['message']}" for p in status["problems"]], bad_data
    )
    skipped = [message for kind, reason, message in objects.events(namespace, "bad-data") if reason == "DevicesSkipped"]
    assert skipped and reason_counts(skipped[-1]) == bad_data.reasons, skipped

    TABLE.add(
        FaultRow.of(SCENARIO, "argora-ironcore", tally, seconds, len(bmcs) + len(secrets), "100 problems reported")
    )

    # The same NetBox cluster selected a second time, by a ClusterImport of another namespace: BMCs are
    # cluster-scoped and named by device, so every device it would write is reported as taken.
    other = second_namespace(objects, namespace)
    objects.create_import(
        other, "bad-data", {"clusters": [{"name": bad_data.cluster, "bmcCredentialsRef": {"name": "bmc"}}]}
    )
    twice = objects.synced_import(other, "bad-data", timeout=FIRST_PASS_TIMEOUT)["status"]
    assert (twice["counts"]["created"], twice["counts"]["failed"], twice["counts"]["skipped"]) == (0, GOOD, 100)
    # Its status lists the bad devices first (by name); its Event counts the taken ones.
    events = [message for _, reason, message in objects.events(other, "bad-data") if reason == "DevicesSkipped"]
    assert events and reason_counts(events[-1]) == bad_data.reasons + Counter({"NameTaken": GOOD}), events
    assert objects.owned("bmcs", other, "bad-data") == {}
    assert uids(objects.owned("bmcs", namespace, "bad-data")) == uids(bmcs)


@pytest.fixture
def metal3(start_controller: Callable[..., OperatorProcess]) -> Iterator[OperatorProcess]:
    process = start_controller("metal3")
    yield process
    assert_no_traceback(process)


def test_metal3_writes_the_good_and_reports_the_bad(
    metal3: OperatorProcess, objects: Objects, namespace: str, credentials_secret: str, bad_data: BadData
) -> None:
    clusters = Clusters(objects.core.api_client)
    clusters.create(
        namespace,
        "bad-data",
        annotations={
            "argora.cloud.sap/netbox-cluster": bad_data.cluster,
            "argora.cloud.sap/bmc-credentials": credentials_secret,
        },
    )
    started = time.monotonic()
    summary = clusters.synced(namespace, "bad-data", timeout=FIRST_PASS_TIMEOUT)
    seconds = time.monotonic() - started
    hosts = clusters.hosts(namespace)
    secrets = {
        name: decoded(clusters.secret(namespace, name).to_dict())
        for name in clusters.secret_names(namespace)
        if name.startswith("bmc-secret-")
    }

    tally = Tally(set(bad_data.good), {}, hosts, identity=lambda host: host["metadata"]["labels"][DEVICE_ID])
    assert (tally.present, tally.lost, tally.duplicated) == (GOOD, 0, 0)
    assert set(hosts) == set(bad_data.good)
    assert set(secrets) == {f"bmc-secret-{name}" for name in bad_data.good}
    for name, server in bad_data.good.items():
        bmc = hosts[name]["spec"]["bmc"]
        assert bmc["address"] == f"redfish://{server.address}/redfish/v1/Systems/1", name
        assert bmc["credentialsName"] == f"bmc-secret-{name}"
        assert hosts[name]["metadata"]["labels"][DEVICE_ID] == str(server.device["id"])
        assert secrets[f"bmc-secret-{name}"] == SECRETS.credentials()

    counts = summary["counts"]
    assert counts["devices"] == GOOD + 100
    assert (counts["created"], counts["skipped"], counts["failed"], counts["warnings"]) == (GOOD, 100, 0, 0)
    # The annotation shows the first 10 problems; the Event counts every reason.
    assert len(summary["problems"]) == 10
    problem_lines_name_bad_devices(summary["problems"], bad_data)
    skipped = [
        message for kind, reason, message in clusters.events(namespace, "bad-data") if reason == "DevicesSkipped"
    ]
    assert skipped and reason_counts(skipped[-1]) == bad_data.reasons, skipped

    writes = len(hosts) + len(secrets)
    TABLE.add(FaultRow.of(SCENARIO, "argora-metal3", tally, seconds, writes, "100 problems reported"))

    # The same NetBox cluster asked for by a Cluster of another namespace: BareMetalHosts are namespaced,
    # so nothing but the controller stops every machine from being registered twice.
    other = second_namespace(objects, namespace)
    clusters.create(other, "bad-data", annotations={"argora.cloud.sap/netbox-cluster": bad_data.cluster})
    refused = clusters.synced(other, "bad-data", timeout=FIRST_PASS_TIMEOUT)
    assert refused["error"] == "NetBoxClusterTaken"
    assert f"imported by Cluster {namespace}/bad-data" in refused["message"]
    assert clusters.hosts(other) == {}
    assert ("Warning", "NetBoxClusterTaken") in {
        (kind, reason) for kind, reason, _ in clusters.events(other, "bad-data")
    }
    assert uids(clusters.hosts(namespace)) == uids(hosts)


def test_ironcore_one_cluster_selected_by_two_entries(
    ironcore: OperatorProcess,
    objects: Objects,
    namespace: str,
    credentials_secret: str,
    seeder: NetBoxSeeder,
    prefix: str,
) -> None:
    """The devices of a cluster two entries of one ClusterImport select (by name and by tenant): written
    once when the entries' credentials agree; reported, and not written, while they differ."""
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("shared", tenant=topology.tenant["id"])
    servers = add_servers(topology, cluster, [f"{prefix}-s{index:02d}" for index in range(PAIRS * 2)])
    objects.create_secret(namespace, "bmc-other", {"username": "other", "password": "other-password"})
    by_name = {"name": cluster["name"], "bmcCredentialsRef": {"name": credentials_secret}}
    by_tenant = {"tenant": topology.tenant["slug"], "bmcCredentialsRef": {"name": "bmc-other"}}
    objects.create_import(namespace, "twice", {"clusters": [by_name, by_tenant]})
    status = objects.synced_import(namespace, "twice")["status"]
    assert (status["counts"]["devices"], status["counts"]["created"], status["counts"]["skipped"]) == (14, 0, 14)
    assert {(p["device"], p["reason"], p["message"]) for p in status["problems"]} == {
        (
            server.name,
            "AmbiguousCredentials",
            "selected by spec.clusters[0], spec.clusters[1], whose BMC credentials differ",
        )
        for server in servers
    }
    assert objects.owned("bmcs", namespace, "twice") == {}

    by_tenant["bmcCredentialsRef"] = {"name": credentials_secret}
    objects.patch_import(namespace, "twice", {"spec": {"clusters": [by_name, by_tenant]}})
    status = objects.synced_import(namespace, "twice")["status"]
    assert (status["counts"]["created"], status["counts"]["skipped"]) == (14, 0)
    bmcs = objects.owned("bmcs", namespace, "twice")
    assert set(bmcs) == {server.name for server in servers}
    assert all(
        decoded(secret) == SECRETS.credentials() for secret in objects.owned("bmcsecrets", namespace, "twice").values()
    )
