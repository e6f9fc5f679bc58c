"""Argora's custom resources as pydantic models: each kind's spec and status, and how it is served.

The models are the single source: `argora-crds` (`argora_common.crd_manifests`) writes
`charts/argora/crds/` from them and the test suite fails when the committed YAML differs. The wire format
is the original Argora operator's (`argora.cloud.sap/v1alpha1`, `spec.clusters[]` with `name`, `region`,
`type`, `bmcCredentialsRef`), extended with more selection criteria.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP: Final = "argora.cloud.sap"
VERSION: Final = "v1alpha1"
MAX_PROBLEMS: Final = 50

DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DeviceStatus = Literal["offline", "active", "planned", "staged", "failed", "inventory", "decommissioning"]
NonEmpty = Annotated[str, Field(min_length=1, max_length=255)]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are the API server's business."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SecretRef(WireModel):
    """A Secret in the resource's own namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]


class ClusterSelector(WireModel):
    """NetBox clusters matching every given criterion, and their devices with one of `statuses`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.name) || has(self.region) || has(self.type) || has(self.site)"
                    " || has(self.tenant) || has(self.role) || (has(self.tags) && size(self.tags) > 0)",
                    "message": "select clusters by at least one of name, region, type, site, tenant, role, tags",
                }
            ]
        }
    )

    name: NonEmpty | None = Field(default=None, description="NetBox cluster name")
    region: NonEmpty | None = Field(default=None, description="Region slug of the cluster's scope")
    type: NonEmpty | None = Field(default=None, description="Cluster type slug")
    site: NonEmpty | None = Field(default=None, description="Site slug of the cluster's scope")
    tenant: NonEmpty | None = Field(default=None, description="Tenant slug")
    tags: list[NonEmpty] = Field(default_factory=list, max_length=32, description="Tag slugs, all required")
    role: NonEmpty | None = Field(default=None, description="Device role slug: only devices with this role")
    statuses: list[DeviceStatus] | None = Field(
        default=None, min_length=1, description="Device statuses to select (controller default when unset)"
    )


class ImportClusterSelector(ClusterSelector):
    bmc_credentials_ref: SecretRef | None = Field(
        default=None, description="Secret with the BMC credentials (keys bmcUser/bmcPassword or username/password)"
    )


class Condition(WireModel):
    type: Annotated[str, Field(min_length=1, max_length=316)]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(max_length=1024)] = ""
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class DeviceProblem(WireModel):
    """Why one NetBox device was skipped or failed."""

    device: str = Field(description="NetBox device name")
    device_id: int | None = Field(default=None, description="NetBox device id")
    reason: str = Field(description="Machine-readable reason, e.g. NoOOBIP, NameCollision")
    message: str = ""


class ClusterImportSpec(WireModel):
    clusters: list[ImportClusterSelector] = Field(min_length=1, max_length=100)
    prune: bool = Field(default=True, description="Delete objects of devices that left the selection")
    max_prune_per_pass: int | None = Field(
        default=None, ge=0, description="Most objects deleted in one pass (default: 10% of the owned ones, at least 5)"
    )
    deletion_policy: Literal["Delete", "Orphan"] = Field(
        default="Delete", description="What happens to the objects when the ClusterImport is deleted"
    )
    on_immutable_change: Literal["Report", "Recreate"] = Field(
        default="Report",
        description="When a BMC's immutable spec.access changes in NetBox: report, or recreate the BMC",
    )


class ClusterImportCounts(WireModel):
    clusters: int = 0
    devices: int = 0
    created: int = 0
    updated: int = 0
    adopted: int = Field(default=0, description="Objects of the original Argora operator taken over")
    unchanged: int = 0
    pruned: int = 0
    prune_held_back: int = 0
    drifted: int = 0
    skipped: int = 0
    failed: int = 0
    warnings: int = Field(default=0, description="Devices written with something left out: see status.problems")


class ResourceStatus(WireModel):
    # The original Argora operator's status fields, kept for the users' dashboards and alerts.
    state: Literal["Ready", "Error"] | None = Field(default=None, description="Ready, or Error after a failed pass")
    description: str | None = Field(default=None, description="The last error, empty when the last pass worked")
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    last_sync_time: datetime | None = None


class DeviceResourceStatus(ResourceStatus):
    problems: list[DeviceProblem] = Field(
        default_factory=list, max_length=MAX_PROBLEMS, description="The first problems of the last pass"
    )


class ClusterImportStatus(DeviceResourceStatus):
    counts: ClusterImportCounts = Field(default_factory=ClusterImportCounts)


DEFAULT_BMC_INTERFACE_NAMES: Final = ("iDRAC", "iLO", "imm", "XClarity", "cimc", "iRMC", "XCC")


class UpdateSpec(WireModel):
    clusters: list[ClusterSelector] = Field(min_length=1, max_length=100)
    bmc_interface_names: list[NonEmpty] = Field(
        default_factory=lambda: list(DEFAULT_BMC_INTERFACE_NAMES),
        max_length=64,
        description="Names vendors give the BMC port; renamed to targetInterfaceName",
    )
    target_interface_name: NonEmpty = Field(default="remoteboard", description="Name of the BMC interface")
    set_oob_ip: bool = Field(
        default=True, alias="setOOBIP", description="Set the device's OOB IP to the single IP on the BMC interface"
    )
    platform: NonEmpty | None = Field(default=None, description="Slug of the NetBox platform every device gets")
    remove_interface_prefixes: list[NonEmpty] = Field(
        default_factory=lambda: ["vmk"],
        max_length=32,
        description="Interfaces whose name starts with one of these are deleted with their IPs; [] turns it off",
    )
    dry_run: bool = Field(default=False, description="Compute and report every change, write nothing")
    max_deletes_per_pass: int = Field(default=50, ge=0, description="Most interfaces and IPs deleted in one pass")


class UpdateCounts(WireModel):
    rename: int = 0
    oob_ip: int = Field(default=0, alias="oobIP")
    platform: int = 0
    interface_deleted: int = 0
    ip_deleted: int = Field(default=0, alias="ipDeleted")


class Change(WireModel):
    """One correction of NetBox: planned (dry run) or applied."""

    device: str
    action: str = Field(description="rename, oob_ip, platform, interface_deleted or ip_deleted")
    before: str = ""
    after: str = ""
    applied: bool = False


class UpdateStatus(DeviceResourceStatus):
    devices: int = 0
    planned: UpdateCounts = Field(default_factory=UpdateCounts)
    applied: UpdateCounts = Field(default_factory=UpdateCounts)
    conflicts: int = 0
    failed: int = 0
    deletes_held_back: int = 0
    changes: list[Change] = Field(default_factory=list, max_length=MAX_PROBLEMS, description="The latest changes")


PrefixStatus = Literal["container", "active", "reserved", "deprecated"]
# A CIDR, a single address, or a range `first-last` of addresses, as the in-cluster IPAM provider takes them.
_EXCLUDED_ADDRESS_RULE: Final = (
    "self.all(a, isCIDR(a) || isIP(a) || (a.split('-').size() == 2 && isIP(a.split('-')[0]) && isIP(a.split('-')[1])))"
)


class IPPoolSelector(WireModel):
    """NetBox prefixes matching every given criterion; one GlobalInClusterIPPool each."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.namePrefix) != has(self.nameOverride)",
                    "message": "set exactly one of namePrefix and nameOverride",
                },
                {
                    "rule": "has(self.region) || has(self.role) || has(self.prefix)",
                    "message": "select prefixes by at least one of region, role, prefix",
                },
            ]
        }
    )

    name_prefix: Annotated[str, Field(min_length=1, max_length=200, pattern=DNS_SUBDOMAIN_PATTERN)] | None = Field(
        default=None,
        description="Pools are named <namePrefix>-<site> (compute-transit prefixes: see docs/controllers/ippool.md)",
    )
    name_override: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)] | None = Field(
        default=None,
        description="The pool's whole name; of several prefixes selected, the first in NetBox's order gets it",
    )
    region: NonEmpty | None = Field(
        default=None, description="Region slug: prefixes scoped to it or to a site or location in it"
    )
    role: NonEmpty | None = Field(default=None, description="Prefix role slug")
    prefix: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=64,
                json_schema_extra={"x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "not a CIDR"}]},
            ),
        ]
        | None
    ) = Field(default=None, description="One exact prefix, e.g. 10.0.0.0/24")
    site: NonEmpty | None = Field(default=None, description="Site slug: prefixes scoped to it or to a location in it")
    tenant: NonEmpty | None = Field(default=None, description="Tenant slug")
    vrf: NonEmpty | None = Field(default=None, description="VRF name")
    tags: list[NonEmpty] = Field(default_factory=list, max_length=32, description="Tag slugs, all required")
    status: PrefixStatus | None = Field(
        default=None, description="Prefix status; unset selects prefixes of every status, as the original operator"
    )
    exclude_mask: int | None = Field(
        default=None, ge=1, le=128, description="Exclude <network>/<excludeMask>; longer than the prefix's mask"
    )
    excluded_addresses: list[Annotated[str, Field(min_length=1, max_length=81)]] = Field(
        default_factory=list,
        max_length=256,
        description="Addresses, ranges a-b or CIDRs excluded from every pool of this selection",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": _EXCLUDED_ADDRESS_RULE, "message": "each entry must be an IP, a CIDR or a range a-b"}
            ]
        },
    )
    exclude_last_n_addresses: int | None = Field(
        default=None,
        ge=0,
        alias="excludeLastNAddresses",
        description="Exclude the prefix's last N addresses one by one, counted back from its last address (IPv4:"
        " the broadcast address included), at most the whole prefix, as the original operator; more than 16384"
        " are reported (TooManyExclusions)",
    )


class PrefixProblem(WireModel):
    """Why one NetBox prefix got no pool, or its pool was not changed."""

    prefix: str = Field(description="The NetBox prefix, e.g. 10.0.0.0/24")
    prefix_id: int | None = Field(default=None, description="NetBox prefix id")
    pool: str = Field(default="", description="The pool's name, when it has one")
    reason: str = Field(description="Machine-readable reason, e.g. NoSite, NameCollision, InUse")
    message: str = ""


class IPPoolImportSpec(WireModel):
    ippools: list[IPPoolSelector] = Field(min_length=1, max_length=100)
    prune: bool = Field(default=True, description="Delete pools of prefixes that left the selection (never in use)")
    max_prune_per_pass: int | None = Field(
        default=None, ge=0, description="Most pools deleted in one pass (default: 10% of the owned ones, at least 5)"
    )
    deletion_policy: Literal["Delete", "Orphan"] = Field(
        default="Delete",
        description="What happens to the pools when the IPPoolImport is deleted (pools in use are always kept)",
    )


class IPPoolImportCounts(WireModel):
    prefixes: int = Field(default=0, description="Prefixes selected in NetBox")
    created: int = 0
    updated: int = 0
    adopted: int = Field(default=0, description="Pools of the original Argora operator taken over")
    unchanged: int = 0
    pruned: int = 0
    prune_held_back: int = 0
    in_use: int = Field(default=0, description="Pools whose addresses or prefix changed in NetBox but are in use")
    skipped: int = 0
    failed: int = 0


class IPPoolImportStatus(ResourceStatus):
    counts: IPPoolImportCounts = Field(default_factory=IPPoolImportCounts)
    problems: list[PrefixProblem] = Field(
        default_factory=list, max_length=MAX_PROBLEMS, description="The first problems of the last pass"
    )


class CustomResource(BaseModel):
    """How one kind is served: names, printer columns and its spec/status models."""

    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: list[dict[str, str]]


def _ready_columns(counts: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [
        {"name": "State", "type": "string", "jsonPath": ".status.state"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
        *({"name": name, "type": "integer", "jsonPath": path} for name, path in counts),
        {"name": "Last Sync", "type": "date", "jsonPath": ".status.lastSyncTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


CLUSTER_IMPORT: Final = CustomResource(
    kind="ClusterImport",
    plural="clusterimports",
    short_names=["ci", "cimport"],
    spec=ClusterImportSpec,
    status=ClusterImportStatus,
    columns=_ready_columns([("Devices", ".status.counts.devices"), ("Failed", ".status.counts.failed")]),
)
UPDATE: Final = CustomResource(
    kind="Update",
    plural="updates",
    short_names=["nbupdate"],
    spec=UpdateSpec,
    status=UpdateStatus,
    columns=_ready_columns([("Devices", ".status.devices"), ("Failed", ".status.failed")]),
)
IPPOOL_IMPORT: Final = CustomResource(
    kind="IPPoolImport",
    plural="ippoolimports",
    short_names=["ipi", "ippi"],
    spec=IPPoolImportSpec,
    status=IPPoolImportStatus,
    columns=_ready_columns([("Prefixes", ".status.counts.prefixes"), ("Failed", ".status.counts.failed")]),
)
ARGORA_RESOURCES: Final = (CLUSTER_IMPORT, UPDATE, IPPOOL_IMPORT)
