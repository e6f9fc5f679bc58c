"""Settings of argora-metal3: the shared ones plus the BMC address and root device hint tables."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from argora_common.settings import PrefixGatewaySettings

# Metal3 BMC address per NetBox manufacturer slug; {ip} is the BMC's address (IPv6 in brackets).
DEFAULT_BMC_ADDRESSES: Final = {
    "dell": "idrac-virtualmedia://{ip}/redfish/v1/Systems/System.Embedded.1",
    "hpe": "redfish-virtualmedia://{ip}/redfish/v1/Systems/1",
    "lenovo": "redfish-virtualmedia://{ip}/redfish/v1/Systems/1",
    "supermicro": "redfish-virtualmedia://{ip}/redfish/v1/Systems/1",
}
FALLBACK_BMC_ADDRESS: Final = "redfish://{ip}/redfish/v1/Systems/1"
# The original operator's roles from device tags, for the `<label prefix>/role` label of hosts.
DEFAULT_ROLE_TAGS: Final = {"ceph-HDD": "ceph-osd", "ceph-NVME": "ceph-osd", "ceph-mon": "ceph-mon", "KVM": "kvm"}


class RootDeviceHints(BaseModel):
    """Metal3's spec.rootDeviceHints (the keys it accepts, camelCase as on the wire)."""

    model_config = ConfigDict(extra="forbid")

    deviceName: str | None = None  # noqa: N815
    hctl: str | None = None
    model: str | None = None
    vendor: str | None = None
    serialNumber: str | None = None  # noqa: N815
    minSizeGigabytes: int | None = None  # noqa: N815
    wwn: str | None = None
    wwnWithExtension: str | None = None  # noqa: N815
    wwnVendorExtension: str | None = None  # noqa: N815
    rotational: bool | None = None


class Metal3Settings(PrefixGatewaySettings):
    bmc_addresses: dict[str, str] = Field(
        default_factory=dict,
        description="JSON: manufacturer slug -> BMC address template with {ip}; added to the built-in table",
    )
    disable_certificate_verification: bool | None = Field(
        default=None,
        description="spec.bmc.disableCertificateVerification of every BareMetalHost; unset: false for new hosts, "
        "existing hosts keep theirs",
    )
    role_tags: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ROLE_TAGS),
        description="JSON: device tag -> role label value of its BareMetalHost (first match; else the device role)",
    )
    root_device_hints: dict[str, RootDeviceHints] = Field(
        default_factory=dict,
        description='JSON: device-type slug -> rootDeviceHints, e.g. {"r660": {"deviceName": "/dev/sda"}}',
    )

    allowed_netbox_clusters: dict[str, list[str]] = Field(
        default_factory=dict,
        description="JSON: namespace -> NetBox cluster names its Clusters may import (shell patterns such as "
        '"rack-a-*"); the namespace "*" applies to every namespace; empty: any namespace may import any '
        "NetBox cluster",
    )
    network_data: bool = Field(
        default=False, description="Write a networkData Secret (primary IP, netmask, gateway, VLAN) per host"
    )

    @field_validator("bmc_addresses")
    @classmethod
    def _templates_need_ip(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(slug for slug, template in value.items() if "{ip}" not in template)
        if bad:
            raise ValueError(f"templates without {{ip}} for {', '.join(bad)}")
        return value

    def may_import(self, namespace: str, netbox_cluster: str) -> bool:
        if not self.allowed_netbox_clusters:
            return True
        patterns = [*self.allowed_netbox_clusters.get(namespace, ()), *self.allowed_netbox_clusters.get("*", ())]
        return any(fnmatchcase(netbox_cluster, pattern) for pattern in patterns)

    def bmc_address(self, manufacturer_slug: str, ip: str) -> str:
        host = f"[{ip}]" if ":" in ip else ip
        template = {**DEFAULT_BMC_ADDRESSES, **self.bmc_addresses}.get(manufacturer_slug, FALLBACK_BMC_ADDRESS)
        return template.replace("{ip}", host)
