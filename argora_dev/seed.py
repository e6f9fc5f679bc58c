"""Writes test inventories into the real NetBox through its REST API, in bulk.

Every test gets its own objects: names carry a per-test prefix, so tests never see each other's
clusters or devices and never need the database to be reset.
"""

from __future__ import annotations

import ipaddress
import itertools
import string
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import requests

# NetBox takes lists in one POST; past a few hundred objects a request gets slow enough to time out.
BULK_SIZE = 250

_counter = itertools.count(1)


# NetBox enforces globally unique IP addresses by default: hand out fresh ones across the whole run.
class _Hosts:
    """The host addresses fresh_ipv4() hands out, in 10.0.0.0/8, each once (seeding runs in threads)."""

    network = ipaddress.IPv4Network("10.0.0.0/8")

    def __init__(self) -> None:
        self._next = int(ipaddress.IPv4Address("10.0.0.10"))
        self._lock = threading.Lock()

    def take(self) -> ipaddress.IPv4Address:
        with self._lock:
            self._next += 1
            return ipaddress.IPv4Address(self._next - 1)

    def skip_past(self, taken: ipaddress.IPv4Address) -> None:
        with self._lock:
            self._next = max(self._next, int(taken) + 1)


_hosts = _Hosts()


_next_mac = itertools.count(1)
# Networks for prefixes, apart from the hosts above: a test selecting a prefix by its CIDR must find only its own.
_next_network = itertools.count(int(ipaddress.IPv4Address("100.64.0.0")) >> 8)


def fresh_mac() -> str:
    """A locally administered MAC address no other test of this run was given."""
    value = next(_next_mac)
    return "02:00:" + ":".join(f"{(value >> shift) & 0xFF:02X}" for shift in (24, 16, 8, 0))


def fresh_ipv4(prefix_length: int = 24) -> str:
    """An IPv4 host address no other test of this run was given, in CIDR form as NetBox stores it.

    NetBox refuses a /24's network and broadcast addresses on an interface: those are skipped."""
    while True:
        address = _hosts.take()
        if int(address) % 256 not in {0, 255}:
            return f"{address}/{prefix_length}"


def fresh_network(prefix_length: int = 24) -> ipaddress.IPv4Network:
    """An IPv4 network (at most a /24) no other test of this run was given."""
    return ipaddress.IPv4Network((next(_next_network) << 8, prefix_length), strict=False)


def unique_prefix(label: str) -> str:
    """A short, slug-safe, run-unique prefix such as `t7-pagination`."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-")[:24]
    return f"t{next(_counter)}-{slug}"


class NetBoxSeeder:
    """A small REST client with the admin token: create, update and delete NetBox objects."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({**headers, "Accept": "application/json"})

    def _check(self, response: requests.Response) -> Any:
        if not response.ok:
            raise RuntimeError(
                f"{response.request.method} {response.url}: {response.status_code} {response.text[:500]}"
            )
        return response.json() if response.content else None

    def create(self, endpoint: str, objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        created: list[dict[str, Any]] = []
        for start in range(0, len(objects), BULK_SIZE):
            batch = list(objects[start : start + BULK_SIZE])
            created.extend(self._check(self.session.post(f"{self.url}/api/{endpoint}/", json=batch, timeout=300)))
        return created

    def create_one(self, endpoint: str, **fields: Any) -> dict[str, Any]:
        return self.create(endpoint, [fields])[0]

    def ensure(self, endpoint: str, slug: str, **fields: Any) -> dict[str, Any]:
        """The object with `slug`, created when missing: for names NetBox keeps globally unique."""
        found = self.get(endpoint, slug=slug)
        return found[0] if found else self.create_one(endpoint, slug=slug, **fields)

    def update(self, endpoint: str, object_id: int, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._check(
            self.session.patch(f"{self.url}/api/{endpoint}/{object_id}/", json=fields, timeout=60)
        )
        return result

    def update_many(self, endpoint: str, changes: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(changes), BULK_SIZE):
            self._check(
                self.session.patch(
                    f"{self.url}/api/{endpoint}/", json=list(changes[start : start + BULK_SIZE]), timeout=300
                )
            )

    def delete(self, endpoint: str, ids: Iterable[int]) -> None:
        body = [{"id": object_id} for object_id in ids]
        if body:
            self._check(self.session.delete(f"{self.url}/api/{endpoint}/", json=body, timeout=300))

    def get(self, endpoint: str, **params: Any) -> list[dict[str, Any]]:
        """Every object of `endpoint` matching `params`, all pages (for assertions)."""
        results: list[dict[str, Any]] = []
        url: str | None = f"{self.url}/api/{endpoint}/"
        query: dict[str, Any] | None = {"limit": 1000, **params}
        while url:
            page = self._check(self.session.get(url, params=query, timeout=120))
            results.extend(page["results"])
            url, query = page["next"], None
        return results


class Topology:
    """Shared scaffolding of a test inventory: region, site, tenant, vendor, type, role, cluster type."""

    def __init__(
        self, seeder: NetBoxSeeder, prefix: str, manufacturer: str = "Dell", shared_vendor: bool = False
    ) -> None:
        self.seeder = seeder
        self.prefix = prefix
        self.region = seeder.create_one("dcim/regions", name=f"{prefix}-region", slug=f"{prefix}-region")
        self.site = seeder.create_one(
            "dcim/sites", name=f"{prefix}-site", slug=f"{prefix}-site", region=self.region["id"], status="active"
        )
        self.tenant = seeder.create_one("tenancy/tenants", name=f"{prefix}-tenant", slug=f"{prefix}-tenant")
        if shared_vendor:
            # Manufacturer slugs are global in NetBox; tables keyed by vendor need the real ones.
            self.manufacturer = seeder.ensure("dcim/manufacturers", manufacturer.lower(), name=manufacturer)
        else:
            vendor_slug = f"{prefix}-{manufacturer.lower()}"
            self.manufacturer = seeder.create_one("dcim/manufacturers", name=vendor_slug, slug=vendor_slug)
        self.device_type = seeder.create_one(
            "dcim/device-types", manufacturer=self.manufacturer["id"], model=f"{prefix}-model", slug=f"{prefix}-model"
        )
        self.role = seeder.create_one(
            "dcim/device-roles", name=f"{prefix}-server", slug=f"{prefix}-server", color="00ff00"
        )
        self.cluster_type = seeder.create_one(
            "virtualization/cluster-types", name=f"{prefix}-ctype", slug=f"{prefix}-ctype"
        )

    @classmethod
    def existing(cls, seeder: NetBoxSeeder, prefix: str, manufacturer: str = "Dell") -> Topology:
        """The scaffolding a Topology of `prefix` made earlier (in a restored dump), found by its slugs."""
        topology = cls.__new__(cls)
        topology.seeder, topology.prefix = seeder, prefix
        (topology.region,) = seeder.get("dcim/regions", slug=f"{prefix}-region")
        (topology.site,) = seeder.get("dcim/sites", slug=f"{prefix}-site")
        (topology.tenant,) = seeder.get("tenancy/tenants", slug=f"{prefix}-tenant")
        (topology.manufacturer,) = seeder.get("dcim/manufacturers", slug=f"{prefix}-{manufacturer.lower()}")
        (topology.device_type,) = seeder.get("dcim/device-types", slug=f"{prefix}-model")
        (topology.role,) = seeder.get("dcim/device-roles", slug=f"{prefix}-server")
        (topology.cluster_type,) = seeder.get("virtualization/cluster-types", slug=f"{prefix}-ctype")
        return topology

    def cluster(self, name: str, **fields: Any) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "name": f"{self.prefix}-{name}",
            "type": self.cluster_type["id"],
            "status": "active",
            "scope_type": "dcim.site",
            "scope_id": self.site["id"],
        }
        return self.seeder.create_one("virtualization/clusters", **{**defaults, **fields})

    def devices(self, cluster: Mapping[str, Any] | None, names: Sequence[str], **fields: Any) -> list[dict[str, Any]]:
        base: dict[str, Any] = {
            "device_type": self.device_type["id"],
            "role": self.role["id"],
            "site": self.site["id"],
            "status": "active",
            "cluster": cluster["id"] if cluster else None,
        }
        return self.seeder.create("dcim/devices", [{**base, **fields, "name": name} for name in names])


# How NetBox 4.2+ inventories hold an interface's MACs: `primary` is what NetBox's UI makes; the API and
# migrations from older NetBox often leave MACs assigned but none primary, sometimes several.
type MacShape = Literal["primary", "assigned", "two-with-primary", "two-assigned", "none"]


def add_macs(seeder: NetBoxSeeder, interfaces: Sequence[Mapping[str, Any]], shape: MacShape) -> list[str | None]:
    """MAC objects on each interface in `shape`, in bulk; per interface, the MAC an operator should take
    (None where NetBox does not say which one is meant)."""
    count = {"primary": 1, "assigned": 1, "two-with-primary": 2, "two-assigned": 2, "none": 0}[shape]
    macs = [[fresh_mac() for _ in range(count)] for _ in interfaces]
    created = seeder.create(
        "dcim/mac-addresses",
        [
            {"mac_address": mac, "assigned_object_type": "dcim.interface", "assigned_object_id": iface["id"]}
            for iface, own in zip(interfaces, macs, strict=True)
            for mac in own
        ],
    )
    if shape in ("primary", "two-with-primary"):
        primaries = created[count - 1 :: count]
        seeder.update_many(
            "dcim/interfaces",
            [
                {"id": iface["id"], "primary_mac_address": m["id"]}
                for iface, m in zip(interfaces, primaries, strict=True)
            ],
        )
    if shape in ("two-assigned", "none"):
        return [None for _ in interfaces]
    return [own[-1].lower() for own in macs]


@dataclass
class Server:
    """A device with its BMC interface, the IP on it (also its OOB IP, when set) and the MAC an operator
    should find for it (None when NetBox leaves it unclear)."""

    device: dict[str, Any]
    interface: dict[str, Any]
    ip: dict[str, Any]
    mac: str | None

    @property
    def name(self) -> str:
        name: str = self.device["name"]
        return name

    @property
    def address(self) -> str:
        return str(self.ip["address"]).split("/")[0]


def add_servers(
    topology: Topology,
    cluster: Mapping[str, Any] | None,
    names: Sequence[str],
    *,
    set_oob_ip: bool = True,
    interface_name: str = "remoteboard",
    mac_shape: MacShape = "primary",
    **device_fields: Any,
) -> list[Server]:
    """Devices with a BMC interface carrying one IPv4 address and MACs in `mac_shape`, in a few bulk requests."""
    seeder = topology.seeder
    devices = topology.devices(cluster, names, **device_fields)
    interfaces = seeder.create(
        "dcim/interfaces",
        [{"device": d["id"], "name": interface_name, "type": "1000base-t", "mgmt_only": True} for d in devices],
    )
    addresses = seeder.create(
        "ipam/ip-addresses",
        [
            {
                "address": fresh_ipv4(),
                "assigned_object_type": "dcim.interface",
                "assigned_object_id": iface["id"],
                "dns_name": f"{device['name']}-r.example.com",
            }
            for device, iface in zip(devices, interfaces, strict=True)
        ],
    )
    macs = add_macs(seeder, interfaces, mac_shape)
    if set_oob_ip:
        seeder.update_many(
            "dcim/devices",
            [{"id": d["id"], "oob_ip": ip["id"]} for d, ip in zip(devices, addresses, strict=True)],
        )
    return [Server(d, iface, ip, mac) for d, iface, ip, mac in zip(devices, interfaces, addresses, macs, strict=True)]


def skip_taken_addresses(seeder: NetBoxSeeder) -> None:
    """A restored dump holds addresses this process's fresh_ipv4() would hand out: go on after the highest
    of them (the dump's addresses have gaps, where a seeding handed out an address it did not keep)."""
    addresses = seeder.get("ipam/ip-addresses", fields="address")
    ips = (ipaddress.ip_interface(address["address"]).ip for address in addresses)
    taken = [ip for ip in ips if isinstance(ip, ipaddress.IPv4Address) and ip in _Hosts.network]
    if taken:
        _hosts.skip_past(max(taken))


def add_region(seeder: NetBoxSeeder, slug: str, sites: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A region and that many active sites in it, named <region>a, <region>b, ...: extending the region's
    slug, as the sites do where argora-ippool's compute transit pool names come from."""
    region = seeder.create_one("dcim/regions", name=slug, slug=slug)
    bodies = [
        {"name": f"{slug}{letter}", "slug": f"{slug}{letter}", "region": region["id"], "status": "active"}
        for letter in string.ascii_lowercase[:sites]
    ]
    return region, seeder.create("dcim/sites", bodies)


# The prefix custom field holding the gateway: the controllers' default ARGORA_GATEWAY_CUSTOM_FIELD.
GATEWAY_FIELD = "gateway"


@dataclass(frozen=True)
class PrefixSeed:
    """One prefix for `add_prefixes`: scoped to `site`, or to `location` (one of the site's) when given."""

    prefix: str
    site: Mapping[str, Any]
    location: Mapping[str, Any] | None = None
    role: Mapping[str, Any] | None = None
    vlan: tuple[int, str] | None = None  # (VID, name) of a VLAN at the site, made for this prefix
    gateway: str | None = None


def ensure_gateway_field(seeder: NetBoxSeeder) -> None:
    """The prefixes' gateway custom field, made when NetBox has none yet (it is global, tests share it)."""
    if not seeder.get("extras/custom-fields", name=GATEWAY_FIELD):
        seeder.create_one("extras/custom-fields", name=GATEWAY_FIELD, type="text", object_types=["ipam.prefix"])


def add_prefixes(seeder: NetBoxSeeder, seeds: Sequence[PrefixSeed]) -> list[dict[str, Any]]:
    """NetBox 4.2+ scoped prefixes with their VLANs and gateway custom fields, in a few bulk requests."""
    if any(seed.gateway for seed in seeds):
        ensure_gateway_field(seeder)
    vlans = iter(
        seeder.create(
            "ipam/vlans",
            [{"vid": seed.vlan[0], "name": seed.vlan[1], "site": seed.site["id"]} for seed in seeds if seed.vlan],
        )
    )
    bodies: list[dict[str, Any]] = []
    for seed in seeds:
        scope = ("dcim.location", seed.location) if seed.location else ("dcim.site", seed.site)
        body: dict[str, Any] = {"prefix": seed.prefix, "scope_type": scope[0], "scope_id": scope[1]["id"]}
        if seed.role:
            body["role"] = seed.role["id"]
        if seed.vlan:
            body["vlan"] = next(vlans)["id"]
        if seed.gateway:
            body["custom_fields"] = {GATEWAY_FIELD: seed.gateway}
        bodies.append(body)
    return seeder.create("ipam/prefixes", bodies)


def interface_names(seeder: NetBoxSeeder, device: Mapping[str, Any]) -> list[str]:
    """A device's interface names as NetBox has them now, sorted."""
    return sorted(iface["name"] for iface in seeder.get("dcim/interfaces", device_id=device["id"]))
