"""kopf wiring of argora-update: Update resources in, corrections of NetBox out; nothing else here."""

from __future__ import annotations

import kopf

from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.runtime import sync_own_resource
from argora_common.settings import Settings
from update_controller.reconcile import FIELD_MANAGER, INTEREST, UPDATE, Reconciler


def register(registry: kopf.OperatorRegistry, settings: Settings, netbox: NetBox) -> None:
    reconciler = Reconciler(settings, netbox, Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight))
    # Nothing to clean up when an Update goes: what it changed in NetBox stays corrected. Its own
    # corrections start no pass: the change feed knows them by NetBox's request ids.
    sync_own_resource(registry, settings, netbox, UPDATE, reconciler.passes, INTEREST)
