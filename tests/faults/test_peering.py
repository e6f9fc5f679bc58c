"""Scenario 6: two argora-ironcore replicas, the active one cut off from the API server.

Each replica reaches the API server through a Toxiproxy proxy of its own; a cut of the active one's proxy
is a network partition of that replica alone, its connections refused or hanging. The standby must take
over the Lease about its duration after the cut (`ARGORA_PEERING_LIFETIME_SECONDS`, 60 by default, as
docs/operations.md documents) and repair what changed meanwhile; the cut replica must write nothing, and no two replicas
may write at the same time, also not when the cut heals. Both replicas write as field manager
argora-ironcore: each one's own `argora_kube_writes_total`, sampled twice a second, tells them apart.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from argora_dev.faults import TABLE, FaultRow, Tally, uids
from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, wait_for
from argora_dev.operator import OperatorProcess
from argora_dev.process import free_port
from argora_dev.toxiproxy import Proxy, Stream, Toxiproxy
from tests.faults.conftest import Inventory

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SCENARIO = "6. two replicas, active one's peering cut"
LIFETIME_SECONDS = 60  # ARGORA_PEERING_LIFETIME_SECONDS's default: the replicas run with it
STREAMS: tuple[Stream, ...] = ("upstream", "downstream")
SAMPLE_SECONDS = 0.5
WINDOW_SECONDS = 1.0  # two replicas writing within one such window count as an overlap
EDITED = 10  # BMCs edited during the cut, for the replica that takes over to put back
LABEL_PREFIX = "kubernetes.metal.cloud.sap"
EDITED_LABEL = f"{LABEL_PREFIX}/device-type"  # every BMC has it


def kubeconfig_through(kube: KubeCluster, address: str, path: Path) -> Path:
    """A copy of the admin kubeconfig whose server is `address` (the API server's certificate names
    127.0.0.1, which the proxy's loopback address matches)."""
    config = yaml.safe_load(kube.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://{address}"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def metrics(replica: OperatorProcess) -> dict[str, float] | None:
    """The replica's writes, passes and standing now; None when it does not answer (exited)."""
    try:
        with urllib.request.urlopen(replica.metrics_url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] += sample.value
    return totals


class WriteLog:
    """Every replica's `argora_kube_writes_total`, sampled in a thread from start to stop."""

    def __init__(self) -> None:
        self.replicas: dict[str, OperatorProcess] = {}
        self.samples: list[tuple[float, str, float]] = []  # (monotonic time, replica, writes so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="write-log", daemon=True)

    def add(self, name: str, replica: OperatorProcess) -> None:
        self.replicas = {**self.replicas, name: replica}

    def start(self) -> WriteLog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            for name, replica in self.replicas.items():
                now = metrics(replica)
                if now is not None:
                    self.samples.append((time.monotonic(), name, now["argora_kube_writes_total"]))

    def writes(self, name: str, since: float = 0.0, until: float = float("inf")) -> float:
        """What `name` wrote between two times, as far as its samples there tell."""
        mine = [(at, total) for at, who, total in self.samples if who == name and since <= at <= until]
        return mine[-1][1] - mine[0][1] if mine else 0.0

    def overlaps(self) -> list[float]:
        """The windows (their start) in which more than one replica wrote."""
        writers: dict[int, set[str]] = defaultdict(set)
        last: dict[str, float] = {}
        for at, who, total in sorted(self.samples):
            if who in last and total > last[who]:
                writers[int(at // WINDOW_SECONDS)].add(who)
            last[who] = total
        return [window * WINDOW_SECONDS for window, names in sorted(writers.items()) if len(names) > 1]


def cut(proxy: Proxy, how: str) -> None:
    """A partition of one replica: its connections refused (the proxy disabled), or hanging (every byte
    dropped both ways, nothing closed: only the client's timeouts end a request)."""
    if how == "refused":
        proxy.set_enabled(False)
        return
    for stream in STREAMS:
        proxy.add_toxic(f"hang-{stream}", "timeout", {"timeout": 0}, stream=stream)


def heal(proxy: Proxy, how: str) -> None:
    if how == "refused":
        proxy.set_enabled(True)
        return
    for stream in STREAMS:
        proxy.remove_toxic(f"hang-{stream}")


def peering_active(replica: OperatorProcess) -> bool | None:
    now = metrics(replica)
    return None if now is None else now.get("argora_peering_active") == 1


@pytest.fixture
def cluster_import(objects: Objects, namespace: str) -> Iterator[str]:
    """The ClusterImport's name; gone after the test, whether a replica still runs to remove kopf's
    finalizer or not: a later scenario's replicas would otherwise import the same devices for it."""
    yield "import"
    if objects.get_import(namespace, "import") is None:
        return
    objects.patch_import(namespace, "import", {"metadata": {"finalizers": None}})
    objects.delete_import(namespace, "import")
    wait_for(lambda: objects.get_import(namespace, "import") is None, 60, "the ClusterImport gone")


@pytest.fixture
def write_log() -> Iterator[WriteLog]:
    log = WriteLog().start()
    yield log
    log.stop()


@pytest.mark.parametrize("how", ["refused", "hanging"])
def test_the_standby_takes_over_from_a_cut_replica_and_never_writes_next_to_it(
    how: str,
    clean_bmcs: None,  # first: its cleanup comes after the replicas stopped, which would put objects back
    kube: KubeCluster,
    toxiproxy: Toxiproxy,
    objects: Objects,
    inventory: Inventory,
    namespace: str,
    credentials_secret: str,
    cluster_import: str,
    start_controller: Callable[..., OperatorProcess],
    write_log: WriteLog,
    tmp_path: Path,
) -> None:
    upstream = kube.server_url.removeprefix("https://")
    proxy_a, proxy_b = (toxiproxy.proxy(f"{namespace}-{name}", upstream) for name in ("a", "b"))
    config_a = kubeconfig_through(kube, proxy_a.address, tmp_path / "kubeconfig-a")
    config_b = kubeconfig_through(kube, proxy_b.address, tmp_path / "kubeconfig-b")
    spec = {"clusters": [{"name": inventory.cluster, "bmcCredentialsRef": {"name": credentials_secret}}]}
    objects.create_import(namespace, cluster_import, spec)

    # Only the API server is cut here: NetBox, slow on a busy machine, gets more than the suite's 10 s.
    # Each replica serves NetBox's webhook on a port of its own, as pods do.
    def env(kubeconfig: Path) -> dict[str, str]:
        return {
            "KUBECONFIG": str(kubeconfig),
            "ARGORA_NETBOX_TIMEOUT_SECONDS": "60",
            "ARGORA_WEBHOOK_PORT": str(free_port()),
        }

    # A starts first and takes the Lease. B, started once A synced, stands by.
    replica_a = start_controller("ironcore", env(config_a))
    write_log.add("A", replica_a)
    objects.synced_import(namespace, cluster_import, timeout=900)
    replica_b = start_controller("ironcore", env(config_b))
    write_log.add("B", replica_b)
    wait_for(lambda: peering_active(replica_a) and peering_active(replica_b) is False, 60, "A active, B standing by")
    time.sleep(5)  # the write log's baseline: A alone active

    expected = {f"bmcs/{name}" for name in inventory.devices} | {f"bmcsecrets/{name}" for name in inventory.devices}
    before = {**prefixed("bmcs", objects), **prefixed("bmcsecrets", objects)}
    assert set(before) == expected

    cut_at = time.monotonic()
    cut(proxy_a, how)
    # Edits during the cut: only a replica that runs passes puts them back.
    edited = sorted(inventory.devices)[:EDITED]
    for name in edited:
        objects.custom.patch_cluster_custom_object(
            "metal.ironcore.dev", "v1alpha1", "bmcs", name, {"metadata": {"labels": {EDITED_LABEL: "edited"}}}
        )

    wait_for(lambda: peering_active(replica_b), LIFETIME_SECONDS + 60, "B taking over")
    takeover = time.monotonic() - cut_at

    def repaired() -> bool:
        bmcs = objects.list_metal("bmcs")
        return all(bmcs[name]["metadata"]["labels"].get(EDITED_LABEL) != "edited" for name in edited)

    wait_for(repaired, 300, "the edited BMCs put back by B")
    converge = time.monotonic() - cut_at
    # A exited before B took over (it could not renew its Lease).
    wait_for(lambda: replica_a.process.poll() is not None, 5, "A exited")
    assert "exiting, to be restarted as a new replica that stands by" in replica_a.log()
    writes_during_cut = int(write_log.writes("A", since=cut_at))

    # The cut heals; Kubernetes restarts A's container: a new replica, which stands by.
    heal(proxy_a, how)
    restarted = start_controller("ironcore", env(config_a))
    write_log.add("A restarted", restarted)
    wait_for(lambda: peering_active(restarted) is False and peering_active(replica_b), 60, "B leading, A standing by")
    # A pass requested now runs in B only.
    passes_before = metrics(restarted) or {}
    objects.synced_import(namespace, cluster_import, after=objects.request_sync(namespace, cluster_import), timeout=300)
    time.sleep(5)
    passes_after = metrics(restarted) or {}
    write_log.stop()

    after = {**prefixed("bmcs", objects), **prefixed("bmcsecrets", objects)}
    tally = Tally(expected, uids(before), after, identity=lambda obj: f"{obj['kind']}/{device_id(obj)}")
    overlaps = write_log.overlaps()
    TABLE.add(
        FaultRow.of(
            f"{SCENARIO} (connections {how})", "argora-ironcore", tally, round(takeover, 1), writes_during_cut,
            f"takeover after {takeover:.0f} s (lifetime {LIFETIME_SECONDS} s), edits put back after "
            f"{converge:.0f} s; overlap windows: {len(overlaps)}",
        )
    )  # fmt: skip
    assert (tally.present, tally.lost, tally.duplicated) == (len(expected), 0, 0)
    assert writes_during_cut == 0
    assert overlaps == [], f"two replicas wrote within {WINDOW_SECONDS} s at {overlaps}"
    assert write_log.writes("B", until=cut_at) == 0, "the standby wrote"
    assert write_log.writes("A restarted") == 0, "the restarted replica wrote"
    assert passes_after.get("argora_reconcile_duration_seconds_count") == passes_before.get(
        "argora_reconcile_duration_seconds_count"
    )


def prefixed(plural: str, objects: Objects) -> dict[str, dict[str, Any]]:
    return {f"{plural}/{name}": obj for name, obj in objects.list_metal(plural).items()}


def device_id(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["labels"][f"{LABEL_PREFIX}/device-id"])
