"""kopf wiring of argora-ippool: IPPoolImports in, GlobalInClusterIPPools out; nothing else here."""

from __future__ import annotations

from typing import Any

import kopf

from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.operator import follow_netbox_changes, register_sync, request_pass
from ippool_controller.desired import FIELD_MANAGER
from ippool_controller.reconcile import INTEREST, IPPOOL_IMPORT, Reconciler
from ippool_controller.settings import IPPoolSettings

IPI = (IPPOOL_IMPORT.group, IPPOOL_IMPORT.version, IPPOOL_IMPORT.plural)


def register(registry: kopf.OperatorRegistry, settings: IPPoolSettings, netbox: NetBox) -> None:
    reconciler = Reconciler(settings, netbox, Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight))

    register_sync(registry, IPPOOL_IMPORT, reconciler.passes)
    follow_netbox_changes(
        registry, settings, netbox, INTEREST, reconciler.passes,
        request_pass(reconciler.kube, IPPOOL_IMPORT, reconciler.passes), FIELD_MANAGER,
    )  # fmt: skip

    @kopf.on.delete(*IPI, registry=registry)
    def delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconciler.delete(body, logger)
