"""What Argora reads from NetBox: typed records and the list endpoints with the fields and filters used.

NetBox silently ignores filter names it does not know and then returns the whole table, so each
endpoint here lists the filter names it may be given; the test suite proves against a real NetBox that
every one of them narrows the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Ref(_Record):
    """A nested (brief) NetBox object: what a device says of its site, role, platform, ..."""

    id: int
    name: str | None = None
    slug: str | None = None


class IPRef(_Record):
    id: int
    address: str
    dns_name: str = ""


class DeviceTypeRef(_Record):
    id: int
    slug: str
    model: str = ""
    manufacturer: Ref


def _choice_value(value: object) -> object:
    """NetBox renders choice fields as {"value": ..., "label": ...}; keep the value."""
    return value.get("value") if isinstance(value, Mapping) else value


class Cluster(_Record):
    id: int
    name: str
    type: Ref
    status: str = ""
    group: Ref | None = None
    tenant: Ref | None = None
    scope_type: str | None = None
    scope_id: int | None = None
    tags: list[Ref] = Field(default_factory=list)
    # Devices of the cluster, whatever their status: how many pages reading them takes.
    device_count: int | None = None

    _status = field_validator("status", mode="before")(_choice_value)


class Device(_Record):
    id: int
    name: str | None
    status: str
    site: Ref
    role: Ref | None = None
    platform: Ref | None = None
    device_type: DeviceTypeRef
    tenant: Ref | None = None
    cluster: Ref | None = None
    oob_ip: IPRef | None = None
    primary_ip4: IPRef | None = None
    primary_ip6: IPRef | None = None
    tags: list[Ref] = Field(default_factory=list)

    _status = field_validator("status", mode="before")(_choice_value)


class Site(_Record):
    id: int
    slug: str
    name: str
    region: Ref | None = None
    device_count: int | None = None  # how many devices the site holds: whether to read its interfaces by site


class VLANRef(_Record):
    id: int
    vid: int
    name: str = ""


class MACRef(_Record):
    id: int
    mac_address: str


class Interface(_Record):
    id: int
    device: Ref
    name: str
    type: str | None = None
    mgmt_only: bool = False
    lag: Ref | None = None
    # Since NetBox 4.2 MACs are objects assigned to the interface; `mac_address` is only the primary's.
    mac_address: str | None = None
    primary_mac_address: MACRef | None = None
    mac_addresses: list[MACRef] = Field(default_factory=list)
    mtu: int | None = None
    mode: str | None = None
    untagged_vlan: VLANRef | None = None

    _type = field_validator("type", "mode", mode="before")(_choice_value)


class Prefix(_Record):
    id: int
    prefix: str
    status: str = ""
    # Since NetBox 4.2 a prefix has a scope (site, location, region or site group) instead of a site.
    scope_type: str | None = None
    scope_id: int | None = None
    scope: Ref | None = None
    role: Ref | None = None
    vlan: VLANRef | None = None
    vrf: Ref | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)

    _status = field_validator("status", mode="before")(_choice_value)


class Location(_Record):
    id: int
    slug: str
    site: Ref


class Region(_Record):
    id: int
    slug: str
    parent: Ref | None = None


class VRF(_Record):
    id: int
    name: str


class AssignedInterface(_Record):
    """What an IP address is assigned to: an interface names its device, a VM interface its VM."""

    id: int
    name: str | None = None
    device: Ref | None = None


class IPAddress(_Record):
    id: int
    address: str
    dns_name: str = ""
    status: str = ""
    assigned_object_type: str | None = None
    assigned_object_id: int | None = None
    assigned_object: AssignedInterface | None = None
    vrf: Ref | None = None
    tenant: Ref | None = None
    tags: list[Ref] = Field(default_factory=list)
    description: str = ""

    _status = field_validator("status", mode="before")(_choice_value)


@dataclass(frozen=True)
class Endpoint[M: BaseModel]:
    """One NetBox list endpoint: its path, result model, trimmed fields and the filters we may use."""

    app: str
    name: str
    model: type[M]
    fields: tuple[str, ...]
    filters: frozenset[str]

    @property
    def path(self) -> str:
        return f"{self.app}/{self.name}"


CLUSTERS: Final = Endpoint(
    "virtualization",
    "clusters",
    Cluster,
    ("id", "name", "type", "status", "group", "tenant", "scope_type", "scope_id", "tags", "device_count"),
    frozenset({"id", "name", "type", "region", "site", "tenant", "tag", "status", "group"}),
)
DEVICES: Final = Endpoint(
    "dcim",
    "devices",
    Device,
    (
        "id",
        "name",
        "status",
        "site",
        "role",
        "platform",
        "device_type",
        "tenant",
        "cluster",
        "oob_ip",
        "primary_ip4",
        "primary_ip6",
        "tags",
    ),
    frozenset({"id", "cluster_id", "status", "role", "site", "tenant", "tag", "name"}),
)
SITES: Final = Endpoint(
    "dcim", "sites", Site, ("id", "slug", "name", "region", "device_count"), frozenset({"id", "slug"})
)
INTERFACES: Final = Endpoint(
    "dcim",
    "interfaces",
    Interface,
    (
        "id",
        "device",
        "name",
        "type",
        "mgmt_only",
        "lag",
        "mac_address",
        "primary_mac_address",
        "mac_addresses",
        "mtu",
        "mode",
        "untagged_vlan",
    ),
    frozenset({"id", "device_id", "site_id", "lag_id", "name", "name__ie", "mgmt_only", "type"}),
)
IP_ADDRESSES: Final = Endpoint(
    "ipam",
    "ip-addresses",
    IPAddress,
    (
        "id",
        "address",
        "dns_name",
        "status",
        "assigned_object_type",
        "assigned_object_id",
        "assigned_object",
        "vrf",
        "tenant",
        "tags",
        "description",
    ),
    frozenset({"id", "device_id", "interface_id", "interface", "address", "tag"}),
)
PLATFORMS: Final = Endpoint("dcim", "platforms", Ref, ("id", "name", "slug"), frozenset({"id", "slug"}))
PREFIXES: Final = Endpoint(
    "ipam",
    "prefixes",
    Prefix,
    ("id", "prefix", "status", "scope_type", "scope_id", "scope", "role", "vlan", "vrf", "custom_fields"),
    frozenset({"id", "site_id", "region", "site", "role", "prefix", "tenant", "tag", "status", "vrf_id"}),
)
LOCATIONS: Final = Endpoint("dcim", "locations", Location, ("id", "slug", "site"), frozenset({"id"}))
VRFS: Final = Endpoint("ipam", "vrfs", VRF, ("id", "name"), frozenset({"name"}))
TAGS: Final = Endpoint("extras", "tags", Ref, ("id", "name", "slug"), frozenset({"slug"}))
REGIONS: Final = Endpoint("dcim", "regions", Region, ("id", "slug", "parent"), frozenset())


class ObjectChange(_Record):
    """One entry of NetBox's change log (`/api/core/object-changes/`); the snapshots only when asked for."""

    id: int
    time: datetime
    request_id: str | None = None
    action: str
    changed_object_type: str
    changed_object_id: int
    prechange_data: dict[str, Any] | None = None
    postchange_data: dict[str, Any] | None = None

    _action = field_validator("action", mode="before")(_choice_value)


class Named(_Record):
    id: int
    name: str


_CHANGE_FIELDS: Final = ("id", "time", "request_id", "action", "changed_object_type", "changed_object_id")
# The slim list a look at the change log reads, overlapping the last one; the snapshots only of new entries.
OBJECT_CHANGES: Final = Endpoint(
    "core", "object-changes", ObjectChange, _CHANGE_FIELDS, frozenset({"time_after", "changed_object_type"})
)
OBJECT_CHANGE_SNAPSHOTS: Final = Endpoint(
    "core", "object-changes", ObjectChange, (*_CHANGE_FIELDS, "prechange_data", "postchange_data"), frozenset({"id"})
)
WEBHOOKS: Final = Endpoint("extras", "webhooks", Named, ("id", "name"), frozenset({"name"}))
EVENT_RULES: Final = Endpoint("extras", "event-rules", Named, ("id", "name"), frozenset({"name"}))
