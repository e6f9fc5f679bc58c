"""The helm CLI for the chart tests, built from the Go module pinned in hack/helm (hack/helm/build.sh).

Helm is not assumed to be installed: like kube-apiserver and etcd it is built once into the cache
folder, keyed by version, so only the first run pays for the build (about two minutes on two cores
with cold Go caches).
"""

from __future__ import annotations

from pathlib import Path

from argora_dev import REPO_ROOT

# The build runs as a ManagedProcess through the same helper as the API server's, so a timeout,
# Ctrl-C or `stop_all()` also ends the `go build` it spawned.
from argora_dev.kube import _run_script
from argora_dev.process import cache_dir

HELM_VERSION = "v3.19.0"  # keep in step with hack/helm/go.mod and hack/helm/build.sh


def helm_binary() -> Path:
    """The path of the `helm` binary, building it first when it is missing."""
    binary = cache_dir() / f"helm-{HELM_VERSION}" / "helm"
    if binary.is_file():
        return binary
    folder = Path(_run_script(REPO_ROOT / "hack" / "helm" / "build.sh", "helm-build"))
    binary = folder / "helm"
    if not binary.is_file():
        raise RuntimeError(f"hack/helm/build.sh did not leave a helm binary in {folder}")
    return binary
