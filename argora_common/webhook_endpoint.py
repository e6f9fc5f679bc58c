"""The webhook Service's one endpoint: the active replica.

A Service selecting every replica would spread NetBox's calls over them, and a standby can do nothing
with a change (its work queue runs nothing, see argora_common.workqueue). So the chart's webhook
Service has no selector, and the active replica writes the Service's EndpointSlice naming itself alone:
when it becomes active, and every ENDPOINT_SECONDS while it is, again if it differs (edited, deleted).
A replica that takes over overwrites the previous one's address; nothing is ever deleted: until the
next replica takes over, NetBox's calls go to the one that left and fail where NetBox logs them.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from kubernetes.client.exceptions import ApiException

from argora_common.apiserver import api_message
from argora_common.crds import GROUP
from argora_common.errors import brief
from argora_common.kube import Kind, Kube, is_subset

log = logging.getLogger("argora.webhook")

ENDPOINT_SLICE: Final = Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", namespaced=True)
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
MANAGED_BY_LABEL: Final = "endpointslice.kubernetes.io/managed-by"
# Any manager but Kubernetes' own (endpointslice-controller.k8s.io): its controller leaves the slice alone.
MANAGER: Final = GROUP
# kube-proxy pairs a slice's port with the Service's port of the same name: the chart's is `webhook`.
PORT_NAME: Final = "webhook"
# How often the active replica looks whether the slice still names it (a GET), and retries a failed write.
ENDPOINT_SECONDS: Final = 10.0
# Each request's bound: the look is done in the webhook server's accepting thread (see WebhookServer).
REQUEST_SECONDS: Final = 5.0


def endpoint_slice(service: str, namespace: str, ip: str, port: int) -> dict[str, Any]:
    """The EndpointSlice of `service` naming `ip`:`port` alone; ValueError when `ip` is no IP address."""
    address = ipaddress.ip_address(ip)
    return {
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: MANAGER},
        },
        "addressType": f"IPv{address.version}",
        "endpoints": [{"addresses": [str(address)], "conditions": {"ready": True}}],
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
    }


class EndpointKeeper:
    """Keeps the slice `desired` naming this replica while `active()` says it is the active one.

    `became(active)` is the peering's observer (argora_common.peering.Lease.observe): it only notes that
    the slice is due, as it is called where nothing may wait; `upkeep()` does the requests, called
    often (the webhook server's loop calls it between connections)."""

    def __init__(self, kube: Kube, desired: dict[str, Any], active: Callable[[], bool]) -> None:
        self.kube = kube
        self.desired = desired
        self._active = active
        self._now = threading.Event()
        self._due = 0.0  # monotonic time of the next look; at once at start (standalone is active already)
        self._failing = False  # the last write or look failed: said once, not every ENDPOINT_SECONDS

    def became(self, active: bool) -> None:
        if active:
            self._now.set()

    def upkeep(self) -> None:
        if not (self._now.is_set() or time.monotonic() >= self._due) or not self._active():
            return
        self._now.clear()
        self._due = time.monotonic() + ENDPOINT_SECONDS
        try:
            written = self.ensure()
        except Exception as error:  # the server's loop must go on: the next look tries again
            if not self._failing:
                log.warning(
                    "could not point Service %s at this replica (%s); trying again every %.0fs",
                    self._name, _described(error), ENDPOINT_SECONDS,
                )  # fmt: skip
            self._failing = True
            return
        if written or self._failing:
            log.info("Service %s points at this replica (%s)", self._name, self._address)
        self._failing = False

    def ensure(self) -> bool:
        """Apply the slice unless it is as desired; whether it was written."""
        metadata = self.desired["metadata"]
        live = self.kube.get(ENDPOINT_SLICE, metadata["name"], metadata["namespace"], timeout=REQUEST_SECONDS)
        if live is not None and is_subset(self.desired, live):
            return False
        self.kube.apply(ENDPOINT_SLICE, self.desired, timeout=REQUEST_SECONDS)
        return True

    @property
    def _name(self) -> str:
        metadata = self.desired["metadata"]
        return f"{metadata['namespace']}/{metadata['name']}"

    @property
    def _address(self) -> str:
        return f"{self.desired['endpoints'][0]['addresses'][0]}:{self.desired['ports'][0]['port']}"


def _described(error: Exception) -> str:
    # The API server's words say which permission or field it refused.
    return f"{brief(error)}: {api_message(error)}" if isinstance(error, ApiException) else brief(error)
