"""The helm CLI for the chart tests, built from the Go module pinned in hack/helm (hack/helm/build.sh).

Helm is not assumed to be installed: like kube-apiserver and etcd it is built once into the cache
folder, keyed by version, so only the first run pays for the build (about two minutes on two cores
with cold Go caches).
"""

from __future__ import annotations

from pathlib import Path

from argora_dev.kube import go_tool

HELM_VERSION = "v3.19.0"  # keep in step with hack/helm/go.mod and hack/helm/build.sh


def helm_binary() -> Path:
    """The path of the `helm` binary, building it first when it is missing."""
    return go_tool("helm", HELM_VERSION, "helm")
