"""argora-ipaddress's plan: the chain to a NetBox device, the LAG, create/adopt/conflict, primaries,
releases and the original operator's finalizer, from Kubernetes and NetBox facts alone."""

from __future__ import annotations

import re
from typing import Any

import pytest

from argora_common.netbox_schema import Device, Interface, IPAddress, Prefix
from ipaddress_controller.chain import Chain, Cluster, Unresolved, key_of, resolve
from ipaddress_controller.desired import (
    DEVICE_ID_ANNOTATION,
    INTERFACE_ID_ANNOTATION,
    ORIGINAL_FINALIZER,
    NetBoxFacts,
    State,
    description,
    original_interface,
    plan,
    target_interface,
)

PATTERN = re.compile(r"^LAG(\d+)$")
LABEL = "kubernetes.metal.cloud.sap/device-id"
TAG = "argora-ipaddress"


def address(
    name: str, ip: str, prefix: int = 24, claim: str | None = None, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "m", "name": name, **(metadata or {})},
        "spec": {"address": ip, "prefix": prefix, "claimRef": {"name": claim or name}, "poolRef": {"name": "p"}},
    }


def chain_cluster(*, bound: bool = True, owned: bool = True, labelled: bool = True) -> Cluster:
    owner = [{"kind": "ServerClaim", "name": "sc"}] if owned else []
    return Cluster(
        claims={("m", "a1"): {"metadata": {"name": "a1", "ownerReferences": owner}}},
        server_claims={
            ("m", "sc"): {"metadata": {"name": "sc"}, "spec": {"serverRef": {"name": "srv"}} if bound else {}}
        },
        servers={"srv": {"metadata": {"name": "srv"}, "spec": {"bmcRef": {"name": "node1"}}}},
        bmcs={"node1": {"metadata": {"name": "node1", "labels": {LABEL: "7"} if labelled else {}}}},
    )


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (chain_cluster(), Chain(7, "node1")),
        (chain_cluster(labelled=False), Chain(None, "node1")),
        (chain_cluster(bound=False), "ServerClaimNotBound"),
        (chain_cluster(owned=False), "NoServerClaim"),
        (Cluster(claims={}, server_claims={}, servers={}, bmcs={}), "ClaimNotFound"),
    ],
)
def test_the_chain_from_an_ipaddress_to_its_device(cluster: Cluster, expected: Chain | str) -> None:
    found = resolve(address("a1", "10.0.0.5"), cluster, LABEL)
    assert (found.reason if isinstance(found, Unresolved) else found) == expected


def interface(interface_id: int, name: str, kind: str = "lag", device_id: int = 7) -> Interface:
    return Interface.model_validate({"id": interface_id, "device": {"id": device_id}, "name": name, "type": kind})


def test_the_lag_with_the_highest_number_of_type_lag() -> None:
    interfaces = [interface(1, "LAG1"), interface(2, "LAG10"), interface(3, "LAG11", "virtual"), interface(4, "eth0")]
    chosen = target_interface(interfaces, PATTERN)
    assert chosen is not None and chosen.name == "LAG10"
    assert target_interface([interface(4, "eth0", "10gbase-t")], PATTERN) is None


def device(primary: int | None = None) -> Device:
    return Device.model_validate(
        {
            "id": 7, "name": "node1", "status": "active", "site": {"id": 1}, "tenant": {"id": 3},
            "device_type": {"id": 1, "slug": "t", "manufacturer": {"id": 1, "slug": "m"}},
            "primary_ip4": {"id": primary, "address": "10.0.0.9/24"} if primary else None,
        }
    )  # fmt: skip


def ip(
    ip_id: int, cidr: str, on: int | None = None, device_id: int = 7, tag: bool = False, desc: str = ""
) -> IPAddress:
    return IPAddress.model_validate(
        {
            "id": ip_id, "address": cidr, "description": desc,
            "assigned_object_type": "dcim.interface" if on else None, "assigned_object_id": on,
            "assigned_object": {"id": on, "device": {"id": device_id, "name": f"dev{device_id}"}} if on else None,
            "tags": [{"id": 1, "slug": "argora-ipaddress"}] if tag else [],
        }
    )  # fmt: skip


def facts(existing: list[IPAddress] = [], created: list[IPAddress] = [], primary: int | None = None) -> NetBoxFacts:  # noqa: B006
    return NetBoxFacts(
        devices_by_id={7: device(primary)},
        devices_by_name={},
        interfaces={7: [interface(1, "LAG1"), interface(2, "LAG2"), interface(5, "eth0", "10gbase-t")]},
        addresses_by_host={found.address.split("/")[0]: [found] for found in existing},
        prefixes=[Prefix.model_validate({"id": 1, "prefix": "10.0.0.0/24", "vrf": {"id": 9}})],
        created=created,
    )


def one(netbox: NetBoxFacts, ip_address: str = "10.0.0.5", metadata: dict[str, Any] | None = None) -> Any:
    addresses = [address("a1", ip_address, metadata=metadata)]
    return plan(
        addresses,
        addresses,
        {("m", "a1"): Chain(7, "node1")},
        netbox,
        PATTERN,
        tag_slug=TAG,
        release_breaker_percent=50,
    ).addresses[0]


def test_a_new_address_is_created_on_the_lag_with_vrf_and_tenant_and_made_primary() -> None:
    item = one(facts())
    assert item.state is State.SYNCED and item.make_primary
    assert item.create == {
        "address": "10.0.0.5/24", "assigned_object_type": "dcim.interface", "assigned_object_id": 2,
        "tenant": 3, "vrf": 9, "description": description(("m", "a1"), 2),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("existing", "state", "conflicted"),
    [
        (ip(40, "10.0.0.5/24", on=2), State.SYNCED, ""),
        # Planned in NetBox but on no interface: the original operator's conflict, nothing assigned.
        (ip(40, "10.0.0.5/24"), State.CONFLICT, "interface"),
        (ip(40, "10.0.0.5/24", on=5), State.CONFLICT, "interface"),
        (ip(40, "10.0.0.5/24", on=99, device_id=8), State.CONFLICT, "device"),
        (ip(40, "10.0.0.5/26"), State.CONFLICT, "address"),
    ],
)
def test_an_existing_address_is_kept_or_a_conflict(existing: IPAddress, state: State, conflicted: str) -> None:
    item = one(facts([existing]))
    assert (item.state, item.conflicted) == (state, conflicted)
    assert item.create is None and not item.adopt


def test_an_address_that_is_already_primary_is_not_written_again() -> None:
    item = one(facts([ip(40, "10.0.0.5/24", on=2)], primary=40))
    assert (item.state, item.adopt, item.make_primary) == (State.SYNCED, False, False)


ORIGINAL_RECORD = {DEVICE_ID_ANNOTATION: "7", INTERFACE_ID_ANNOTATION: "2"}
ANNOTATED_BY: dict[str, dict[str, Any]] = {
    "original's finalizer": {"finalizers": [ORIGINAL_FINALIZER], "annotations": ORIGINAL_RECORD},
    "original's field manager": {
        "annotations": ORIGINAL_RECORD,
        "managedFields": [
            {
                "manager": "manager",
                "operation": "Update",
                "fieldsV1": {
                    "f:metadata": {
                        "f:annotations": {f"f:{INTERFACE_ID_ANNOTATION}": {}, f"f:{DEVICE_ID_ANNOTATION}": {}}
                    }
                },
            },
        ],
    },
    "argora-ipaddress alone": {
        "annotations": ORIGINAL_RECORD,
        "managedFields": [
            {
                "manager": "argora-ipaddress",
                "operation": "Apply",
                "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{INTERFACE_ID_ANNOTATION}": {}}}},
            },
        ],
    },
}


@pytest.mark.parametrize("annotated_by", list(ANNOTATED_BY))
def test_the_original_operators_address_is_adopted_where_it_recorded_it(annotated_by: str) -> None:
    metadata = ANNOTATED_BY[annotated_by]
    by_original = annotated_by != "argora-ipaddress alone"
    assert original_interface(address("a1", "10.0.0.5", metadata=metadata)) == (2 if by_original else None)
    item = one(facts([ip(40, "10.0.0.5/24", on=2)], primary=40), metadata=metadata)
    assert (item.state, item.adopt, item.make_primary) == (State.SYNCED, by_original, False)
    # Recorded by the original on LAG1 (its rule could pick another LAG than ours): it stays there.
    recorded_on_lag1 = {**metadata, "annotations": {**ORIGINAL_RECORD, INTERFACE_ID_ANNOTATION: "1"}}
    item = one(facts([ip(40, "10.0.0.5/24", on=1)], primary=40), metadata=recorded_on_lag1)
    assert (item.state, item.interface.id) == ((State.SYNCED, 1) if by_original else (State.CONFLICT, 2))
    # Tagged already: nothing to adopt.
    item = one(facts([ip(40, "10.0.0.5/24", on=2, tag=True)], primary=40), metadata=metadata)
    assert not item.adopt


def test_one_primary_per_device_and_family() -> None:
    addresses = [address("a1", "10.0.0.5"), address("a2", "10.0.0.6")]
    chains = {("m", "a1"): Chain(7, "node1"), ("m", "a2"): Chain(7, "node1")}
    planned = plan(addresses, addresses, chains, facts(), PATTERN, tag_slug=TAG, release_breaker_percent=50)
    assert [item.make_primary for item in planned.addresses] == [True, False]


def test_the_primary_netbox_has_stays_when_it_is_one_of_the_devices_addresses() -> None:
    """The original operator made the last address it synced primary: no address of the device takes it."""
    addresses = [address("a1", "10.0.0.5"), address("a2", "10.0.0.6")]
    chains = {("m", "a1"): Chain(7, "node1"), ("m", "a2"): Chain(7, "node1")}
    netbox = facts([ip(40, "10.0.0.5/24", on=2), ip(41, "10.0.0.6/24", on=2)], primary=41)
    planned = plan(addresses, addresses, chains, netbox, PATTERN, tag_slug=TAG, release_breaker_percent=50)
    assert [(item.primary, item.make_primary) for item in planned.addresses] == [(False, False), (True, False)]


def test_releases_only_what_we_created_where_we_put_it_and_nobody_uses() -> None:
    ours = ip(50, "10.0.0.50/24", on=2, tag=True, desc=description(("m", "gone"), 2))
    moved = ip(51, "10.0.0.51/24", on=5, tag=True, desc=description(("m", "gone2"), 2))
    in_use = ip(52, "10.0.0.52/24", on=2, tag=True, desc=description(("m", "x"), 2))
    elsewhere = address("x", "10.0.0.52")  # handed out by a pool that is not ours: still in use
    planned = plan(
        [], [elsewhere], {}, facts(created=[ours, moved, in_use]), PATTERN, tag_slug=TAG, release_breaker_percent=50
    )
    assert [release.address.id for release in planned.releases] == [50]
    assert [release.address.id for release in planned.kept] == [51]


def going(name: str, ip_address: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata = {
        "finalizers": [ORIGINAL_FINALIZER],
        "deletionTimestamp": "2026-12-06T10:00:00Z",
        "annotations": ORIGINAL_RECORD if annotations is None else annotations,
    }
    return address(name, ip_address, metadata=metadata)


def test_the_original_finalizer_asks_for_the_originals_release() -> None:
    netbox = facts(
        [
            ip(60, "10.0.0.60/24", on=2),  # where the original recorded it: deleted
            ip(61, "10.0.0.61/24", on=5),  # moved since: kept
            ip(62, "10.0.0.62/26", on=2),  # another mask: not the address the original recorded
            ip(64, "10.0.0.64/24", on=2),  # handed out again to a live IPAddress: kept
        ]
    )
    every = [
        going("g60", "10.0.0.60"), going("g61", "10.0.0.61"), going("g62", "10.0.0.62"),
        going("g63", "10.0.0.63", annotations={}), going("g64", "10.0.0.64"), address("live64", "10.0.0.64"),
        address("no-finalizer", "10.0.0.65", metadata={"deletionTimestamp": "2026-12-06T10:00:00Z"}),
    ]  # fmt: skip
    planned = plan([], every, {}, netbox, PATTERN, tag_slug=TAG, release_breaker_percent=50)
    deletes = {handover.key[1]: handover.delete.id if handover.delete else None for handover in planned.handovers}
    assert deletes == {"g60": 60, "g61": None, "g62": None, "g63": None, "g64": None}
    notes = {handover.key[1]: handover.note for handover in planned.handovers}
    assert "no longer on interface 2" in notes["g61"]
    assert "NetBox holds no 10.0.0.62/24" in notes["g62"]
    assert "recorded no interface" in notes["g63"]
    assert "handed out to m/live64" in notes["g64"]


def tagged_addresses(count: int) -> list[IPAddress]:
    return [
        ip(100 + n, f"10.0.1.{n + 1}/24", on=2, tag=True, desc=description(("m", f"gone{n}"), 2)) for n in range(count)
    ]


@pytest.mark.parametrize(
    ("still_there", "released", "percent", "held"),
    [
        (14, 6, 50, False),  # six machines of twenty gone: released
        (4, 16, 50, True),  # sixteen of twenty at once: held
        (15, 5, 10, False),  # up to five never trip it
        (0, 3, 50, True),  # no IPAddress left in the cluster at all: held, however few
        (0, 20, 100, False),  # the breaker turned off
    ],
)
def test_the_release_breaker_holds_mass_releases(still_there: int, released: int, percent: int, held: bool) -> None:
    """After a `clusterctl move`, a restore or with a wrong kubeconfig the IPAddresses are missing, not
    released: their NetBox addresses, primary IPs included, must not go."""
    tagged = tagged_addresses(still_there + released)
    holding = [address(f"gone{n}", f"10.0.1.{n + 1}") for n in range(released, released + still_there)]
    planned = plan(
        holding, holding, dict.fromkeys(map(key_of, holding), Chain(7, "node1")), facts(created=tagged), PATTERN,
        tag_slug=TAG, release_breaker_percent=percent,
    )  # fmt: skip
    assert len(planned.releases) == released
    assert bool(planned.release_hold) == held
