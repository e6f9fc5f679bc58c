"""kopf wiring of argora-ipaddress: IPAddresses in, NetBox addresses out.

Only raw watch events on IPAddresses: unlike change handlers, timers and daemons they put no finalizer
and no state on them, so this operator being down never blocks an IPAddress's deletion (only the
original operator's finalizer, on the IPAddresses it left, waits for the pass that does its release).
Released addresses are found by the pass itself, over the NetBox addresses it created or adopted.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from argora_common.apiserver import is_transient
from argora_common.kinds import IPAM_GROUP, ip_address
from argora_common.kube import Kube
from argora_common.netbox import NetBox
from argora_common.runtime import work_queue
from ipaddress_controller.desired import FIELD_MANAGER
from ipaddress_controller.reconcile import Reconciler
from ipaddress_controller.settings import IPAddressSettings

log = logging.getLogger("argora")

# Cluster API serves IPAddress as v1beta2 since 1.11; older releases only up to v1beta1.
IP_ADDRESS_VERSIONS = ("v1beta2", "v1beta1")
# The longest wait between two asks for the served version while the API server does not answer.
MAX_WAIT_SECONDS = 30.0


def served_version(kube: Kube) -> str:
    """The IPAddress version the API server serves. It decides which handlers are registered, so it is
    asked before kopf runs: while the API server does not answer, asked again with a growing wait (kopf
    waits for it the same way in the other controllers) instead of stopping the process."""
    wait = 1.0
    while True:
        try:
            return kube.served_version(IPAM_GROUP, IP_ADDRESS_VERSIONS)
        except (HTTPError, ApiException) as error:
            if isinstance(error, ApiException) and not is_transient(error):
                raise
            reason = f"HTTP {error.status}" if isinstance(error, ApiException) else str(error)
            log.warning("The Kubernetes API server is not reachable yet, asking again in %gs: %s", wait, reason)
        time.sleep(wait)
        wait = min(wait * 2, MAX_WAIT_SECONDS)


def register(registry: kopf.OperatorRegistry, settings: IPAddressSettings, netbox: NetBox) -> None:
    kube = Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight)
    version = served_version(kube)
    reconciler = Reconciler(settings, netbox, kube, version, work_queue(registry, settings, kube.controller))
    kind = ip_address(version)

    @kopf.on.event(kind.group, kind.version, kind.plural, registry=registry)
    def address_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        reconciler.on_event(type, body)

    @kopf.on.startup(registry=registry)
    def first_pass(**_: Any) -> None:
        reconciler.start()
