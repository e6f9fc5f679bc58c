"""The Helm chart as the tests use it: render with the real helm, send what helm install would."""

from __future__ import annotations

import subprocess
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
