"""kopf wiring of argora-metal3: only this controller's handlers are registered here."""

from typing import Any

import kopf

from argora_common.netbox import NetBox


def register(registry: kopf.OperatorRegistry, settings: Any, netbox: NetBox) -> None:
    """No handlers yet: the reconcile logic of this controller lands with its own issue."""
