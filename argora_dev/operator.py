"""Runs an Argora controller the way production does: its console script as a separate process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from argora_dev.kube import KubeCluster
from argora_dev.netbox import NetBoxServer
from argora_dev.process import ManagedProcess, free_port, http_ok, wait_until

BIN_DIR = Path(sys.executable).parent
# The checkout the tests come from: the venv's editable install points at one checkout only, and a
# worktree sharing the venv would otherwise run that checkout's controllers against its own tests.
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def own_namespace(kube: KubeCluster) -> str:
    """A namespace of its own for a controller, as each release of the chart has: its election Lease and
    argora-metal3's claims record live there. Shared by every test, a Lease a stopped controller could not
    release (SIGKILLed on a busy machine) would keep the next test's controller standing by for a lease term."""
    name = f"argora-own-{secrets.token_hex(4)}"
    api = kube.api_client()
    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    finally:
        api.close()
    return name


def operator_environment(kube: KubeCluster, netbox: NetBoxServer, token: str, **extra: str) -> dict[str, str]:
    """What a controller gets in production, pointed at the test servers; passes are requested by the
    tests (sync annotation), so the resync timer is pushed out of their way, and NetBox's change log is
    not followed (the other tests' NetBox writes would start passes): the tests of that turn it on. The
    replicas started with one environment share its own namespace (and elect one of them)."""
    if "ARGORA_OWN_NAMESPACE" not in extra:
        extra = {**extra, "ARGORA_OWN_NAMESPACE": own_namespace(kube)}
    return {
        "KUBECONFIG": str(kube.kubeconfig),
        "ARGORA_NETBOX_URL": netbox.url,
        "ARGORA_NETBOX_TOKEN": token,
        "ARGORA_NETBOX_RETRIES": "2",
        "ARGORA_RESYNC_INTERVAL_SECONDS": "3600",
        "ARGORA_NETBOX_CHANGES_INTERVAL": "0",
        **extra,
    }


class OperatorProcess:
    """One `argora-<name>` process against the test API server and NetBox."""

    def __init__(self, name: str, workdir: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.webhook_url = ""  # where its NetBox webhook is served, when it is
        self.health_port = free_port()
        self.metrics_port = free_port()
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "PYTHONPATH": str(SOURCE_ROOT),
            "ARGORA_HEALTH_PORT": str(self.health_port),
            "ARGORA_METRICS_PORT": str(self.metrics_port),
            "ARGORA_LOG_LEVEL": "DEBUG",
            **env,
        }
        self.process = ManagedProcess(
            f"argora-{name}",
            [str(BIN_DIR / f"argora-{name}")],
            workdir / f"argora-{name}-{self.health_port}.log",
            env=full_env,
        )

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.process.start()
        wait_until(lambda: http_ok(self.health_url), timeout, f"argora-{self.name} health", self.process)
        return self

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def metric(self, sample_name: str, **labels: str) -> float:
        """What /metrics says now: the sum of the samples named `sample_name` whose labels include `labels`."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            text = response.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == sample_name and labels.items() <= sample.labels.items()
        )

    def stop(self) -> None:
        self.process.stop()


def run_console_script(name: str, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`argora-<name> <args>` run to its end with `env` (and PATH, HOME, and PYTHONPATH naming this
    checkout, as OperatorProcess does) only."""
    return subprocess.run(
        [str(BIN_DIR / f"argora-{name}"), *args],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "PYTHONPATH": str(SOURCE_ROOT),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
