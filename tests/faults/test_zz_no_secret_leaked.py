"""Scenario 9: no secret value reaches a log line, an Event, a status or a metric.

Runs last (the file name sorts last): every controller the fault scenarios started had the recognisable
BMC credentials, NetBox tokens, API server token and webhook secret; this looks for each of them in
everything those controllers wrote: their logs, their last metrics, every Event in the cluster, and the
status and annotations of every resource they report on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from argora_dev.faults import TABLE, FaultRow
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import CAPI, IPAM_ADDRESSES
from argora_dev.netbox import NetBoxServer
from tests.faults.conftest import SECRETS, STARTED, metrics_file

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# Our resources (status) and the ones we annotate with what a pass did.
REPORTED_ON = [
    ("argora.cloud.sap", "v1alpha1", "clusterimports"),
    ("argora.cloud.sap", "v1alpha1", "updates"),
    ("argora.cloud.sap", "v1alpha1", "ippoolimports"),
    (*CAPI, "clusters"),
    (*IPAM_ADDRESSES, "ipaddresses"),
]


def secret_values(kube: KubeCluster, netbox: NetBoxServer) -> dict[str, str]:
    """What must never show: name → value. A NetBox v2 token's secret half counts on its own."""
    values = {
        "BMC password": SECRETS.bmc_password,
        "BMC username": SECRETS.bmc_username,
        "webhook secret": SECRETS.webhook_secret,
        "API server token": kube.token,
        "NetBox v1 token": netbox.v1_token,
    }
    for name, token in (("NetBox token", netbox.v2_token), ("NetBox read-only token", netbox.readonly_v2_token)):
        values[name] = token
        values[f"{name} (secret part)"] = token.rpartition(".")[2]
    return {name: value for name, value in values.items() if value}


def written_texts(api: client.ApiClient) -> Iterator[tuple[str, str]]:
    """(where, text) of everything the controllers wrote."""
    for process in STARTED:
        yield f"log of {process.process.log_path.name}", process.log()
        if metrics_file(process).is_file():
            yield f"metrics of {process.process.log_path.name}", metrics_file(process).read_text()
    for event in client.CoreV1Api(api).list_event_for_all_namespaces().items:
        yield f"Event {event.metadata.namespace}/{event.metadata.name}", f"{event.reason} {event.message}"
    custom = client.CustomObjectsApi(api)
    for group, version, plural in REPORTED_ON:
        items: list[dict[str, Any]] = custom.list_cluster_custom_object(group, version, plural)["items"]
        for item in items:
            meta = item["metadata"]
            reported = {"status": item.get("status"), "annotations": meta.get("annotations")}
            yield f"{plural} {meta.get('namespace')}/{meta['name']}", json.dumps(reported)


def test_no_secret_value_in_anything_the_controllers_wrote(
    kube: KubeCluster, netbox: NetBoxServer, api_client: client.ApiClient
) -> None:
    assert STARTED, "no fault scenario ran before the leak check"
    secrets = secret_values(kube, netbox)
    texts = list(written_texts(api_client))
    leaks = [f"{name} in {where}" for where, text in texts for name, value in secrets.items() if value in text]
    TABLE.add(
        FaultRow(
            "9. secrets in logs, Events, status, metrics", "all", len(texts), len(texts) - len(leaks), len(leaks), 0,
            None, 0, f"{len(secrets)} secret values looked for in {len(STARTED)} controllers' output",
        )
    )  # fmt: skip
    assert not leaks, leaks
