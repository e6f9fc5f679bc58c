"""kopf wiring of argora-metal3: Cluster API Clusters in, BareMetalHosts and Secrets out.

Only raw watch events on Clusters: unlike change handlers, timers and daemons they put no finalizer on
the Cluster, so this operator being down never blocks a Cluster's deletion. The periodic resync is the
work queue's: each pass queues the Cluster's next.
"""

from __future__ import annotations

from typing import Any

import kopf

from argora_common.kube import SECRET, Kube
from argora_common.netbox import NetBox
from argora_common.runtime import follow_netbox_changes, index_written_objects, work_queue
from metal3_controller.desired import BARE_METAL_HOST, CAPI_CLUSTER, FIELD_MANAGER
from metal3_controller.reconcile import Reconciler, interest
from metal3_controller.settings import Metal3Settings


def register(registry: kopf.OperatorRegistry, settings: Metal3Settings, netbox: NetBox) -> None:
    kube = Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight)
    reconciler = Reconciler(settings, netbox, kube, work_queue(registry, settings, kube.controller))
    index_written_objects(registry, kube, (BARE_METAL_HOST, SECRET), settings.namespaces)
    follow_netbox_changes(registry, settings, netbox, interest(settings), reconciler.passes, FIELD_MANAGER)

    @kopf.on.event(CAPI_CLUSTER.group, CAPI_CLUSTER.version, CAPI_CLUSTER.plural, registry=registry)
    def cluster_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        reconciler.on_event(type, dict(body))
