"""`make bench`: argora-ironcore and argora-metal3 against one NetBox cluster of 1,000 devices,
argora-ippool against 500 NetBox prefixes, and argora-ipaddress writing 500 IPAddresses of those
pools back to 500 of the devices (not part of the tests).

Seeding 1,000 devices takes minutes, so the seeded database is dumped once into the cache and restored
on later runs; the LAG interfaces argora-ipaddress needs are added in bulk on each run. Prints NetBox
requests (reads and writes), the time of the first full pass, the time and write count of a pass with
nothing to change, and the operator's peak RSS; for argora-ippool also those of an import of 50 of the
prefixes with the same selectors, whose NetBox requests are the same as for all 500, and for
argora-ipaddress those of 50 IPAddresses first: its NetBox reads grow with the chunks of ids a request
carries, not with the addresses, and its writes are one per address created and one per primary IP.
Then (`make bench CASES=changes` runs only argora-ironcore and this) the time a NetBox change takes to
reach a BMC of the import through the change log and through NetBox's webhooks, and NetBox requests
while nothing changes."""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argora_common.settings import Settings
from argora_dev import REPO_ROOT
from argora_dev.kube import KubeCluster, crd_files
from argora_dev.kubeobjects import Clusters, Machines, Objects, Pools, ipaddress_state, wait_for
from argora_dev.netbox import NETBOX_VERSION, NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.process import cache_dir, stop_all
from argora_dev.seed import NetBoxSeeder, PrefixSeed, Topology, add_prefixes, add_region, add_servers, fresh_ipv4
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


def netbox_with_inventory() -> NetBoxServer:
    if SEEDED_DUMP.is_file():
        netbox = NetBoxServer(WORKDIR / "netbox")
        netbox.start(dump=SEEDED_DUMP)
        return netbox
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
    netbox.dump_to(SEEDED_DUMP)
    return netbox


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


def skip_taken_addresses(seeder: NetBoxSeeder) -> None:
    """A restored dump holds the addresses this process's fresh_ipv4() would hand out first."""
    taken = {address["address"] for address in seeder.get("ipam/ip-addresses", fields="address")}
    while fresh_ipv4() in taken:
        pass


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
        netbox = NetBoxServer(WORKDIR / "netbox")
        netbox.start(dump=SCALE_DUMP)
        return netbox
    netbox = netbox_with_inventory()
    started = time.monotonic()
    seed_scale(netbox)
    print(f"seeded the scale case in {time.monotonic() - started:.0f}s; caching {SCALE_DUMP}", flush=True)
    netbox.dump_to(SCALE_DUMP)
    return netbox


def ippool_selectors(name_prefix: str, region: str | None = None) -> list[dict[str, str]]:
    """One selector per role, its pools named <name_prefix><role>-..., in `region` only when given."""
    only = {"region": region} if region else {}
    return [{"namePrefix": f"{name_prefix}{role}", "role": f"bench-{role}", **only} for role in PREFIX_ROLES]


REQUESTS = "argora_netbox_requests_total"


@dataclass(frozen=True)
class Counts:
    """An operator's metrics so far: NetBox requests that read and that write, and objects it wrote."""

    reads: float
    writes: float
    written: float

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.reads - other.reads, self.writes - other.writes, self.written - other.written)


def counts(operator: OperatorProcess) -> Counts:
    requests = operator.metric(REQUESTS)
    reads = operator.metric(REQUESTS, method="GET")
    return Counts(reads, requests - reads, operator.metric("argora_objects_written_total"))


@dataclass(frozen=True)
class Pass:
    seconds: float
    counts: Counts

    def __sub__(self, other: Pass) -> Pass:
        return Pass(self.seconds - other.seconds, self.counts - other.counts)

    def line(self) -> str:
        c = self.counts
        return (
            f"{self.seconds:.1f} s, {c.reads + c.writes:.0f} NetBox requests ({c.reads:.0f} reads, {c.writes:.0f}"
            f" writes), {c.written:.0f} objects written"
        )


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def operator_env(kube: KubeCluster, netbox: NetBoxServer) -> dict[str, str]:
    return operator_environment(
        kube, netbox, netbox.readonly_v2_token, ARGORA_LOG_LEVEL="INFO", ARGORA_DEFAULT_BMC_CREDENTIALS="bench/bmc"
    )


def show(name: str, summary: str, first: Pass, again: Pass, rss_mb: float) -> None:
    print(f"{name}: {summary}")
    print(f"  first full pass: {first.line()}")
    print(f"  no-change pass:  {again.line()}")
    print(f"  peak RSS:        {rss_mb:.0f} MB", flush=True)


def measure(name: str, operator: OperatorProcess, first: Callable[[], str], again: Callable[[], str]) -> None:
    """Time a first full pass and a pass with nothing to change; count NetBox requests and writes."""
    before = counts(operator)
    started = time.monotonic()
    summary = first()
    first_pass = Pass(time.monotonic() - started, counts(operator) - before)
    started = time.monotonic()
    again()
    no_change = Pass(time.monotonic() - started, counts(operator) - before - first_pass.counts)
    show(name, summary, first_pass, no_change, peak_rss_mb(operator.process.pid))


# argora-ipaddress: SMALL_IPADDRESSES first, then IPADDRESSES, each on machines of their own.
IPADDRESSES = 500
# At most the operator's default cap of deletes per pass: one pass releases them all.
SMALL_IPADDRESSES = 50
NODE_ROLE = "bench-kubernetes-nodes"  # the role of argora-ippool's pools the IPAddresses come from
LAGS = ("LAG1", "LAG2")  # on each device: the address goes on LAG2
LABEL_PREFIX = Settings.model_fields["label_prefix"].default
CREATED_TAG = IPAddressSettings.model_fields["created_tag"].default
PASSES = "argora_reconcile_duration_seconds"


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
    operator = OperatorProcess("ipaddress", WORKDIR, env).start()
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
    show(name, summary, first, again, peak_rss_mb(operator.process.pid))
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


def timed(what: str, change: Callable[[], object], seen: Callable[[], object]) -> str:
    """Seconds from the end of a NetBox write until Kubernetes shows it."""
    change()
    started = time.monotonic()
    wait_for(seen, timeout=120, what=what)
    return f"{what} {time.monotonic() - started:.1f} s"


def bench_changes(kube: KubeCluster, netbox: NetBoxServer, objects: Objects) -> None:
    """The time a NetBox change takes to reach the BMCs of the 1,000-device import, through the change
    log (looked at every CHANGES_INTERVAL s) and through NetBox's webhooks, and NetBox requests while
    nothing changes."""
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    skip_taken_addresses(seeder)
    for number, path in enumerate(CHANGE_PATHS, start=1):
        operator = start_following(
            "ironcore", path, kube, netbox, netbox.readonly_v2_token, WORKDIR, interval=str(CHANGES_INTERVAL),
            ARGORA_LOG_LEVEL="INFO", ARGORA_DEFAULT_BMC_CREDENTIALS="bench/bmc",
        )  # fmt: skip
        measure_changes(path, number, operator, seeder, objects)
        stop_following(operator, netbox)


def measure_changes(path: str, number: int, operator: OperatorProcess, seeder: NetBoxSeeder, objects: Objects) -> None:
    objects.resync("bench", "bench")
    time.sleep(2 * CHANGES_INTERVAL)  # the start's passes and looks are over
    before = counts(operator)
    time.sleep(IDLE_SECONDS)
    idle = counts(operator) - before
    first, second = (
        seeder.get("dcim/devices", name=f"bench-node{index:04d}")[0] for index in (10 * number, 10 * number + 1)
    )
    hostname = f"{first['name']}-{number}.changed.example.com"
    figures = [
        timed(
            "OOB IP's DNS name -> BMC spec.hostname",
            lambda: seeder.update("ipam/ip-addresses", first["oob_ip"]["id"], dns_name=hostname),
            lambda: (objects.get_metal("bmcs", first["name"]) or {}).get("spec", {}).get("hostname") == hostname,
        ),
        timed(
            "device offline -> BMC gone",
            lambda: seeder.update("dcim/devices", second["id"], status="offline"),
            lambda: objects.get_metal("bmcs", second["name"]) is None,
        ),
    ]
    # A new server is five NetBox writes (device, interface, address, MAC, OOB IP): timed from the last.
    new_name = f"bench-new{number}"
    (cluster,) = seeder.get("virtualization/clusters", name=CLUSTER_NAME)
    figures.append(
        timed(
            "new device -> its BMC",
            lambda: add_servers(Topology.existing(seeder, "bench"), cluster, [new_name]),
            lambda: objects.get_metal("bmcs", new_name),
        )
    )
    print(f"argora-ironcore, NetBox changes by {path}:", flush=True)
    print(f"  {'; '.join(figures)}")
    print(
        f"  idle {IDLE_SECONDS:.0f} s: {idle.reads + idle.writes:.0f} NetBox requests, {idle.written:.0f} objects"
        f" written; peak RSS {peak_rss_mb(operator.process.pid):.0f} MB",
        flush=True,
    )


def main() -> None:
    only_changes = sys.argv[1:] == ["changes"]
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    try:
        kube = KubeCluster(WORKDIR / "kube")
        kube.start()
        kube.install_crds(crd_files())
        netbox = netbox_with_inventory()
        objects = Objects(kube.api_client())
        clusters = Clusters(kube.api_client())
        objects.core.create_namespace({"metadata": {"name": "bench"}})
        objects.create_secret("bench", "bmc", {"username": "admin", "password": "bench"})
        env = operator_env(kube, netbox)

        ironcore = OperatorProcess("ironcore", WORKDIR, env).start()

        def import_first() -> str:
            objects.create_import("bench", "bench", {"clusters": [{"name": CLUSTER_NAME}]})
            return json.dumps(objects.synced_import("bench", "bench", timeout=600)["status"]["counts"])

        def import_again() -> str:
            return json.dumps(objects.resync("bench", "bench")["status"]["counts"])

        measure("argora-ironcore", ironcore, import_first, import_again)
        ironcore.stop()
        bench_changes(kube, netbox, objects)
        if only_changes:
            return

        metal3 = OperatorProcess("metal3", WORKDIR, env).start()

        def cluster_first() -> str:
            clusters.create("bench", "bench", annotations={"argora.cloud.sap/netbox-cluster": CLUSTER_NAME})
            return json.dumps(clusters.synced("bench", "bench", timeout=600)["counts"])

        def cluster_again() -> str:
            return json.dumps(clusters.resync("bench", "bench")["counts"])

        measure("argora-metal3", metal3, cluster_first, cluster_again)
        metal3.stop()

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
        measure(f"argora-ippool, {PREFIXES} prefixes", ippool, *pools("all", ippool_selectors("")))
        ippool.stop()

        bench_ipaddress(kube, netbox, objects, env)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
