"""The test servers start, answer and stop cleanly, leaving no process behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from argora_dev.kube import KubeCluster
from argora_dev.netbox import NetBoxServer
from argora_dev.process import ManagedProcess, http_ok, wait_until

pytestmark = pytest.mark.integration


def process_group_is_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def process_is_dead(pid: int) -> bool:
    """Gone, or a zombie: a killed orphan waits for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


# Forks a child that leaves the process group, as rq's work horses do, prints its pid and sleeps.
_FORKER = """
import os, time
if os.fork() == 0:
    os.setpgrp()
    print(os.getpid(), flush=True)
time.sleep(60)
"""


def test_stop_also_ends_children_that_left_the_process_group(tmp_path: Path) -> None:
    proc = ManagedProcess("forker", [sys.executable, "-c", _FORKER], tmp_path / "forker.log").start()
    wait_until(lambda: proc.log_path.read_text().strip() != "", 10, "forker", proc)
    child = int(proc.log_path.read_text())
    assert os.getpgid(child) != proc.pid
    proc.stop()
    # SIGKILL takes effect once the child is next scheduled, not when kill() returns.
    wait_until(lambda: process_is_dead(child), 5, "the forked child to die")


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
    procs = (netbox._rqworker, netbox._gunicorn, netbox._redis, netbox._postgres)
    pids = [proc.pid for proc in procs if proc is not None]
    assert len(pids) == 4
    assert http_ok(f"{netbox.url}/api/status/", netbox.api_headers(netbox.v2_token))
    netbox.stop()
    assert all(process_group_is_gone(pid) for pid in pids)
