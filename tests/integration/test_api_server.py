"""The real kube-apiserver serves our CRDs and the upstream ones, and its schema guards our specs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration


def served_kinds(api_client: client.ApiClient, group_version: str) -> set[str]:
    resources = api_client.call_api(
        f"/apis/{group_version}",
        "GET",
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    return {resource["kind"] for resource in resources["resources"] if "/" not in resource["name"]}


def test_api_server_reports_its_version(api_client: client.ApiClient) -> None:
    version = client.VersionApi(api_client).get_code()
    assert version.git_version.startswith("v1.35.")


@pytest.mark.parametrize(
    ("group_version", "kinds"),
    [
        ("argora.cloud.sap/v1alpha1", {"ClusterImport", "Update", "IPPoolImport"}),
        ("metal.ironcore.dev/v1alpha1", {"BMC", "BMCSecret", "Server", "ServerClaim"}),
        ("metal3.io/v1alpha1", {"BareMetalHost"}),
        ("cluster.x-k8s.io/v1beta2", {"Cluster"}),
        ("ipam.cluster.x-k8s.io/v1beta2", {"IPAddress", "IPAddressClaim"}),
        ("ipam.cluster.x-k8s.io/v1alpha2", {"GlobalInClusterIPPool"}),
    ],
)
def test_crds_are_served(api_client: client.ApiClient, group_version: str, kinds: set[str]) -> None:
    assert kinds <= served_kinds(api_client, group_version)


def create_cluster_import(api_client: client.ApiClient, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "argora.cloud.sap/v1alpha1",
        "kind": "ClusterImport",
        "metadata": {"name": "import", "namespace": namespace},
        "spec": spec,
    }
    created: dict[str, Any] = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "argora.cloud.sap", "v1alpha1", namespace, "clusterimports", body
    )
    return created


def test_original_argora_cluster_import_is_accepted(api_client: client.ApiClient, namespace: str) -> None:
    spec = {
        "clusters": [{"name": "cc-a1", "region": "qa-de-1", "type": "cc-k8s", "bmcCredentialsRef": {"name": "bmc"}}]
    }
    created = create_cluster_import(api_client, namespace, spec)
    assert created["spec"]["clusters"] == spec["clusters"]
    assert created["spec"]["deletionPolicy"] == "Delete"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.clusters: Required value"),
        ({"clusters": []}, "spec.clusters: Invalid value: 0: spec.clusters in body should have at least 1 items"),
        ({"clusters": [{}]}, "select clusters by at least one of name, region, type, site, tenant, role, tags"),
        ({"clusters": [{"name": "a", "statuses": ["running"]}]}, 'Unsupported value: "running"'),
        ({"clusters": [{"name": "a", "bmcCredentialsRef": {"name": "Not_A_Name"}}]}, "should match"),
        ({"clusters": [{"name": 5}]}, 'spec.clusters[0].name: Invalid value: "integer"'),
    ],
)
def test_malformed_cluster_import_is_rejected_with_a_readable_message(
    api_client: client.ApiClient, namespace: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        create_cluster_import(api_client, namespace, spec)
    assert rejected.value.status == 422
    assert message in json.loads(rejected.value.body)["message"]


def test_status_is_a_subresource(api_client: client.ApiClient, namespace: str) -> None:
    create_cluster_import(api_client, namespace, {"clusters": [{"name": "cc-a1"}]})
    custom = client.CustomObjectsApi(api_client)
    patched = custom.patch_namespaced_custom_object_status(
        "argora.cloud.sap", "v1alpha1", namespace, "clusterimports", "import",
        {"status": {"counts": {"devices": 3}}, "spec": {"clusters": [{"name": "changed"}]}},
    )  # fmt: skip
    assert patched["status"]["counts"]["devices"] == 3
    assert patched["spec"]["clusters"][0]["name"] == "cc-a1"
