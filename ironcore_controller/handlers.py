"""kopf wiring of argora-ironcore: ClusterImports in, BMCs and BMCSecrets out; nothing else here."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from argora_common.kinds import BMC, BMC_SECRET
from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.operator import follow_netbox_changes, index_written_objects, register_sync, request_pass
from ironcore_controller.desired import FIELD_MANAGER
from ironcore_controller.reconcile import CLUSTER_IMPORT, INTEREST, Reconciler
from ironcore_controller.settings import IroncoreSettings

CI = (CLUSTER_IMPORT.group, CLUSTER_IMPORT.version, CLUSTER_IMPORT.plural)
log = logging.getLogger("argora")


def register(registry: kopf.OperatorRegistry, settings: IroncoreSettings, netbox: NetBox) -> None:
    reconciler = Reconciler(settings, netbox, Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight))

    register_sync(registry, CLUSTER_IMPORT, reconciler.passes)
    # Edited or deleted BMCs and BMCSecrets are put back from the index's watch events: no kopf handler
    # watches them, so none puts a finalizer or state on them, and a stopped operator never blocks their
    # deletion.
    index_written_objects(
        registry, reconciler.kube, (BMC, BMC_SECRET),
        on_event=lambda kind, event_type, body: reconciler.repair(kind, event_type, body, log),
    )  # fmt: skip
    follow_netbox_changes(
        registry, settings, netbox, INTEREST, reconciler.passes,
        request_pass(reconciler.kube, CLUSTER_IMPORT, reconciler.passes), FIELD_MANAGER,
    )  # fmt: skip

    @kopf.on.delete(*CI, registry=registry)
    def delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconciler.delete(body, logger)
