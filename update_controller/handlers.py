"""kopf wiring of argora-update: Update resources in, corrections of NetBox out; nothing else here."""

from __future__ import annotations

import kopf

from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.operator import follow_netbox_changes, register_sync, request_pass
from argora_common.settings import Settings
from update_controller.reconcile import FIELD_MANAGER, INTEREST, UPDATE, runner


def register(registry: kopf.OperatorRegistry, settings: Settings, netbox: NetBox) -> None:
    kube = Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight)
    passes = runner(settings, netbox, kube)
    # Nothing to clean up when an Update goes: what it changed in NetBox stays corrected.
    register_sync(registry, UPDATE, passes)
    # Its own corrections start no pass: the feed knows them by NetBox's request ids.
    follow_netbox_changes(
        registry, settings, netbox, INTEREST, passes, request_pass(kube, UPDATE, passes), FIELD_MANAGER
    )
