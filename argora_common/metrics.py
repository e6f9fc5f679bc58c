"""Prometheus metrics shared by the operators; every series carries the controller's name."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

# The `_created` series double what is scraped and say nothing a dashboard here uses.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client ships it unannotated

RECONCILE_SECONDS = Histogram(
    "argora_reconcile_duration_seconds",
    "Time of one reconcile pass of a resource",
    ["controller", "kind"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
NETBOX_REQUESTS = Counter(
    "argora_netbox_requests_total",
    "HTTP requests sent to NetBox, by endpoint, method and status code",
    ["endpoint", "method", "code"],
)
NETBOX_ERRORS = Counter(
    "argora_netbox_errors_total",
    "NetBox calls that failed after retries, by endpoint and kind of failure",
    ["endpoint", "kind"],
)
OBJECTS_WRITTEN = Counter(
    "argora_objects_written_total",
    "Objects created, updated or deleted, in Kubernetes or NetBox",
    ["controller", "kind", "action"],
)
KUBE_WRITES = Counter(
    "argora_kube_writes_total",
    "Writes (POST, PUT, PATCH, DELETE) the API server accepted from this replica's passes, repairs and "
    "requested passes; kopf's own (finalizers, handler state, Events) are not counted",
    ["controller", "method"],
)
PEERING_ACTIVE = Gauge(
    "argora_peering_active",
    "1 while this replica holds its controller's Lease and is the active one, 0 while it stands by (a "
    "standalone one is in no election and reports nothing): the sum over a controller's replicas is 1",
    ["controller"],
)
KUBE_THROTTLED = Counter(
    "argora_kube_throttled_total",
    "Kubernetes requests the API server answered with 429 (priority and fairness): all requests then wait",
    ["controller"],
)
INDEX_FALLBACKS = Counter(
    "argora_watch_index_fallbacks_total",
    "Passes that listed objects from the API server because the watch index could not be trusted yet",
    ["controller", "kind"],
)
NETBOX_CHANGES = Counter(
    "argora_netbox_changes_total",
    "NetBox changes seen, by source (changelog, webhook) and relevance to this controller",
    ["source", "relevance"],
)
NETBOX_CHANGES_FAILURES = Counter(
    "argora_netbox_changes_failures_total",
    "Looks at NetBox's change log that failed, by reason (unavailable, forbidden, unexpected: an answer "
    "that could not be understood, e.g. a proxy's HTML page); until one succeeds, resyncs read NetBox",
    ["controller", "reason"],
)
CHANGE_LOG_READ = Gauge(
    "argora_netbox_change_log_last_read_timestamp_seconds",
    "When NetBox's change log was last read successfully (alert when it falls behind the interval)",
)
WEBHOOK_REQUESTS = Counter(
    "argora_webhook_requests_total",
    "Requests to POST /netbox/webhook, by result (accepted, ignored, unsigned, bad_signature, malformed, "
    "too_large, not_found, no_secret, busy, standby: this replica is not the active one)",
    ["result"],
)

IPADDRESS_STATES = Gauge(
    "argora_ipaddress_addresses",
    "IPAddresses recorded after the last write-back pass, by state (Synced, Pending, Conflict)",
    ["state"],
)
IPADDRESS_RELEASES_HELD = Gauge(
    "argora_ipaddress_releases_held",
    "NetBox addresses the last write-back pass did not release because the release breaker tripped "
    "(alert when above 0)",
)


def serve_metrics(port: int) -> None:
    """Expose /metrics on all interfaces (a Service scrapes it in the cluster)."""
    start_http_server(port)
