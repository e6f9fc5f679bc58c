"""kopf wiring of argora-metal3: Cluster API Clusters in, BareMetalHosts and Secrets out.

Only raw watch events on Clusters: unlike change handlers, timers and daemons they put no finalizer on
the Cluster, so this operator being down never blocks a Cluster's deletion. The periodic resync is
our own background thread over the Clusters the events told us about.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf

from argora_common.kube import SECRET, Kube
from argora_common.netbox import NetBox
from argora_common.operator import follow_netbox_changes, index_written_objects, request_pass
from argora_common.peering import LEASE
from metal3_controller.desired import BARE_METAL_HOST, CAPI_CLUSTER, FIELD_MANAGER
from metal3_controller.reconcile import Reconciler, interest
from metal3_controller.settings import Metal3Settings

# How often the resync thread looks for Clusters whose pass is due.
TICK_SECONDS = 2.0

log = logging.getLogger("argora.metal3")


def register(registry: kopf.OperatorRegistry, settings: Metal3Settings, netbox: NetBox) -> None:
    kube = Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight)
    reconciler = Reconciler(settings, netbox, kube)
    index_written_objects(registry, kube, (BARE_METAL_HOST, SECRET), settings.namespaces)
    follow_netbox_changes(
        registry,
        settings,
        netbox,
        interest(settings),
        reconciler.passes,
        request_pass(kube, CAPI_CLUSTER, reconciler.passes),
        FIELD_MANAGER,
    )
    stop = threading.Event()

    @kopf.on.event(CAPI_CLUSTER.group, CAPI_CLUSTER.version, CAPI_CLUSTER.plural, registry=registry)
    def cluster_event(type: str | None, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconciler.on_event(type, body, logger)

    @kopf.on.startup(registry=registry)
    def start_resync(**_: Any) -> None:
        def loop() -> None:
            while not stop.wait(TICK_SECONDS):
                # kopf's pause stops its handlers, not this thread: a standby's passes would write too.
                if not LEASE.active():
                    continue
                try:
                    reconciler.resync_due(log)
                except Exception:
                    # One failing pass must not end the resync of every other Cluster.
                    log.exception("resync pass failed")

        threading.Thread(target=loop, name="argora-metal3-resync", daemon=True).start()

    @kopf.on.cleanup(registry=registry)
    def stop_resync(**_: Any) -> None:
        stop.set()
