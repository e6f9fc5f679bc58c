"""Settings of argora-ippool: the shared ones plus where NetBox prefixes keep their gateway."""

from __future__ import annotations

from argora_common.settings import PrefixGatewaySettings


class IPPoolSettings(PrefixGatewaySettings):
    pass
