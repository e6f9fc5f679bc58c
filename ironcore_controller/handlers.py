"""kopf wiring of argora-ironcore: ClusterImports in, BMCs and BMCSecrets out; nothing else here."""

from __future__ import annotations

import logging

import kopf

from argora_common.kinds import BMC, BMC_SECRET
from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.runtime import index_written_objects, sync_own_resource
from argora_common.watch import QueuedEvents
from ironcore_controller.desired import FIELD_MANAGER
from ironcore_controller.reconcile import CLUSTER_IMPORT, INTEREST, Reconciler
from ironcore_controller.settings import IroncoreSettings

log = logging.getLogger("argora")


def register(registry: kopf.OperatorRegistry, settings: IroncoreSettings, netbox: NetBox) -> None:
    reconciler = Reconciler(settings, netbox, Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight))
    passes = sync_own_resource(
        registry, settings, netbox, CLUSTER_IMPORT, reconciler.passes, INTEREST, delete=reconciler.delete
    )
    # Edited or deleted BMCs and BMCSecrets are put back from the index's watch events: no kopf handler
    # watches them, so none puts a finalizer or state on them, and a stopped operator never blocks their
    # deletion.
    repairs = QueuedEvents(passes.queue, lambda kind, event_type, body: reconciler.repair(kind, event_type, body, log))
    index_written_objects(registry, reconciler.kube, (BMC, BMC_SECRET), events=repairs)
