import base64
from typing import Any

from pydantic import SecretStr

from argora_common.credentials import BMCCredentials, CredentialsProblem
from argora_common.inventory import Inventory, SelectedDevice
from argora_common.kube import Owner
from argora_common.netbox_schema import Cluster, Device, Interface, IPAddress, Site
from ironcore_controller.desired import plan
from ironcore_controller.settings import BMCProtocol, IroncoreSettings

OWNER = Owner("metal", "import-a", "argora-ironcore")
CREDS = BMCCredentials(username="root", password=SecretStr("calvin"))
SETTINGS = IroncoreSettings(
    netbox_url="https://nb.example.com",
    netbox_token=SecretStr("t"),
    bmc_protocols={"supermicro": BMCProtocol(name="IPMI", port=623, scheme="http")},
)
CLUSTER = Cluster.model_validate({"id": 1, "name": "cc-a1", "type": {"id": 1, "slug": "cc-k8s"}})
SITE = Site.model_validate({"id": 5, "slug": "qa-de-1a", "name": "QA 1a", "region": {"id": 2, "slug": "qa-de-1"}})


def device(device_id: int, name: str | None, oob: str | None = None, vendor: str = "dell", **extra: Any) -> Device:
    return Device.model_validate(
        {
            "id": device_id,
            "name": name,
            "status": "active",
            "site": {"id": 5, "slug": "qa-de-1a"},
            "role": {"id": 1, "slug": "server"},
            "platform": {"id": 1, "slug": "ubuntu"},
            "device_type": {"id": 3, "slug": "r660", "manufacturer": {"id": 1, "slug": vendor}},
            "cluster": {"id": 1, "name": "cc-a1"},
            "oob_ip": {"id": 100 + device_id, "address": oob, "dns_name": f"{name}-r.example.com"} if oob else None,
            **extra,
        }
    )


def bmc_interface(device_id: int, mac: str | None = "AA:BB:CC:00:00:01") -> Interface:
    return Interface.model_validate(
        {"id": 1000 + device_id, "device": {"id": device_id}, "name": "remoteboard", "mac_address": mac}
    )


def ip_on(interface_id: int, address: str, ip_id: int) -> IPAddress:
    return IPAddress.model_validate(
        {"id": ip_id, "address": address, "assigned_object_type": "dcim.interface", "assigned_object_id": interface_id}
    )


def inventory(*devices: Device, **kwargs: Any) -> Inventory:
    return Inventory(
        clusters_by_selector=[[CLUSTER]],
        devices=[SelectedDevice(d, 0) for d in devices],
        sites={5: SITE},
        **kwargs,
    )


def test_device_with_oob_ip_becomes_bmc_and_secret() -> None:
    inv = inventory(device(1, "Node001-bb91", "10.0.0.5/24"), bmc_interfaces={1: [bmc_interface(1)]})
    result = plan(inv, [CREDS], OWNER, SETTINGS)
    assert result.problems == []
    (desired,) = result.devices
    assert desired.name == "node001-bb91"
    assert desired.bmc["spec"] == {
        "access": {"ip": "10.0.0.5", "macAddress": "aa:bb:cc:00:00:01"},
        # No scheme unless configured: the original operator wrote none.
        "protocol": {"name": "Redfish", "port": 443},
        "bmcSecretRef": {"name": "node001-bb91"},
        "hostname": "Node001-bb91-r.example.com",
    }
    labels = desired.bmc["metadata"]["labels"]
    assert labels == {
        "topology.kubernetes.io/zone": "qa-de-1a",
        "topology.kubernetes.io/region": "qa-de-1",
        "kubernetes.metal.cloud.sap/cluster": "cc-a1",
        "kubernetes.metal.cloud.sap/cluster-type": "cc-k8s",
        "kubernetes.metal.cloud.sap/role": "server",
        "kubernetes.metal.cloud.sap/platform": "ubuntu",
        "kubernetes.metal.cloud.sap/device-type": "r660",
        "kubernetes.metal.cloud.sap/type": "r660",
        "kubernetes.metal.cloud.sap/device-id": "1",
        "kubernetes.metal.cloud.sap/name": "Node001-bb91",
        "kubernetes.metal.cloud.sap/nodename": "Node001",
        "kubernetes.metal.cloud.sap/bb": "bb91",
        "argora.cloud.sap/owner-namespace": "metal",
        "argora.cloud.sap/owner-name": "import-a",
        "app.kubernetes.io/managed-by": "argora-ironcore",
    }
    data = desired.secret["data"]
    assert base64.b64decode(data["username"]) == b"root"
    assert base64.b64decode(data["password"]) == b"calvin"
    assert desired.secret["metadata"]["labels"] == labels


def test_fallback_to_the_single_ip_on_remoteboard_and_protocol_by_vendor() -> None:
    inv = inventory(
        device(2, "node002", vendor="supermicro"),
        bmc_interfaces={2: [bmc_interface(2, mac=None)]},
        bmc_addresses={1002: [ip_on(1002, "10.0.0.6/24", 7)]},
    )
    (desired,) = plan(inv, [CREDS], OWNER, SETTINGS).devices
    assert desired.bmc["spec"]["access"] == {"ip": "10.0.0.6"}
    assert desired.bmc["spec"]["protocol"] == {"name": "IPMI", "port": 623, "scheme": "http"}
    assert "hostname" not in desired.bmc["spec"]


def test_bad_devices_are_reported_and_the_good_one_goes_on() -> None:
    inv = inventory(
        device(1, "good", "10.0.0.5/24"),
        device(2, "no-ip"),
        device(3, "two-ips"),
        device(4, "v6", "2001:db8::5/64"),
        device(5, "Twin_A", "10.0.0.7/24"),
        device(6, "twin-a", "10.0.0.8/24"),
        device(7, None, "10.0.0.9/24"),
        bmc_interfaces={3: [bmc_interface(3)]},
        bmc_addresses={1003: [ip_on(1003, "10.0.1.1/24", 8), ip_on(1003, "10.0.1.2/24", 9)]},
    )
    result = plan(inv, [CREDS], OWNER, SETTINGS)
    assert [d.name for d in result.devices] == ["good"]
    reasons = {problem.device: problem.reason for problem in result.problems}
    assert reasons == {
        "no-ip": "NoOOBIP",
        "two-ips": "AmbiguousOOBIP",
        "v6": "IPv6OOBIP",
        "Twin_A": "NameCollision",
        "twin-a": "NameCollision",
        "#7": "UnusableName",
    }
    # Skipped devices are still selected: their objects must never be pruned for bad data.
    assert result.selected_device_ids == {1, 2, 3, 4, 5, 6, 7}


def test_missing_credentials_skip_only_that_selectors_devices() -> None:
    inv = Inventory(
        clusters_by_selector=[[CLUSTER], [CLUSTER]],
        devices=[SelectedDevice(device(1, "a", "10.0.0.5/24"), 0), SelectedDevice(device(2, "b", "10.0.0.6/24"), 1)],
        sites={5: SITE},
    )
    problem = CredentialsProblem(reason="CredentialsNotOptedIn", message="Secret metal/bmc is not labelled …")
    result = plan(inv, [CREDS, problem], OWNER, SETTINGS)
    assert [d.name for d in result.devices] == ["a"]
    assert [(p.device, p.reason, p.message) for p in result.problems] == [
        ("b", "CredentialsNotOptedIn", "Secret metal/bmc is not labelled …")
    ]


def test_unmatched_selectors_are_listed() -> None:
    inv = Inventory(clusters_by_selector=[[], [CLUSTER]], devices=[], sites={})
    assert plan(inv, [CREDS, CREDS], OWNER, SETTINGS).unmatched_selectors == [0]


def mac(mac_id: int, value: str) -> dict[str, Any]:
    return {"id": mac_id, "mac_address": value}


def port(interface_id: int, device_id: int, name: str, **extra: Any) -> Interface:
    return Interface.model_validate(
        {"id": interface_id, "device": {"id": device_id, "name": f"d{device_id}"}, "name": name, **extra}
    )


def test_bmc_mac_from_netbox_4_2_mac_objects_and_nodename_only_for_node_bb_names() -> None:
    """Primary MAC, else the only assigned one; several and none primary: written without it, reported."""
    inv = inventory(
        device(1, "n1-bb1", "10.0.0.1/24"),
        device(2, "only-assigned-x", "10.0.0.2/24"),
        device(3, "two", "10.0.0.3/24"),
        bmc_interfaces={
            1: [port(11, 1, "remoteboard", mac_addresses=[mac(1, "02:00:00:00:00:0A"), mac(2, "02:00:00:00:00:0B")],
                     primary_mac_address=mac(2, "02:00:00:00:00:0B"))],
            2: [port(12, 2, "remoteboard", mac_addresses=[mac(3, "02:00:00:00:00:0C")])],
            3: [port(13, 3, "remoteboard", mac_addresses=[mac(4, "02:00:00:00:00:0D"), mac(5, "02:00:00:00:00:0E")])],
        },
    )  # fmt: skip
    result = plan(inv, [CREDS], OWNER, SETTINGS)
    access = {d.device_name: d.bmc["spec"]["access"] for d in result.devices}
    assert access == {
        "n1-bb1": {"ip": "10.0.0.1", "macAddress": "02:00:00:00:00:0b"},
        "only-assigned-x": {"ip": "10.0.0.2", "macAddress": "02:00:00:00:00:0c"},
        "two": {"ip": "10.0.0.3"},
    }
    assert result.problems == []
    assert [(n.device, n.reason) for n in result.notes] == [("two", "AmbiguousMAC")]
    assert "02:00:00:00:00:0d, 02:00:00:00:00:0e" in result.notes[0].message
    labels = {d.device_name: d.bmc["metadata"]["labels"] for d in result.devices}
    assert labels["n1-bb1"]["kubernetes.metal.cloud.sap/nodename"] == "n1"
    assert "kubernetes.metal.cloud.sap/nodename" not in labels["only-assigned-x"]  # two dashes: not <node>-<bb>


def test_bmc_interface_is_the_one_carrying_the_oob_ip_else_a_vendor_named_one() -> None:
    oob_port = port(21, 1, "mgmt0", primary_mac_address=mac(1, "02:00:00:00:01:01"))
    elsewhere = port(22, 9, "iDRAC", primary_mac_address=mac(2, "02:00:00:00:01:02"))
    inv = inventory(
        device(1, "linked", "10.0.1.1/24"),
        device(2, "vendor", "10.0.1.2/24"),
        device(3, "foreign", "10.0.1.3/24"),
        device(4, "no-oob"),
        bmc_interfaces={
            1: [port(23, 1, "remoteboard", primary_mac_address=mac(3, "02:00:00:00:01:03"))],
            2: [port(24, 2, "iLO", primary_mac_address=mac(4, "02:00:00:00:01:04"))],
            4: [port(25, 4, "iDRAC", primary_mac_address=mac(5, "02:00:00:00:01:05"))],
        },
        bmc_addresses={25: [ip_on(25, "10.0.1.4/24", 9)]},
        oob_interfaces={101: oob_port, 103: elsewhere},
    )
    result = plan(inv, [CREDS], OWNER, SETTINGS)
    access = {d.device_name: d.bmc["spec"]["access"] for d in result.devices}
    assert access == {
        "linked": {"ip": "10.0.1.1", "macAddress": "02:00:00:00:01:01"},
        "vendor": {"ip": "10.0.1.2", "macAddress": "02:00:00:00:01:04"},
        "foreign": {"ip": "10.0.1.3"},
        "no-oob": {"ip": "10.0.1.4", "macAddress": "02:00:00:00:01:05"},
    }
    assert [(n.device, n.reason) for n in result.notes] == [("foreign", "OOBIPOnOtherDevice")]
    assert "interface iDRAC of device d9" in result.notes[0].message


def test_addresses_no_bmc_answers_at_are_invalid_oob_ips() -> None:
    """NetBox stores loopback, "this network", link-local, multicast and reserved addresses on an
    interface without complaint; a BMC at one of them would be unreachable or the operator itself."""
    unreachable = ("127.0.0.5/8", "0.0.0.7/8", "0.0.0.0/32", "169.254.3.4/16", "224.0.0.9/32", "240.0.0.1/4")
    more = ("255.255.255.255/32", "fe80::7/64", "::1/128", "ff02::1/128")
    devices = [device(i, f"bad-{i}", address) for i, address in enumerate((*unreachable, *more), start=2)]
    result = plan(inventory(device(1, "good", "10.0.0.5/24"), *devices), [CREDS], OWNER, SETTINGS)
    assert [d.name for d in result.devices] == ["good"]
    assert {problem.reason for problem in result.problems} == {"InvalidOOBIP"}
    assert len(result.problems) == len(devices)
    by_device = {problem.device: problem.message for problem in result.problems}
    assert by_device["bad-2"] == "OOB IP 127.0.0.5/8 is a loopback address: no BMC can be reached there"
    assert by_device["bad-3"] == "OOB IP 0.0.0.7/8 is in 0.0.0.0/8 (this network): no BMC can be reached there"
    # Link-local IPv6 is unusable before it is IPv6: the first reason a user has to fix.
    assert by_device["bad-9"] == "OOB IP fe80::7/64 is a link-local address: no BMC can be reached there"


def test_devices_sharing_a_bmc_address_are_both_skipped() -> None:
    """The same address in two VRFs (NetBox's only way to give two devices one OOB IP) is one BMC that two
    devices claim: neither gets it, both are told which other device has it."""
    inv = inventory(
        device(1, "good", "10.0.0.5/24"),
        device(2, "twin-a", "10.0.0.6/24"),
        device(3, "twin-b", "10.0.0.6/24"),
        device(4, "by-port"),
        bmc_interfaces={4: [bmc_interface(4)]},
        bmc_addresses={1004: [ip_on(1004, "10.0.0.6/24", 9)]},
    )
    result = plan(inv, [CREDS], OWNER, SETTINGS)
    assert [d.name for d in result.devices] == ["good"]
    messages = {problem.device: (problem.reason, problem.message) for problem in result.problems}
    assert messages == {
        "twin-a": ("DuplicateOOBIP", "BMC address 10.0.0.6 is also that of device(s) by-port, twin-b"),
        "twin-b": ("DuplicateOOBIP", "BMC address 10.0.0.6 is also that of device(s) by-port, twin-a"),
        "by-port": ("DuplicateOOBIP", "BMC address 10.0.0.6 is also that of device(s) twin-a, twin-b"),
    }
    assert result.selected_device_ids == {1, 2, 3, 4}


def test_a_device_selected_by_entries_with_different_credentials_is_reported() -> None:
    """Two entries matching one cluster: the device is written once, with the credentials they agree on;
    when they disagree it is not written at all (never the first entry's as a guess)."""
    selected = SelectedDevice(device(1, "a", "10.0.0.5/24"), 0, also_selected_by=[1, 2])
    inv = Inventory(clusters_by_selector=[[CLUSTER]] * 3, devices=[selected], sites={5: SITE})
    same = BMCCredentials(username="root", password=SecretStr("calvin"))
    (desired,) = plan(inv, [CREDS, same, CREDS], OWNER, SETTINGS).devices
    assert base64.b64decode(desired.secret["data"]["password"]) == b"calvin"
    other = BMCCredentials(username="root", password=SecretStr("other"))
    result = plan(inv, [CREDS, CREDS, other], OWNER, SETTINGS)
    assert result.devices == []
    assert [(p.device, p.reason, p.message) for p in result.problems] == [
        ("a", "AmbiguousCredentials", "selected by spec.clusters[0], spec.clusters[2], whose BMC credentials differ")
    ]
