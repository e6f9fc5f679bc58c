"""`make bench [CASES="..."]`: the controllers against real servers and a large NetBox (not part of the tests).

Cases (all when none is named):
- ironcore, metal3: one NetBox cluster of 1,000 devices.
- changes: the time a NetBox change takes to reach a BMC of that import through the change log and
  through NetBox's webhooks, the NetBox requests its pass sends and where the pass's time goes, and NetBox
  requests while nothing changes; changes-scale: the same on one ClusterImport of the 10,000 scale devices.
- ippool: 50 and 500 NetBox prefixes; ipaddress: 50 and 500 IPAddresses written back to NetBox (its
  NetBox reads grow with the id chunks, its writes are one per address and one per primary IP).
- scale: 10,000 devices in 20 NetBox clusters: argora-ironcore with one ClusterImport of them all and with
  20 ClusterImports of 500; argora-metal3 with 20 Clusters of 500 and (as metal3-big alone) with one
  Cluster of 2,000.
- update: argora-update's dry run and real pass over the 10,000 devices, and a pass over 1,000 devices
  that each need a rename, their OOB IP and two VMK interfaces with an IP removed.

Each prints NetBox requests (reads and writes), the first full pass, the pass with nothing to change
(wall time, and the passes' own time by the operator's histogram), objects written, the CPU seconds of
Argora, the API server and NetBox during each, the operator's peak RSS, and the NetBox floor: the same
reads done in this process, the least a pass can take. Cases with one resource also time the next
resync, which plans from the last NetBox read while the change log says nothing changed.

Seeding takes long (1,000 devices minutes, the scale inventory about half an hour), so each seeded
database is dumped once into the cache and restored on later runs; the LAG interfaces argora-ipaddress
needs are added in bulk on each run.

With ARGORA_BENCH_REPORT set to a page (`make bench` sets docs/reports/benchmarks.md), a run that
completes writes its tables into that page's generated sections: the passes and their CPU time
(`bench-passes`, when any pass case ran) and the NetBox changes (`bench-changes`, with the changes case).
A run of some cases replaces a section with those cases' rows alone."""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from argora_common.crds import ClusterSelector
from argora_common.inventory import read_inventory
from argora_common.kube import OWNER_NAMESPACE_LABEL, SYNC_ANNOTATION
from argora_common.netbox import NetBox
from argora_common.settings import Settings
from argora_dev import REPO_ROOT
from argora_dev.kube import KubeCluster, crd_files
from argora_dev.kubeobjects import CAPI, METAL3, Clusters, Machines, Objects, Pools, ipaddress_state, wait_for
from argora_dev.netbox import NETBOX_VERSION, NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.process import cache_dir, stop_all
from argora_dev.reports import (
    BenchRow,
    ChangeFigures,
    PassFigures,
    bench_markdown,
    changes_markdown,
    generated_line,
    machine_facts,
    write_section,
)
from argora_dev.seed import (
    NetBoxSeeder,
    PrefixSeed,
    Topology,
    add_prefixes,
    add_region,
    add_servers,
    fresh_ipv4,
    skip_taken_addresses,
)
from argora_dev.webhooks import CHANGE_PATHS, start_following, stop_following
from ipaddress_controller.settings import IPAddressSettings
from ippool_controller.desired import COMPUTE_TRANSIT_ROLE

DEVICES = 1000
# 50 sites in regions of different sizes, named by add_region (bench-de-1a, ... in bench-de-1).
REGIONS = {"bench-de-1": 5, "bench-de-2": 10, "bench-nl-1": 10, "bench-us-1": 10, "bench-ap-1": 15}
# Each site has one prefix of each role, and the IPPoolImport one selector per role with the role as its
# namePrefix: every prefix gets a pool of its own.
PREFIX_ROLES = (
    "bmc", "kubernetes-nodes", "kubernetes-compute-transit", "storage", "provisioning",
    "management", "vmotion", "backup", "loadbalancer", "services",
)  # fmt: skip
PREFIXES = len(PREFIX_ROLES) * sum(REGIONS.values())
SMALL_REGION = "bench-de-1"
SMALL_PREFIXES = len(PREFIX_ROLES) * REGIONS[SMALL_REGION]
WORKDIR = REPO_ROOT / ".work" / "bench"
SEEDED_DUMP = cache_dir() / f"netbox-{NETBOX_VERSION}" / f"bench-{DEVICES}-devices-{PREFIXES}-prefixes.dump"
CLUSTER_NAME = "bench-cluster"  # Topology("bench").cluster("cluster")


def seed_prefixes(seeder: NetBoxSeeder) -> None:
    """PREFIXES prefixes, one per site and role, each with a VLAN; a quarter scoped to a location of the
    site, the others to the site; the BMC networks with their gateway in the custom field."""
    sites = [site for region, count in REGIONS.items() for site in add_region(seeder, region, count)[1]]
    locations = seeder.create(
        "dcim/locations",
        [{"name": "hall1", "slug": f"{site['slug']}-hall1", "site": site["id"], "status": "active"} for site in sites],
    )
    roles = seeder.create("ipam/roles", [{"name": f"bench-{role}", "slug": f"bench-{role}"} for role in PREFIX_ROLES])
    seeds = [
        PrefixSeed(
            f"10.{100 + r}.{s}.0/24",
            site,
            location=location if (r + s) % 4 == 0 else None,
            role=role,
            # The transit VLANs carry the compute block the pool name is made of.
            vlan=(100 + r, f"{site['slug']}-{'compute1-transit' if COMPUTE_TRANSIT_ROLE in name else name}"),
            gateway=f"10.{100 + r}.{s}.254" if name == "bmc" else None,
        )
        for s, (site, location) in enumerate(zip(sites, locations, strict=True))
        for r, (name, role) in enumerate(zip(PREFIX_ROLES, roles, strict=True))
    ]
    add_prefixes(seeder, seeds)


def restored(dump: Path) -> NetBoxServer:
    netbox = NetBoxServer(WORKDIR / "netbox")
    netbox.start(dump=dump)
    return netbox


def cached(netbox: NetBoxServer, dump: Path) -> NetBoxServer:
    """The seeded NetBox dumped to `dump`, and started again from it: seeding leaves a search-cache job per
    object in NetBox's worker queue (tens of thousands), behind which every webhook would wait."""
    netbox.dump_to(dump)
    netbox.stop()
    return restored(dump)


def netbox_with_inventory() -> NetBoxServer:
    if SEEDED_DUMP.is_file():
        return restored(SEEDED_DUMP)
    netbox = NetBoxServer(WORKDIR / "netbox")
    netbox.start()
    started = time.monotonic()
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    topology = Topology(seeder, "bench")
    cluster = topology.cluster("cluster")
    add_servers(topology, cluster, [f"bench-node{i:04d}" for i in range(DEVICES)])
    seed_prefixes(seeder)
    print(
        f"seeded {DEVICES} devices and {PREFIXES} prefixes in {time.monotonic() - started:.0f}s; caching {SEEDED_DUMP}",
        flush=True,
    )
    return cached(netbox, SEEDED_DUMP)


# The scale case: SCALE_CLUSTERS NetBox clusters of SCALE_DEVICES devices each, and UPDATE_DEVICES devices
# that each need what argora-update corrects (a vendor-named BMC interface and two VMK interfaces with an
# IP each), added to the 1,000-device inventory and cached as a dump of its own (seeding takes about
# half an hour: NetBox creates some 20 devices or 40 interfaces a second here).
SCALE_CLUSTERS = 20
SCALE_DEVICES = 500
UPDATE_DEVICES = 1000
SCALE_DUMP = SEEDED_DUMP.with_name(
    f"bench-{DEVICES}-devices-{PREFIXES}-prefixes-{SCALE_CLUSTERS}x{SCALE_DEVICES}-devices-{UPDATE_DEVICES}-updates.dump"
)
VMK_INTERFACES = ("vmk0", "vmk1")


def scale_cluster_names() -> list[str]:
    return [f"scale-c{number:02d}" for number in range(SCALE_CLUSTERS)]


def seed_scale(netbox: NetBoxServer) -> None:
    """The scale clusters, several at once (each with a seeder of its own), and the update cluster."""
    headers = netbox.api_headers(netbox.v2_token)
    seeder = NetBoxSeeder(netbox.url, headers)
    skip_taken_addresses(seeder)
    topology = Topology(seeder, "scale")
    clusters = [topology.cluster(name.removeprefix("scale-")) for name in scale_cluster_names()]

    def seed_cluster(cluster: dict[str, Any]) -> None:
        own = Topology.existing(NetBoxSeeder(netbox.url, headers), "scale")
        names = [f"{cluster['name']}-n{index:04d}" for index in range(SCALE_DEVICES)]
        # Mostly what NetBox's UI makes; some interfaces with MACs assigned but none primary, as the API
        # and migrations from older NetBox leave them.
        add_servers(own, cluster, names[:-20])
        add_servers(own, cluster, names[-20:-10], mac_shape="assigned")
        add_servers(own, cluster, names[-10:], mac_shape="two-with-primary")
        print(f"seeded {cluster['name']}", flush=True)

    with ThreadPoolExecutor(max_workers=3) as executor:
        list(executor.map(seed_cluster, clusters))
    updates = Topology(seeder, "upd")
    servers = add_servers(
        updates, updates.cluster("cluster"), [f"upd-n{i:04d}" for i in range(UPDATE_DEVICES)],
        set_oob_ip=False, interface_name="iDRAC",
    )  # fmt: skip
    vmks = seeder.create(
        "dcim/interfaces",
        [{"device": s.device["id"], "name": name, "type": "virtual"} for s in servers for name in VMK_INTERFACES],
    )
    seeder.create(
        "ipam/ip-addresses",
        [
            {"address": fresh_ipv4(), "assigned_object_type": "dcim.interface", "assigned_object_id": vmk["id"]}
            for vmk in vmks
        ],
    )


def netbox_at_scale() -> NetBoxServer:
    """NetBox with the 1,000-device inventory and the scale case's, restored from SCALE_DUMP when cached."""
    if SCALE_DUMP.is_file():
        return restored(SCALE_DUMP)
    netbox = netbox_with_inventory()
    started = time.monotonic()
    seed_scale(netbox)
    print(f"seeded the scale case in {time.monotonic() - started:.0f}s; caching {SCALE_DUMP}", flush=True)
    return cached(netbox, SCALE_DUMP)


def ippool_selectors(name_prefix: str, region: str | None = None) -> list[dict[str, str]]:
    """One selector per role, its pools named <name_prefix><role>-..., in `region` only when given."""
    only = {"region": region} if region else {}
    return [{"namePrefix": f"{name_prefix}{role}", "role": f"bench-{role}", **only} for role in PREFIX_ROLES]


REQUESTS = "argora_netbox_requests_total"
PASSES = "argora_reconcile_duration_seconds"


@dataclass(frozen=True)
class Counts:
    """An operator's metrics so far: NetBox requests that read and that write, and objects it wrote."""

    reads: float
    writes: float
    written: float

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.reads - other.reads, self.writes - other.writes, self.written - other.written)


CHANGE_LOG = "core/object-changes"  # the change log's looks run on their own clock: not part of a pass


def counts(operator: OperatorProcess) -> Counts:
    gets = operator.metric(REQUESTS, method="GET")
    writes = operator.metric(REQUESTS) - gets
    reads = gets - operator.metric(REQUESTS, method="GET", endpoint=CHANGE_LOG)
    return Counts(reads, writes, operator.metric("argora_objects_written_total"))


# Which part of the stack each process belongs to, by its command name (the operator by its pid).
PARTS = {"kube-apiserver": "API server", "etcd": "API server", "gunicorn": "NetBox", "postgres": "NetBox",
         "redis-server": "NetBox", "netbox": "NetBox"}  # fmt: skip


def cpu_seconds(operator_pid: int) -> dict[str, float]:
    """CPU seconds used so far by each part of the stack: its live processes and the children they reaped
    (PostgreSQL's backends)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = defaultdict(float)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        command, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        part = "Argora" if int(stat.parent.name) == operator_pid else PARTS.get(command)
        if part is not None:
            used[part] += sum(int(value) for value in fields[11:15]) / ticks  # utime, stime, cutime, cstime
    return dict(used)


def cpu_used(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {part: seconds - before.get(part, 0.0) for part, seconds in now.items()}


@dataclass(frozen=True)
class Pass:
    seconds: float
    counts: Counts
    busy: float = float("nan")  # seconds the operator's passes took by its own histogram
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds each part of the stack used meanwhile

    def __sub__(self, other: Pass) -> Pass:
        cpu = cpu_used(self.cpu, other.cpu)
        return Pass(self.seconds - other.seconds, self.counts - other.counts, self.busy - other.busy, cpu)

    def line(self) -> str:
        c = self.counts
        busy = "" if self.busy != self.busy else f" (passes {self.busy:.1f} s)"
        cpu = ", ".join(f"{part} {self.cpu.get(part, 0.0):.1f} s" for part in ("Argora", "API server", "NetBox"))
        return (
            f"{self.seconds:.1f} s{busy}, {c.reads + c.writes:.0f} NetBox requests ({c.reads:.0f} reads,"
            f" {c.writes:.0f} writes), {c.written:.0f} objects written" + (f"; CPU: {cpu}" if self.cpu else "")
        )


@dataclass
class Clock:
    """Takes the operator's figures at the start of a pass and turns them into a Pass at its end."""

    operator: OperatorProcess
    started: float = 0.0
    counts: Counts = Counts(0, 0, 0)
    busy: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def start(self) -> Clock:
        self.started, self.counts = time.monotonic(), counts(self.operator)
        self.busy, self.cpu = self.operator.metric(f"{PASSES}_sum"), cpu_seconds(self.operator.process.pid)
        return self

    def stop(self, waited: float = 0.0) -> Pass:
        """`waited`: seconds of the wall time that were no pass (waiting for lastSyncTime to tick)."""
        return Pass(
            time.monotonic() - self.started - waited,
            counts(self.operator) - self.counts,
            self.operator.metric(f"{PASSES}_sum") - self.busy,
            cpu_used(cpu_seconds(self.operator.process.pid), self.cpu),
        )


def pass_figures(measured: Pass) -> PassFigures:
    c = measured.counts
    return PassFigures(measured.seconds, round(c.reads), round(c.writes), round(c.written), dict(measured.cpu))


# What the run measured, for the report page (ARGORA_BENCH_REPORT).
PASS_ROWS: list[BenchRow] = []
CHANGES: dict[str, ChangeFigures] = {}


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


# With NetBox's change log followed (as by default in production), a resync while nothing changed plans
# from the last NetBox reads; the bench waits for one such pass after the requested ones.
RESYNC_SECONDS = 60


def operator_env(kube: KubeCluster, netbox: NetBoxServer) -> dict[str, str]:
    return operator_environment(
        kube, netbox, netbox.readonly_v2_token, ARGORA_LOG_LEVEL="INFO", ARGORA_DEFAULT_BMC_CREDENTIALS="bench/bmc",
        ARGORA_NETBOX_CHANGES_INTERVAL="10", ARGORA_RESYNC_INTERVAL_SECONDS=str(RESYNC_SECONDS),
    )  # fmt: skip


def show(name: str, summary: str, first: Pass, again: Pass) -> None:
    print(f"{name}: {summary}")
    print(f"  first full pass: {first.line()}")
    print(f"  no-change pass:  {again.line()}", flush=True)


def next_resync(operator: OperatorProcess) -> Pass:
    """The next pass that nobody asked for: the resync timer's, which reuses the last NetBox reads."""
    done = operator.metric(f"{PASSES}_count")
    clock = Clock(operator).start()
    wait_for(lambda: operator.metric(f"{PASSES}_count") > done or None, 3 * RESYNC_SECONDS, "a resync")
    resync = clock.stop()
    return Pass(resync.busy, resync.counts, resync.busy, resync.cpu)


def measure(
    name: str,
    operator: OperatorProcess,
    first: Callable[[], str],
    again: Callable[[], str],
    floor: str = "",
    *,
    resync: bool = False,
) -> None:
    """Time a first full pass and a pass with nothing to change; count NetBox requests and writes, and the
    CPU time of each part of the stack. The wall time of the pass with nothing to change leaves out the
    second the sync request waits first (lastSyncTime's resolution); `floor`, when given, says what reading
    NetBox alone takes; `resync`: also the next resync of the one resource (timed by the histogram)."""
    clock = Clock(operator).start()
    summary = first()
    first_pass = clock.stop()
    clock.start()
    again()
    no_change = clock.stop(waited=SYNC_REQUEST_WAIT)
    show(name, summary, first_pass, no_change)
    resynced = next_resync(operator) if resync else None
    if resynced:
        print(f"  resync, NetBox unchanged (reads reused): {resynced.line()}")
    rss = peak_rss_mb(operator.process.pid)
    print(f"  peak RSS:        {rss:.0f} MB", flush=True)
    if floor:
        print(f"  NetBox floor:    {floor}", flush=True)
    resync_figures = pass_figures(resynced) if resynced else None
    PASS_ROWS.append(BenchRow(name, pass_figures(first_pass), pass_figures(no_change), resync_figures, rss, floor))


SYNC_REQUEST_WAIT = 1.05  # Objects.request_sync and Clusters.resync wait this long before asking


# argora-ipaddress: SMALL_IPADDRESSES first, then IPADDRESSES, each on machines of their own.
IPADDRESSES = 500
# At most the operator's default cap of deletes per pass: one pass releases them all.
SMALL_IPADDRESSES = 50
NODE_ROLE = "bench-kubernetes-nodes"  # the role of argora-ippool's pools the IPAddresses come from
LAGS = ("LAG1", "LAG2")  # on each device: the address goes on LAG2
LABEL_PREFIX = Settings.model_fields["label_prefix"].default
CREATED_TAG = IPAddressSettings.model_fields["created_tag"].default


@dataclass(frozen=True)
class MachineSeed:
    """One machine's chain below its BMC: the Server, ServerClaim, IPAddressClaim and IPAddress are all
    named like the BMC."""

    bmc: str
    pool: str
    address: str
    prefix: int


def ironcore_bmcs(objects: Objects) -> list[tuple[str, int]]:
    """The BMCs argora-ironcore made above, one per device: (name, NetBox device id), by name."""
    bmcs = objects.owned("bmcs", "bench", "bench")
    return [(name, int(bmc["metadata"]["labels"][f"{LABEL_PREFIX}/device-id"])) for name, bmc in sorted(bmcs.items())]


def node_pools(pools: Pools) -> list[tuple[ipaddress.IPv4Network, str]]:
    """The pools argora-ippool made above for the node networks, one per site: (network, pool name)."""
    return sorted(
        (ipaddress.IPv4Network(pool["spec"]["addresses"][0]), name)
        for name, pool in pools.owned("bench", "all").items()
        if pool["metadata"]["labels"].get(f"{LABEL_PREFIX}/role") == NODE_ROLE
    )


def spread(
    bmcs: Sequence[tuple[str, int]], pools: Sequence[tuple[ipaddress.IPv4Network, str]], first_host: int
) -> list[MachineSeed]:
    """A machine per BMC, taking the pools in turn: the n-th address of a pool is its host `first_host` + n."""
    return [
        MachineSeed(bmc, pool, str(network.network_address + first_host + index // len(pools)), network.prefixlen)
        for index, ((bmc, _), (network, pool)) in enumerate(zip(bmcs, itertools.cycle(pools)))
    ]


def add_lags(seeder: NetBoxSeeder, device_ids: Sequence[int]) -> None:
    started = time.monotonic()
    seeder.create(
        "dcim/interfaces", [{"device": device, "name": name, "type": "lag"} for device in device_ids for name in LAGS]
    )
    print(f"gave {len(device_ids)} devices {' and '.join(LAGS)} in {time.monotonic() - started:.0f}s", flush=True)


def add_machines(machines: Machines, seeds: Sequence[MachineSeed]) -> None:
    """The chains, several at once: each is four requests to the local API server, one after the other."""
    started = time.monotonic()

    def add(seed: MachineSeed) -> None:
        machines.machine("bench", seed.bmc, seed.bmc, seed.pool, seed.address, seed.prefix)

    with ThreadPoolExecutor(max_workers=8) as executor:
        list(executor.map(add, seeds))
    print(
        f"created {len(seeds)} Servers, ServerClaims, IPAddressClaims and IPAddresses"
        f" in {time.monotonic() - started:.0f}s",
        flush=True,
    )


def passes_done(operator: OperatorProcess, count: int) -> Pass:
    """Once argora-ipaddress has completed `count` passes: their time (its own histogram) and counts."""
    wait_for(lambda: operator.metric(f"{PASSES}_count") >= count, timeout=1800, what=f"pass {count} done")
    figures = counts(operator)
    return Pass(operator.metric(f"{PASSES}_sum"), figures)


def resource_versions(machines: Machines) -> dict[str, str]:
    return {item["metadata"]["name"]: item["metadata"]["resourceVersion"] for item in machines.list_addresses("bench")}


def measure_ipaddress(
    name: str, env: dict[str, str], machines: Machines, expected: int
) -> tuple[OperatorProcess, Counts]:
    """argora-ipaddress started on `expected` IPAddresses NetBox does not have: its first pass, over them
    all, and a later one with nothing to change. Returns the operator, still running, and the first
    pass's counts."""
    started = time.monotonic()
    # Each case ends by releasing all of its addresses at once, on purpose: the breaker would hold them.
    operator = OperatorProcess("ipaddress", WORKDIR, {**env, "ARGORA_RELEASE_BREAKER_PERCENT": "100"}).start()
    # Before its passes, each controller asks NetBox once for its status.
    status_check = Pass(0.0, Counts(operator.metric(REQUESTS, endpoint="status"), 0.0, 0.0))
    # The watch's first listing of the IPAddresses asks for a second pass, which starts DEBOUNCE_SECONDS
    # after the first ended: the metrics read at once are still the first pass's alone.
    after_first = passes_done(operator, 1)
    since_start = time.monotonic() - started
    first = after_first - status_check
    states = Counter(ipaddress_state(address) for address in machines.list_addresses("bench"))
    if states != {"Synced": expected}:
        raise RuntimeError(f"{name}: after the first pass {dict(states)}, not {expected} Synced")
    created = operator.metric("argora_objects_written_total", kind="IPAddress", action="create")
    primaries = operator.metric("argora_objects_written_total", kind="Device", action="update")
    # The watch's first listing of the IPAddresses asks for a second pass right after the first: the third,
    # a resync, is measured as the pass with nothing to change.
    after_second = passes_done(operator, 2)
    versions = resource_versions(machines)
    again = passes_done(operator, 3) - after_second
    patched = sum(1 for key, version in resource_versions(machines).items() if versions.get(key) != version)
    summary = (
        f"{expected} IPAddresses Synced {since_start:.1f} s after the operator's start;"
        f" {created:.0f} addresses created, {primaries:.0f} primary IPs set; {patched} IPAddresses patched"
        " by the no-change pass"
    )
    show(name, summary, first, again)
    rss = peak_rss_mb(operator.process.pid)
    print(f"  peak RSS:        {rss:.0f} MB", flush=True)
    PASS_ROWS.append(BenchRow(name, pass_figures(first), pass_figures(again), None, rss))
    return operator, first.counts


def release(operator: OperatorProcess, machines: Machines, seeder: NetBoxSeeder, seeds: Sequence[MachineSeed]) -> None:
    """Delete the IPAddresses and stop `operator` once it deleted their NetBox addresses: the next case
    starts on a NetBox without addresses of argora-ipaddress's."""
    for seed in seeds:
        machines.delete_address("bench", seed.bmc)
    wait_for(
        lambda: not seeder.get("ipam/ip-addresses", tag=CREATED_TAG), timeout=300, what="released addresses deleted"
    )
    operator.stop()


def bench_ipaddress(kube: KubeCluster, netbox: NetBoxServer, objects: Objects, env: dict[str, str]) -> None:
    """argora-ipaddress on the BMCs argora-ironcore made and the pools argora-ippool made before."""
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    machines = Machines(kube.api_client())
    bmcs = ironcore_bmcs(objects)[: IPADDRESSES + SMALL_IPADDRESSES]
    add_lags(seeder, [device for _, device in bmcs])
    networks = node_pools(Pools(kube.api_client()))
    # The resync that makes the third pass: soon, yet late enough that the operator has handled the watch
    # events of the second pass's annotation writes, which would slow the third down.
    ipaddress_env = {**env, "ARGORA_NETBOX_TOKEN": netbox.v2_token, "ARGORA_RESYNC_INTERVAL_SECONDS": "30"}
    small_machines = spread(bmcs[IPADDRESSES:], networks, first_host=200)
    add_machines(machines, small_machines)
    operator, small = measure_ipaddress(
        f"argora-ipaddress, {SMALL_IPADDRESSES} IPAddresses", ipaddress_env, machines, SMALL_IPADDRESSES
    )
    release(operator, machines, seeder, small_machines)
    add_machines(machines, spread(bmcs[:IPADDRESSES], networks, first_host=10))
    operator, large = measure_ipaddress(
        f"argora-ipaddress, {IPADDRESSES} IPAddresses", ipaddress_env, machines, IPADDRESSES
    )
    operator.stop()
    print(
        f"argora-ipaddress: NetBox reads of a first pass, {small.reads:.0f} for {SMALL_IPADDRESSES} IPAddresses"
        f" and {large.reads:.0f} for {IPADDRESSES}",
        flush=True,
    )


# argora-ironcore following NetBox's changes on the imported 1,000 devices: idle requests over this long.
IDLE_SECONDS = 60.0
CHANGES_INTERVAL = 10  # the default ARGORA_NETBOX_CHANGES_INTERVAL


@dataclass(frozen=True)
class Timed:
    """One NetBox change: seconds from the end of its write until Kubernetes showed it, the NetBox requests
    the operator sent meanwhile, and the step times of the last pass it logged."""

    what: str
    seconds: float
    requests: int
    steps: str


# The step times of a pass's log line: "… synced (delta: 1 NetBox changes re-read) in 0.31 s (read 0.12, …):"
PASS_TIMES = re.compile(r" synced(?P<how> \([^)]*\))? in (?P<times>[\d.]+ s \([^)]*\))")


def timed(operator: OperatorProcess, what: str, change: Callable[[], object], seen: Callable[[], object]) -> Timed:
    before, log_length = counts(operator), len(operator.log())
    change()
    started = time.monotonic()
    wait_for(seen, timeout=120, what=what)
    seconds = time.monotonic() - started
    used = counts(operator) - before
    # The pass logs its line after its report, a moment after Kubernetes shows what it wrote.
    passes = wait_for(lambda: list(PASS_TIMES.finditer(operator.log()[log_length:])), 30, f"the pass of {what}")
    steps = f"{passes[-1]['times']}{passes[-1]['how'] or ' (full read)'}"
    return Timed(what, seconds, round(used.reads + used.writes), steps)


# The changes timed, as the report's rows name them.
DNS_NAME_CHANGE = "the OOB IP's DNS name → the BMC's `spec.hostname`"
OFFLINE_CHANGE = "a device set `offline` → its BMC and BMCSecret deleted"
NEW_DEVICE_CHANGE = "a new device (its last write, the OOB IP) → its BMC"


@dataclass(frozen=True)
class ChangedImport:
    """The ClusterImport whose devices the changes case edits, and how its devices are named."""

    size: str  # for the report's columns
    namespace: str
    name: str
    topology: str  # the Topology prefix of its devices
    cluster: str  # the NetBox cluster new devices join
    device: Callable[[int], str]  # the name of its index-th device


BENCH_IMPORT = ChangedImport(f"{DEVICES:,}", "bench", "bench", "bench", CLUSTER_NAME, lambda i: f"bench-node{i:04d}")
SCALE_IMPORT = ChangedImport(
    f"{SCALE_CLUSTERS * SCALE_DEVICES:,}",
    "scale",
    "scale-changes",
    "scale",
    "scale-c00",
    lambda i: f"scale-c00-n{i:04d}",
)


def bench_changes(kube: KubeCluster, netbox: NetBoxServer, objects: Objects, changed: ChangedImport) -> None:
    """The time a NetBox change takes to reach the BMCs of the import, through the change log (looked at
    every CHANGES_INTERVAL s) and through NetBox's webhooks, and NetBox requests while nothing changes."""
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    skip_taken_addresses(seeder)
    for number, path in enumerate(CHANGE_PATHS, start=1):
        operator = start_following(
            "ironcore", path, kube, netbox, netbox.readonly_v2_token, WORKDIR, interval=str(CHANGES_INTERVAL),
            ARGORA_LOG_LEVEL="INFO", ARGORA_DEFAULT_BMC_CREDENTIALS="bench/bmc",
        )  # fmt: skip
        measure_changes(path, number, operator, seeder, objects, changed)
        stop_following(operator, netbox)


def measure_changes(
    path: str, number: int, operator: OperatorProcess, seeder: NetBoxSeeder, objects: Objects, changed: ChangedImport
) -> None:
    objects.resync(changed.namespace, changed.name)
    time.sleep(2 * CHANGES_INTERVAL)  # the start's passes and looks are over
    before = counts(operator)
    time.sleep(IDLE_SECONDS)
    idle = counts(operator) - before
    first, second = (seeder.get("dcim/devices", name=changed.device(10 * number + i))[0] for i in (0, 1))
    hostname = f"{first['name']}-{number}.changed.example.com"
    timings = [
        timed(
            operator,
            DNS_NAME_CHANGE,
            lambda: seeder.update("ipam/ip-addresses", first["oob_ip"]["id"], dns_name=hostname),
            lambda: (objects.get_metal("bmcs", first["name"]) or {}).get("spec", {}).get("hostname") == hostname,
        ),
        timed(
            operator,
            OFFLINE_CHANGE,
            lambda: seeder.update("dcim/devices", second["id"], status="offline"),
            lambda: objects.get_metal("bmcs", second["name"]) is None,
        ),
    ]
    # A new server is five NetBox writes (device, interface, address, MAC, OOB IP): timed from the last.
    new_name = f"{changed.topology}-new{number}"
    (cluster,) = seeder.get("virtualization/clusters", name=changed.cluster)
    timings.append(
        timed(
            operator,
            NEW_DEVICE_CHANGE,
            lambda: add_servers(Topology.existing(seeder, changed.topology), cluster, [new_name]),
            lambda: objects.get_metal("bmcs", new_name),
        )
    )
    print(f"argora-ironcore, {changed.size} devices, NetBox changes by {path}:", flush=True)
    for timing in timings:
        print(f"  {timing.what}: {timing.seconds:.1f} s, {timing.requests} NetBox requests; pass {timing.steps}")
    CHANGES[f"{path}@{changed.size}"] = ChangeFigures(
        {timing.what: timing.seconds for timing in timings},
        round(idle.reads + idle.writes),
        IDLE_SECONDS,
        {timing.what: timing.requests for timing in timings},
        {timing.what: timing.steps for timing in timings},
    )
    print(
        f"  idle {IDLE_SECONDS:.0f} s: {idle.reads + idle.writes:.0f} NetBox requests, {idle.written:.0f} objects"
        f" written; peak RSS {peak_rss_mb(operator.process.pid):.0f} MB",
        flush=True,
    )


def bench_changes_at_scale(kube: KubeCluster, netbox: NetBoxServer, objects: Objects) -> None:
    """The changes case on one ClusterImport of all 10,000 scale devices."""
    ironcore = OperatorProcess("ironcore", WORKDIR, operator_env(kube, netbox)).start()
    clusters = [{"name": name} for name in scale_cluster_names()]
    objects.create_import(SCALE_IMPORT.namespace, SCALE_IMPORT.name, {"clusters": clusters})
    objects.synced_import(SCALE_IMPORT.namespace, SCALE_IMPORT.name, timeout=1800)
    ironcore.stop()
    bench_changes(kube, netbox, objects, SCALE_IMPORT)


SCALE_NAMESPACE = "scale"


def netbox_floor(netbox: NetBoxServer, clusters: Sequence[str]) -> str:
    """What reading the inventory of `clusters` takes with the controllers' own reads, in this process:
    the least any pass over them can take."""
    client = NetBox(Settings(netbox_url=netbox.url, netbox_token=netbox.readonly_v2_token))
    selectors = [ClusterSelector.model_validate({"name": name}) for name in clusters]
    started = time.monotonic()
    inventory = read_inventory(client, selectors, ("active",))
    return (
        f"{len(inventory.devices)} devices read in {time.monotonic() - started:.1f} s"
        f" with {client.request_count} requests ({client.reads_in_flight} at once)"
    )


def sync_all(objects: Objects, names: Sequence[str], kind: str) -> None:
    """Ask for a pass of every resource at once and wait until each has one newer than before."""
    previous = {name: str(((objects.get_import(SCALE_NAMESPACE, name, kind) or {}).get("status") or {}).get(
        "lastSyncTime") or "") for name in names}  # fmt: skip
    time.sleep(SYNC_REQUEST_WAIT)
    for name in names:
        annotation = {"metadata": {"annotations": {SYNC_ANNOTATION: f"bench-{time.time_ns()}"}}}
        objects.patch_import(SCALE_NAMESPACE, name, annotation, kind)
    for name in names:
        objects.synced_import(SCALE_NAMESPACE, name, after=previous[name], timeout=900, kind=kind)


def total_counts(objects: Objects, names: Sequence[str], kind: str = "ClusterImport") -> str:
    totals: Counter[str] = Counter()
    for name in names:
        totals.update((objects.get_import(SCALE_NAMESPACE, name, kind) or {}).get("status", {}).get("counts", {}))
    return json.dumps(dict(totals))


def clear_ironcore(kube: KubeCluster, objects: Objects, operator: OperatorProcess, names: Sequence[str]) -> None:
    """Remove the imports (orphaning their objects, at once) and then their BMCs and BMCSecrets in one request
    per kind (those of the 1,000-device import stay): the next case starts where this one did."""
    for name in names:
        objects.patch_import(SCALE_NAMESPACE, name, {"spec": {"deletionPolicy": "Orphan"}})
        objects.delete_import(SCALE_NAMESPACE, name)
    wait_for(lambda: all(objects.get_import(SCALE_NAMESPACE, n) is None for n in names) or None, 300, "imports gone")
    operator.stop()
    custom = client.CustomObjectsApi(kube.api_client())
    for plural in ("bmcs", "bmcsecrets"):
        custom.delete_collection_cluster_custom_object(
            "metal.ironcore.dev", "v1alpha1", plural, label_selector=f"{OWNER_NAMESPACE_LABEL}={SCALE_NAMESPACE}"
        )


def bench_scale_ironcore(kube: KubeCluster, netbox: NetBoxServer, objects: Objects, env: dict[str, str]) -> None:
    names = scale_cluster_names()
    operator = OperatorProcess("ironcore", WORKDIR, env).start()

    def first() -> str:
        objects.create_import(SCALE_NAMESPACE, "scale", {"clusters": [{"name": name} for name in names]})
        return json.dumps(objects.synced_import(SCALE_NAMESPACE, "scale", timeout=900)["status"]["counts"])

    def again() -> str:
        sync_all(objects, ["scale"], "ClusterImport")
        return ""

    total = SCALE_CLUSTERS * SCALE_DEVICES
    measure(f"argora-ironcore, {total:,} devices in {SCALE_CLUSTERS} clusters, one ClusterImport", operator, first,
            again, netbox_floor(netbox, names), resync=True)  # fmt: skip
    clear_ironcore(kube, objects, operator, ["scale"])

    operator = OperatorProcess("ironcore", WORKDIR, env).start()

    def first_of_all() -> str:
        for name in names:
            objects.create_import(SCALE_NAMESPACE, name, {"clusters": [{"name": name}]})
        for name in names:
            objects.synced_import(SCALE_NAMESPACE, name, timeout=900)
        return total_counts(objects, names)

    def all_again() -> str:
        sync_all(objects, names, "ClusterImport")
        return ""

    measure(f"argora-ironcore, {SCALE_CLUSTERS} ClusterImports of {SCALE_DEVICES} devices", operator, first_of_all,
            all_again, netbox_floor(netbox, names[:1]) + " (one of them)")  # fmt: skip
    clear_ironcore(kube, objects, operator, names)


def bench_scale_metal3(kube: KubeCluster, netbox: NetBoxServer, clusters: Clusters, env: dict[str, str]) -> None:
    names = scale_cluster_names()
    operator = OperatorProcess("metal3", WORKDIR, env).start()

    def synced_all(after: dict[str, str]) -> str:
        totals: Counter[str] = Counter()
        for name in names:
            totals.update(clusters.synced(SCALE_NAMESPACE, name, after=after.get(name, ""), timeout=900)["counts"])
        return json.dumps(dict(totals))

    def first() -> str:
        for name in names:
            clusters.create(SCALE_NAMESPACE, name, annotations={"argora.cloud.sap/netbox-cluster": name})
        return synced_all({})

    def again() -> str:
        previous = {n: (clusters.sync_status(SCALE_NAMESPACE, n) or {}).get("lastSyncTime", "") for n in names}
        time.sleep(SYNC_REQUEST_WAIT)
        for name in names:
            clusters.patch(
                SCALE_NAMESPACE, name, {"metadata": {"annotations": {SYNC_ANNOTATION: f"b{time.time_ns()}"}}}
            )
        return synced_all(previous)

    measure(f"argora-metal3, {SCALE_CLUSTERS} Clusters of {SCALE_DEVICES} hosts", operator, first, again,
            netbox_floor(netbox, names[:1]) + " (one of them)")  # fmt: skip
    operator.stop()
    for name in names:
        clusters.custom.delete_namespaced_custom_object(*CAPI, SCALE_NAMESPACE, "clusters", name)
    clusters.custom.delete_collection_namespaced_custom_object(*METAL3, SCALE_NAMESPACE, "baremetalhosts")
    clusters.core.delete_collection_namespaced_secret(SCALE_NAMESPACE, label_selector="app.kubernetes.io/managed-by")


def bench_big_metal3(netbox: NetBoxServer, clusters: Clusters, env: dict[str, str]) -> None:
    """One Cluster of BIG_CLUSTER hosts: the devices of the next scale clusters move into the first."""
    names = scale_cluster_names()
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    (target,) = seeder.get("virtualization/clusters", name=names[0])
    moved = [
        {"id": device["id"], "cluster": target["id"]}
        for name in names[1 : BIG_CLUSTER // SCALE_DEVICES]
        for cluster in seeder.get("virtualization/clusters", name=name)
        for device in seeder.get("dcim/devices", cluster_id=cluster["id"], fields="id")
    ]
    started = time.monotonic()
    seeder.update_many("dcim/devices", moved)
    print(f"moved {len(moved)} devices into {names[0]} in {time.monotonic() - started:.0f}s", flush=True)
    operator = OperatorProcess("metal3", WORKDIR, env).start()

    def big_first() -> str:
        clusters.create(SCALE_NAMESPACE, "big", annotations={"argora.cloud.sap/netbox-cluster": names[0]})
        return json.dumps(clusters.synced(SCALE_NAMESPACE, "big", timeout=900)["counts"])

    def big_again() -> str:
        return json.dumps(clusters.resync(SCALE_NAMESPACE, "big")["counts"])

    measure(f"argora-metal3, 1 Cluster of {BIG_CLUSTER:,} hosts", operator, big_first, big_again,
            netbox_floor(netbox, names[:1]), resync=True)  # fmt: skip
    operator.stop()


def bench_scale_update(netbox: NetBoxServer, objects: Objects, env: dict[str, str]) -> None:
    """A dry run and a real pass over the scale clusters (nothing to correct there), then a real pass over
    UPDATE_DEVICES devices that each need a rename, their OOB IP and two VMK interfaces with an IP removed."""
    # Not following the change log: its own writes would start the next pass before the one measured.
    quiet = {"ARGORA_NETBOX_CHANGES_INTERVAL": "0", "ARGORA_RESYNC_INTERVAL_SECONDS": "3600"}
    operator = OperatorProcess("update", WORKDIR, {**env, **quiet, "ARGORA_NETBOX_TOKEN": netbox.v2_token}).start()
    selectors = [{"name": name} for name in scale_cluster_names()]

    def dry_run() -> str:
        objects.create_import(SCALE_NAMESPACE, "dry", {"clusters": selectors, "dryRun": True}, kind="Update")
        return summary(objects.synced_import(SCALE_NAMESPACE, "dry", timeout=900, kind="Update"))

    def real() -> str:
        objects.create_import(SCALE_NAMESPACE, "real", {"clusters": selectors}, kind="Update")
        return summary(objects.synced_import(SCALE_NAMESPACE, "real", timeout=900, kind="Update"))

    def summary(update: dict[str, Any]) -> str:
        status = update["status"]
        return json.dumps({key: status.get(key) for key in ("devices", "planned", "applied", "failed")})

    total = SCALE_CLUSTERS * SCALE_DEVICES
    measure(f"argora-update, {total:,} devices: dry run, then a real pass", operator, dry_run, real)

    def corrections() -> str:
        spec = {"clusters": [{"name": "upd-cluster"}], "maxDeletesPerPass": 4 * UPDATE_DEVICES}
        objects.create_import(SCALE_NAMESPACE, "fix", spec, kind="Update")
        return summary(objects.synced_import(SCALE_NAMESPACE, "fix", timeout=1800, kind="Update"))

    def corrections_again() -> str:
        return summary(objects.resync(SCALE_NAMESPACE, "fix", kind="Update"))

    measure(f"argora-update, {UPDATE_DEVICES:,} devices with a rename, an OOB IP and two VMK removals each",
            operator, corrections, corrections_again, netbox_floor(netbox, ["upd-cluster"]))  # fmt: skip
    operator.stop()


BIG_CLUSTER = 2000


CASES = ("ironcore", "changes", "metal3", "ippool", "ipaddress", "scale", "metal3-big", "update", "changes-scale")


def main() -> None:
    """`python -m hack.bench [CASE ...]`, every case when none is named; the scale and update cases need
    the scale inventory (seeded and cached on first use, about half an hour)."""
    cases = sys.argv[1:] or list(CASES)
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(CASES)}")
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    try:
        kube = KubeCluster(WORKDIR / "kube")
        kube.start()
        kube.install_crds(crd_files())
        at_scale = {"scale", "metal3-big", "update", "changes-scale"} & set(cases)
        netbox = netbox_at_scale() if at_scale else netbox_with_inventory()
        objects = Objects(kube.api_client())
        clusters = Clusters(kube.api_client())
        for namespace in ("bench", SCALE_NAMESPACE):
            objects.core.create_namespace({"metadata": {"name": namespace}})
        objects.create_secret("bench", "bmc", {"username": "admin", "password": "bench"})
        env = operator_env(kube, netbox)
        if {"ironcore", "changes", "ipaddress"} & set(cases):
            bench_ironcore(netbox, objects, env)
        if "changes" in cases:
            bench_changes(kube, netbox, objects, BENCH_IMPORT)
        if "changes-scale" in cases:
            bench_changes_at_scale(kube, netbox, objects)
        if "metal3" in cases:
            bench_metal3(netbox, clusters, env)
        if {"ippool", "ipaddress"} & set(cases):
            bench_ippool(objects, env)
        if "ipaddress" in cases:
            bench_ipaddress(kube, netbox, objects, env)
        if "scale" in cases:
            bench_scale_ironcore(kube, netbox, objects, env)
            bench_scale_metal3(kube, netbox, clusters, env)
        if {"scale", "metal3-big"} & set(cases):
            bench_big_metal3(netbox, clusters, env)
        if "update" in cases:
            bench_scale_update(netbox, objects, env)
    finally:
        stop_all()
    report = os.environ.get("ARGORA_BENCH_REPORT")
    if report:
        write_report(REPO_ROOT / report, cases)


def write_report(page: Path, cases: Sequence[str]) -> None:
    """The run's tables into the report page's generated sections (see the module's docstring)."""
    header = generated_line(
        f'make bench CASES="{" ".join(cases)}"', datetime.now(UTC), machine_facts(f"NetBox {NETBOX_VERSION}")
    )
    if PASS_ROWS:
        write_section(page, "bench-passes", header + "\n\n" + bench_markdown(PASS_ROWS))
    if CHANGES:
        labels = {
            f"{path}@{size}": f"{what}, {size} devices"
            for path, what in (("changelog", f"change log (every {CHANGES_INTERVAL} s)"), ("webhook", "webhook"))
            for size in (BENCH_IMPORT.size, SCALE_IMPORT.size)
        }
        write_section(page, "bench-changes", header + "\n\n" + changes_markdown(CHANGES, labels))
    print(f"wrote {page.relative_to(REPO_ROOT) if page.is_relative_to(REPO_ROOT) else page}", flush=True)


def bench_ironcore(netbox: NetBoxServer, objects: Objects, env: dict[str, str]) -> None:
    ironcore = OperatorProcess("ironcore", WORKDIR, env).start()

    def import_first() -> str:
        objects.create_import("bench", "bench", {"clusters": [{"name": CLUSTER_NAME}]})
        return json.dumps(objects.synced_import("bench", "bench", timeout=600)["status"]["counts"])

    def import_again() -> str:
        return json.dumps(objects.resync("bench", "bench")["status"]["counts"])

    measure(f"argora-ironcore, {DEVICES:,} devices in 1 cluster", ironcore, import_first, import_again,
            netbox_floor(netbox, [CLUSTER_NAME]), resync=True)  # fmt: skip
    ironcore.stop()


def bench_metal3(netbox: NetBoxServer, clusters: Clusters, env: dict[str, str]) -> None:
    metal3 = OperatorProcess("metal3", WORKDIR, env).start()

    def cluster_first() -> str:
        clusters.create("bench", "bench", annotations={"argora.cloud.sap/netbox-cluster": CLUSTER_NAME})
        return json.dumps(clusters.synced("bench", "bench", timeout=600)["counts"])

    def cluster_again() -> str:
        return json.dumps(clusters.resync("bench", "bench")["counts"])

    measure(f"argora-metal3, 1 Cluster of {DEVICES:,} hosts", metal3, cluster_first, cluster_again,
            netbox_floor(netbox, [CLUSTER_NAME]), resync=True)  # fmt: skip
    metal3.stop()


def bench_ippool(objects: Objects, env: dict[str, str]) -> None:
    ippool = OperatorProcess("ippool", WORKDIR, env).start()

    def pools(name: str, selectors: list[dict[str, str]]) -> tuple[Callable[[], str], Callable[[], str]]:
        def first() -> str:
            objects.create_import("bench", name, {"ippools": selectors}, kind="IPPoolImport")
            synced = objects.synced_import("bench", name, timeout=600, kind="IPPoolImport")
            return json.dumps(synced["status"]["counts"])

        def again() -> str:
            return json.dumps(objects.resync("bench", name, kind="IPPoolImport")["status"]["counts"])

        return first, again

    # The small import first: its peak RSS is then its own, the large one's that of the whole process.
    small = pools("small", ippool_selectors("small-", SMALL_REGION))
    measure(f"argora-ippool, {SMALL_PREFIXES} prefixes", ippool, *small)
    # The large import selects the small one's prefixes too: their pools go first, or those prefixes would
    # get none of the large import's (PrefixInOtherPool: a prefix is never in two pools).
    objects.delete_import("bench", "small", "IPPoolImport")
    wait_for(lambda: objects.get_import("bench", "small", "IPPoolImport") is None, 600, "the small import's pools gone")
    measure(f"argora-ippool, {PREFIXES} prefixes", ippool, *pools("all", ippool_selectors("")))
    ippool.stop()


if __name__ == "__main__":
    main()
