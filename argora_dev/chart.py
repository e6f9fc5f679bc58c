"""The Helm chart as the tests use it: render with the real helm, send what helm install would, and ask
the API server what each ServiceAccount it creates may do."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml
from kubernetes import client

from argora_dev import REPO_ROOT
from argora_dev.helm import helm_binary

CHART = REPO_ROOT / "charts" / "argora"
CONTROLLERS = ("ironcore", "metal3", "update", "ippool", "ipaddress")
BASE_VALUES = ["--set", "netbox.url=https://netbox.example.com"]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=120, check=check)


def render(*args: str, release: str = "argora", namespace: str = "argora-system") -> list[dict[str, Any]]:
    result = helm("template", release, str(CHART), "--namespace", namespace, *BASE_VALUES, *args)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def toggles(enabled: set[str]) -> list[str]:
    return [arg for name in CONTROLLERS for arg in ("--set", f"{name}.enabled={str(name in enabled).lower()}")]


def create_from_manifests(api: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    """What `helm install` would send, sent to the real API server (no kubectl here)."""
    for doc in docs:
        group, _, version = doc["apiVersion"].rpartition("/")
        namespace = doc["metadata"].get("namespace")
        plural = {"ServiceAccount": "serviceaccounts", "Service": "services", "NetworkPolicy": "networkpolicies"}.get(
            doc["kind"], doc["kind"].lower() + "s"
        )
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
        api.call_api(
            path, "POST", body=doc, auth_settings=["BearerToken"], response_type="object", _return_http_data_only=True
        )


# What a ServiceAccount may do, asked of the API server's own authorizer (RBAC on).

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
type Access = tuple[str, str, str]  # (verb, API group, resource or resource/subresource)
# Enough reviews in flight to keep a local API server busy; each is one small POST.
REVIEWS_IN_FLIGHT = 16


def served_accesses(api: client.ApiClient) -> set[Access]:
    """Every verb the API server serves on every resource and subresource, in every version of every
    group (RBAC does not tell versions apart), as discovery lists them: every request one could make. A
    verb a resource does not serve would be a grant that allows nothing; tests/integration/test_chart.py
    checks the rendered rules for those."""

    def get(path: str) -> dict[str, Any]:
        answer: dict[str, Any] = api.call_api(
            path, "GET", auth_settings=["BearerToken"], response_type="object", _return_http_data_only=True
        )
        return answer

    listings = [("", get("/api/v1"))]
    for group in get("/apis")["groups"]:
        listings += [(group["name"], get(f"/apis/{version['groupVersion']}")) for version in group["versions"]]
    return {
        (verb, group, entry["name"])
        for group, listing in listings
        for entry in listing["resources"]
        for verb in entry["verbs"]
    }


def service_account_user(namespace: str, account: str) -> tuple[str, list[str]]:
    """The user and groups the API server gives a ServiceAccount's token."""
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    return f"system:serviceaccount:{namespace}:{account}", groups


class Reviewer:
    """SubjectAccessReviews, many at once, on a client of its own (its connection pool as large as the
    reviews in flight)."""

    def __init__(self, api: client.ApiClient) -> None:
        configuration = copy.copy(api.configuration)
        configuration.connection_pool_maxsize = REVIEWS_IN_FLIGHT
        self.api = client.ApiClient(configuration)

    def allowed(
        self, user: tuple[str, list[str]], namespace: str, accesses: Iterable[Access], name: str = ""
    ) -> set[Access]:
        """Those of `accesses` the user may do in `namespace` ("": in every namespace, and cluster-scoped
        resources) on objects named `name` ("": any)."""
        asked = list(accesses)
        with ThreadPoolExecutor(REVIEWS_IN_FLIGHT) as pool:
            answers = pool.map(lambda access: self._review(user, namespace, access, name), asked)
            return {access for access, allowed in zip(asked, answers, strict=True) if allowed}

    def _review(self, user: tuple[str, list[str]], namespace: str, access: Access, name: str) -> bool:
        verb, group, resource = access
        resource, _, subresource = resource.partition("/")
        attributes = {"verb": verb, "group": group, "resource": resource, "subresource": subresource}
        attributes |= {"namespace": namespace, "name": name}
        response = self.api.call_api(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            "POST",
            body={"spec": {"user": user[0], "groups": user[1], "resourceAttributes": attributes}},
            header_params={"Content-Type": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        allowed: bool = json.loads(response.data)["status"].get("allowed", False)
        return allowed
