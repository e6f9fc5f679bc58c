"""The test servers start, answer and stop cleanly, leaving no process behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from argora_dev.kube import KubeCluster
from argora_dev.netbox import NetBoxServer
from argora_dev.process import http_ok

pytestmark = pytest.mark.integration


def process_group_is_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_api_server_and_etcd_start_and_stop_cleanly(tmp_path: Path) -> None:
    cluster = KubeCluster(tmp_path / "kube")
    cluster.start()
    pids = [proc.pid for proc in (cluster._apiserver, cluster._etcd) if proc is not None]
    assert len(pids) == 2
    assert http_ok(f"{cluster.server_url}/readyz", {"Authorization": f"Bearer {cluster.token}"})
    cluster.stop()
    assert all(process_group_is_gone(pid) for pid in pids)
    cluster.stop()  # twice is harmless


def test_netbox_starts_and_stops_cleanly(tmp_path: Path) -> None:
    netbox = NetBoxServer(tmp_path / "netbox")
    netbox.start()
    pids = [proc.pid for proc in (netbox._gunicorn, netbox._redis, netbox._postgres) if proc is not None]
    assert len(pids) == 3
    assert http_ok(f"{netbox.url}/api/status/", netbox.api_headers(netbox.v2_token))
    netbox.stop()
    assert all(process_group_is_gone(pid) for pid in pids)
