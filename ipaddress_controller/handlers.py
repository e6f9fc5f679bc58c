"""kopf wiring of argora-ipaddress: IPAddresses in, NetBox addresses out.

Only raw watch events on IPAddresses: unlike change handlers, timers and daemons they put no finalizer
and no state on them, so this operator being down never blocks an IPAddress's deletion (only the
original operator's finalizer, on the IPAddresses it left, waits for the pass that does its release).
Released addresses are found by the pass itself, over the NetBox addresses it created or adopted.
"""

from __future__ import annotations

import threading
from typing import Any

import kopf

from argora_common.kinds import IPAM_GROUP, ip_address
from argora_common.kube import Kube
from argora_common.netbox import NetBox
from ipaddress_controller.desired import FIELD_MANAGER
from ipaddress_controller.reconcile import WriteBack
from ipaddress_controller.settings import IPAddressSettings

# Cluster API serves IPAddress as v1beta2 since 1.11; older releases only up to v1beta1.
IP_ADDRESS_VERSIONS = ("v1beta2", "v1beta1")


def register(registry: kopf.OperatorRegistry, settings: IPAddressSettings, netbox: NetBox) -> None:
    kube = Kube.connect(FIELD_MANAGER, settings.kube_writes_in_flight)
    version = kube.served_version(IPAM_GROUP, IP_ADDRESS_VERSIONS)
    write_back = WriteBack(settings, netbox, kube, version)
    stop = threading.Event()
    kind = ip_address(version)

    @kopf.on.event(kind.group, kind.version, kind.plural, registry=registry)
    def address_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        write_back.on_event(type, body)

    @kopf.on.startup(registry=registry)
    def start_passes(**_: Any) -> None:
        threading.Thread(target=write_back.loop, args=(stop,), name="argora-ipaddress-passes", daemon=True).start()

    @kopf.on.cleanup(registry=registry)
    def stop_passes(**_: Any) -> None:
        stop.set()
        write_back.changed.set()
