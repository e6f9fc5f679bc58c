"""kopf wiring of argora-update: Update resources in, corrections of NetBox out; nothing else here."""

from __future__ import annotations

from typing import Any

import kopf

from argora_common.kube import SYNC_ANNOTATION, Kube, load_api_client
from argora_common.netbox import NetBox
from argora_common.settings import Settings
from update_controller.reconcile import FIELD_MANAGER, UPDATE, Reconciler

RESOURCE = (UPDATE.group, UPDATE.version, UPDATE.plural)


def register(registry: kopf.OperatorRegistry, settings: Settings, netbox: NetBox) -> None:
    reconciler = Reconciler(netbox, Kube(load_api_client(), FIELD_MANAGER))

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    @kopf.on.update(*RESOURCE, field=("metadata", "annotations", SYNC_ANNOTATION), registry=registry)
    def sync(body: kopf.Body, logger: kopf.Logger, retry: int, **_: Any) -> None:
        reconciler.sync(body, logger, retry=retry)

    @kopf.timer(
        *RESOURCE,
        interval=settings.resync_interval_seconds,
        initial_delay=settings.resync_interval_seconds,
        registry=registry,
    )
    def resync(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconciler.sync(body, logger, wait=False)
