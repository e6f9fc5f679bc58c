import base64
import json
from typing import Any

from pydantic import SecretStr

from argora_common.credentials import BMCCredentials
from argora_common.inventory import BootInterfaces, Inventory, SelectedDevice
from argora_common.netbox_schema import Device, Interface, IPAddress, Prefix
from metal3_controller.desired import (
    boot_mac,
    host_role,
    keep_registered,
    netbox_selector,
    plan,
    registration_drift,
)
from metal3_controller.network_data import network_data
from metal3_controller.settings import Metal3Settings

SETTINGS = Metal3Settings(
    netbox_url="https://nb.example.com",
    netbox_token=SecretStr("t"),
    bmc_addresses={"quanta": "redfish://{ip}:8443/redfish/v1/Systems/Self"},
    network_data=True,
)
CREDS = BMCCredentials(username="u", password=SecretStr("p"))
CLUSTER = {"metadata": {"name": "capi", "namespace": "metal"}}


def device(device_id: int, vendor: str, oob: str, primary: int | None = None) -> Device:
    return Device.model_validate(
        {
            "id": device_id,
            "name": f"node{device_id}",
            "status": "active",
            "site": {"id": 1, "slug": "site-a"},
            "device_type": {"id": 1, "slug": "r660", "manufacturer": {"id": 1, "slug": vendor}},
            "oob_ip": {"id": 100 + device_id, "address": oob},
            "primary_ip4": {"id": primary, "address": "10.1.0.5/24"} if primary else None,
        }
    )


def interface(interface_id: int, name: str, **extra: Any) -> Interface:
    return Interface.model_validate({"id": interface_id, "device": {"id": 1}, "name": name, **extra})


def test_bmc_address_per_vendor_and_ipv6_brackets() -> None:
    assert (
        SETTINGS.bmc_address("dell", "10.0.0.1") == "idrac-virtualmedia://10.0.0.1/redfish/v1/Systems/System.Embedded.1"
    )
    assert SETTINGS.bmc_address("hpe", "2001:db8::1") == "redfish-virtualmedia://[2001:db8::1]/redfish/v1/Systems/1"
    assert SETTINGS.bmc_address("quanta", "10.0.0.1") == "redfish://10.0.0.1:8443/redfish/v1/Systems/Self"
    assert SETTINGS.bmc_address("acme", "10.0.0.1") == "redfish://10.0.0.1/redfish/v1/Systems/1"


def test_opt_in() -> None:
    annotated = {"metadata": {"name": "c", "annotations": {"argora.cloud.sap/netbox-cluster": "nb-c"}}}
    labelled = {"metadata": {"name": "c", "labels": {"discovery.inf.sap.cloud/clusterRole": "k8s"}}}
    assert netbox_selector(annotated) is not None and netbox_selector(annotated).name == "nb-c"  # type: ignore[union-attr]
    selector = netbox_selector(labelled)
    assert selector is not None and (selector.name, selector.type) == ("c", "k8s")
    assert netbox_selector({"metadata": {"name": "c"}}) is None


def test_network_data_for_a_tagged_bond_with_gateway() -> None:
    members = [
        interface(11, "eth1", mac_address="AA:00:00:00:00:02", lag={"id": 10}),
        interface(12, "eth0", mac_address="AA:00:00:00:00:01", lag={"id": 10}),
    ]
    bond = interface(10, "bond0", type="lag", mode="tagged", mtu=9000)
    address = IPAddress.model_validate({"id": 5, "address": "10.1.0.5/24"})
    boot = BootInterfaces(primary={1: bond}, primary_address={1: address}, lag_members={10: members})
    prefixes = [
        Prefix.model_validate({"id": 1, "prefix": "10.0.0.0/8"}),
        Prefix.model_validate(
            {
                "id": 2,
                "prefix": "10.1.0.0/24",
                "vlan": {"id": 3, "vid": 120},
                "custom_fields": {"gateway": "10.1.0.1/24"},
            }
        ),
    ]
    data = network_data(device(1, "dell", "10.0.0.1/24", primary=5), boot, prefixes, "gateway")
    assert data == {
        "links": [
            {"id": "eth0", "type": "phy", "ethernet_mac_address": "aa:00:00:00:00:01"},
            {"id": "eth1", "type": "phy", "ethernet_mac_address": "aa:00:00:00:00:02"},
            {
                "id": "bond0",
                "type": "bond",
                "bond_links": ["eth0", "eth1"],
                "bond_mode": "802.3ad",
                "ethernet_mac_address": "aa:00:00:00:00:01",
                "mtu": 9000,
            },
            {
                "id": "bond0.120",
                "type": "vlan",
                "vlan_link": "bond0",
                "vlan_id": 120,
                "vlan_mac_address": "aa:00:00:00:00:01",
            },
        ],
        "networks": [
            {
                "id": "network0",
                "type": "ipv4",
                "link": "bond0.120",
                "ip_address": "10.1.0.5",
                "netmask": "255.255.255.0",
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.1.0.1"}],
            },
        ],
        "services": [],
    }


def test_plan_builds_host_secret_and_network_data() -> None:
    eth0 = interface(10, "eth0", mac_address="AA:00:00:00:00:01", mode="access", untagged_vlan={"id": 3, "vid": 7})
    boot = BootInterfaces(
        primary={1: eth0}, primary_address={1: IPAddress.model_validate({"id": 5, "address": "10.1.0.5/24"})}
    )
    inventory = Inventory(
        clusters_by_selector=[[]], devices=[SelectedDevice(device(1, "dell", "10.0.0.1/24", 5), 0)], sites={}
    )
    (host,) = plan(CLUSTER, inventory, boot, CREDS, SETTINGS).hosts
    assert host.host["spec"]["bootMACAddress"] == "aa:00:00:00:00:01"
    assert host.host["spec"]["networkData"] == {"name": "networkdata-node1", "namespace": "metal"}
    assert host.host["spec"]["bmc"]["credentialsName"] == "bmc-secret-node1"
    assert host.network_secret is not None
    data = json.loads(base64.b64decode(host.network_secret["data"]["networkData"]))
    # An access port: the switch untags VLAN 7, the host sees a plain link and has no route without a gateway.
    assert [link["type"] for link in data["links"]] == ["phy"]
    assert data["networks"][0]["routes"] == []


def test_registration_drift() -> None:
    desired = {"spec": {"bmc": {"address": "redfish://10.0.0.2/x"}, "bootMACAddress": "aa:00:00:00:00:01"}}
    live = {"spec": {"bmc": {"address": "redfish://10.0.0.1/x"}, "bootMACAddress": "aa:00:00:00:00:01"}}
    assert registration_drift(desired, live) == {"spec.bmc.address": ("redfish://10.0.0.2/x", "redfish://10.0.0.1/x")}


def test_another_driver_for_the_same_ip_or_an_unknown_mac_is_no_drift() -> None:
    desired = {
        "spec": {
            "bmc": {"address": "idrac-virtualmedia://10.0.0.1/redfish/v1/Systems/System.Embedded.1"},
            "bootMACAddress": "aa:00:00:00:00:01",
        }
    }
    original = {"spec": {"bmc": {"address": "idrac-redfish://10.0.0.1/redfish/v1/Systems/System.Embedded.1"}}}
    assert registration_drift(desired, original) == {}
    assert registration_drift({"spec": {"bmc": desired["spec"]["bmc"]}}, {"spec": {"bootMACAddress": "x"}}) == {}
    v6 = {"spec": {"bmc": {"address": "redfish://[2001:db8::1]/redfish/v1/Systems/1"}}}
    assert registration_drift(v6, {"spec": {"bmc": {"address": "idrac-redfish://[2001:db8:0::1]/x"}}}) == {}
    kept = keep_registered(desired, original, keep_certificate_verification=True)
    assert kept["spec"]["bmc"]["address"] == original["spec"]["bmc"]["address"]
    assert kept["spec"]["bootMACAddress"] == "aa:00:00:00:00:01"


def test_host_role_from_tags_else_device_role() -> None:
    def tagged(*tags: str) -> Device:
        return Device.model_validate(
            {
                **device(1, "dell", "10.0.0.1/24").model_dump(),
                "role": {"id": 1, "slug": "server"},
                "tags": [{"id": i, "name": tag, "slug": tag.lower()} for i, tag in enumerate(tags)],
            }
        )

    table = SETTINGS.role_tags
    assert host_role(tagged("ceph-HDD"), table) == "ceph-osd"
    assert host_role(tagged("other", "ceph-nvme"), table) == "ceph-osd"
    assert host_role(tagged("ceph-mon"), table) == "ceph-mon"
    assert host_role(tagged("KVM"), table) == "kvm"
    assert host_role(tagged("unrelated"), table) == "server"


def test_lag_boot_mac_and_ambiguous_macs_are_reported() -> None:
    bond = interface(10, "bond0", type="lag")
    members = [
        interface(11, "eth1", mac_addresses=[{"id": 1, "mac_address": "AA:00:00:00:00:02"}], lag={"id": 10}),
        interface(12, "eth0", lag={"id": 10}),
    ]
    boot = BootInterfaces(primary={1: bond}, lag_members={10: members})
    # eth0 (first by name) has no MAC: the first member that has one, by its only assigned MAC.
    assert boot_mac(device(1, "dell", "10.0.0.1/24"), boot) == "aa:00:00:00:00:02"
    two = [{"id": 1, "mac_address": "AA:00:00:00:00:03"}, {"id": 2, "mac_address": "AA:00:00:00:00:04"}]
    boot = BootInterfaces(
        primary={1: interface(20, "eth0", mac_addresses=two)},
        primary_address={1: IPAddress.model_validate({"id": 5, "address": "10.1.0.5/24"})},
    )
    inventory = Inventory(
        clusters_by_selector=[[]], devices=[SelectedDevice(device(1, "dell", "10.0.0.1/24", 5), 0)], sites={}
    )
    result = plan(CLUSTER, inventory, boot, CREDS, SETTINGS)
    (host,) = result.hosts
    assert "bootMACAddress" not in host.host["spec"]
    assert [(n.device, n.reason) for n in result.notes] == [("node1", "AmbiguousMAC")]


def test_unreachable_and_shared_bmc_addresses_are_skipped() -> None:
    """IPv6 is fine for Metal3, link-local IPv6 is not; two devices at one BMC address get no host."""
    devices = [device(1, "dell", "2001:db8::1/64"), device(2, "dell", "fe80::2/64"), device(3, "dell", "127.0.0.3/8")]
    devices += [device(4, "dell", "10.0.0.4/24"), device(5, "dell", "10.0.0.4/24")]
    inventory = Inventory(clusters_by_selector=[[]], devices=[SelectedDevice(d, 0) for d in devices], sites={})
    result = plan(CLUSTER, inventory, BootInterfaces(), CREDS, SETTINGS)
    assert [host.name for host in result.hosts] == ["node1"]
    assert {problem.device: problem.reason for problem in result.problems} == {
        "node2": "InvalidOOBIP",
        "node3": "InvalidOOBIP",
        "node4": "DuplicateOOBIP",
        "node5": "DuplicateOOBIP",
    }
