"""kopf wiring of argora-ippool: IPPoolImports in, GlobalInClusterIPPools out; nothing else here."""

from __future__ import annotations

import kopf

from argora_common.netbox import NetBox
from ippool_controller.settings import IPPoolSettings


def register(registry: kopf.OperatorRegistry, settings: IPPoolSettings, netbox: NetBox) -> None:
    raise NotImplementedError
