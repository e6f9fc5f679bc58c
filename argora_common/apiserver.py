"""The connection to the Kubernetes API server: the client, with a connection per write in flight, the
wait of the whole process when the API server answers 429, and what its refusals say.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Final

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

# Connections kept open besides those of the writes in flight: reads, watches, status writes.
SPARE_CONNECTIONS: Final = 8


def load_api_client(writes_in_flight: int = 1) -> client.ApiClient:
    """In a Pod the ServiceAccount, elsewhere $KUBECONFIG or ~/.kube/config; with a connection per
    write in flight (urllib3 would otherwise open and close one per request beyond its pool)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = writes_in_flight + SPARE_CONNECTIONS
    return client.ApiClient(configuration)


# 429s in a row after which a request fails (transient: the pass is retried later).
THROTTLE_ATTEMPTS: Final = 6
MAX_RETRY_AFTER_SECONDS: Final = 30.0


class Throttle:
    """When the API server answers 429, every request of the process waits its Retry-After: priority and
    fairness asks the client to slow down, not one thread to retry at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0

    def wait(self) -> None:
        with self._lock:
            delay = self._until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def back_off(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)


def retry_after(error: ApiException, attempt: int) -> float:
    """The server's Retry-After (seconds), or a growing second when it gave none."""
    raw = (error.headers or {}).get("Retry-After", "")
    seconds = float(raw) if str(raw).strip().isdigit() else float(attempt)
    return min(max(seconds, 0.1), MAX_RETRY_AFTER_SECONDS)


def is_transient(error: ApiException) -> bool:
    """Worth retrying later: the API server was unavailable, overloaded or the connection failed."""
    return error.status in {0, 408, 429} or (error.status or 0) >= 500


def api_message(error: ApiException) -> str:
    """The API server's own words for a refusal, for status and Events."""
    try:
        return str(json.loads(error.body).get("message", ""))[:300]
    except (TypeError, ValueError):
        return str(error.reason)
