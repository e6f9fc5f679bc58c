"""kopf wiring of argora-ironcore: ClusterImports in, BMCs and BMCSecrets out; nothing else here."""

from __future__ import annotations

from typing import Any

import kopf

from argora_common.kinds import BMC, BMC_SECRET
from argora_common.kube import MANAGED_BY_LABEL, Kube
from argora_common.netbox import NetBox
from argora_common.operator import follow_netbox_changes, index_written_objects, register_sync, request_pass
from ironcore_controller.desired import FIELD_MANAGER
from ironcore_controller.reconcile import CLUSTER_IMPORT, INTEREST, Reconciler
from ironcore_controller.settings import IroncoreSettings

CI = (CLUSTER_IMPORT.group, CLUSTER_IMPORT.version, CLUSTER_IMPORT.plural)
OURS = {MANAGED_BY_LABEL: FIELD_MANAGER}


def register(registry: kopf.OperatorRegistry, settings: IroncoreSettings, netbox: NetBox) -> None:
    reconciler = Reconciler(settings, netbox, Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight))

    register_sync(registry, CLUSTER_IMPORT, reconciler.passes)
    index_written_objects(registry, reconciler.kube, (BMC, BMC_SECRET))
    follow_netbox_changes(
        registry, settings, netbox, INTEREST, reconciler.passes,
        request_pass(reconciler.kube, CLUSTER_IMPORT, reconciler.passes),
    )  # fmt: skip

    @kopf.on.delete(*CI, registry=registry)
    def delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconciler.delete(body, logger)

    # Raw watch events: unlike change handlers they put no finalizer and no state on the objects,
    # so a stopped operator never blocks the deletion of a BMC.
    @kopf.on.event(BMC.group, BMC.version, BMC.plural, labels=OURS, registry=registry)
    def bmc_event(type: str | None, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconciler.repair(BMC, type, body, logger)

    @kopf.on.event(BMC_SECRET.group, BMC_SECRET.version, BMC_SECRET.plural, labels=OURS, registry=registry)
    def bmc_secret_event(type: str | None, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconciler.repair(BMC_SECRET, type, body, logger)
