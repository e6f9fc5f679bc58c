"""Settings of argora-ironcore: the shared ones plus the BMC protocol per manufacturer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from argora_common.settings import Port, Settings


class BMCProtocol(BaseModel):
    """metal-operator's `spec.protocol` of a BMC."""

    name: str = "Redfish"
    port: Port = 443
    # Left out unless set, as the original operator wrote BMCs: metal-operator then uses its default.
    scheme: Literal["http", "https"] | None = None


class IroncoreSettings(Settings):
    bmc_protocols: dict[str, BMCProtocol] = Field(
        default_factory=dict,
        description='JSON: manufacturer slug -> protocol, e.g. {"supermicro": {"name": "IPMI", "port": 623}}',
    )

    def protocol_for(self, manufacturer_slug: str) -> BMCProtocol:
        return self.bmc_protocols.get(manufacturer_slug, BMCProtocol())
