"""kopf wiring of argora-ippool: IPPoolImports in, GlobalInClusterIPPools out; nothing else here."""

from __future__ import annotations

import kopf

from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.runtime import sync_own_resource
from ippool_controller.desired import FIELD_MANAGER
from ippool_controller.reconcile import INTEREST, IPPOOL_IMPORT, Reconciler
from ippool_controller.settings import IPPoolSettings


def register(registry: kopf.OperatorRegistry, settings: IPPoolSettings, netbox: NetBox) -> None:
    reconciler = Reconciler(settings, netbox, Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight))
    sync_own_resource(registry, settings, netbox, IPPOOL_IMPORT, reconciler.passes, INTEREST, delete=reconciler.delete)
