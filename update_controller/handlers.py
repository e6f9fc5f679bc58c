"""kopf wiring of argora-update: Update resources in, corrections of NetBox out; nothing else here."""

from __future__ import annotations

import kopf

from argora_common.kube import Kube, load_api_client
from argora_common.netbox import NetBox
from argora_common.operator import register_sync
from argora_common.settings import Settings
from update_controller.reconcile import FIELD_MANAGER, UPDATE, runner


def register(registry: kopf.OperatorRegistry, settings: Settings, netbox: NetBox) -> None:
    # Nothing to clean up when an Update goes: what it changed in NetBox stays corrected.
    register_sync(registry, UPDATE, runner(settings, netbox, Kube(load_api_client(), FIELD_MANAGER)))
