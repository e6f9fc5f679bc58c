"""kopf wiring of argora-update: Update resources in, corrections of NetBox out; nothing else here."""

from __future__ import annotations

import kopf

from argora_common.backoff import Backoff
from argora_common.kube import Kube, load_api_client
from argora_common.netbox import NetBox
from argora_common.operator import register_sync
from argora_common.settings import Settings
from update_controller.reconcile import FIELD_MANAGER, UPDATE, Reconciler


def register(registry: kopf.OperatorRegistry, settings: Settings, netbox: NetBox) -> None:
    reconciler = Reconciler(netbox, Kube(load_api_client(), FIELD_MANAGER), Backoff.from_settings(settings))
    # Nothing to clean up when an Update goes: what it changed in NetBox stays corrected.
    register_sync(registry, UPDATE, settings.resync_interval_seconds, reconciler.sync, reconciler.backoff)
