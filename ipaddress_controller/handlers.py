"""kopf wiring of argora-ipaddress: IPAddresses in, NetBox addresses out; nothing else here."""

from __future__ import annotations

import kopf

from argora_common.netbox import NetBox
from ipaddress_controller.settings import IPAddressSettings


def register(registry: kopf.OperatorRegistry, settings: IPAddressSettings, netbox: NetBox) -> None:
    raise NotImplementedError
