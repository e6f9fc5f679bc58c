"""`make bench`: argora-ironcore and argora-metal3 against one NetBox cluster of 1,000 devices, and
argora-ippool against 500 NetBox prefixes (not part of the tests).

Seeding 1,000 devices takes minutes, so the seeded database is dumped once into the cache and restored
on later runs. Prints NetBox requests, the time of the first full pass, the time and write count of a
pass with nothing to change, and the operator's peak RSS; for argora-ippool also those of an import of
50 of the prefixes with the same selectors, whose NetBox requests are the same as for all 500.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from argora_dev import REPO_ROOT
from argora_dev.kube import KubeCluster, crd_files
from argora_dev.kubeobjects import Clusters, Objects
from argora_dev.netbox import NETBOX_VERSION, NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment
from argora_dev.process import cache_dir, stop_all
from argora_dev.seed import NetBoxSeeder, PrefixSeed, Topology, add_prefixes, add_region, add_servers
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


def ippool_selectors(name_prefix: str, region: str | None = None) -> list[dict[str, str]]:
    """One selector per role, its pools named <name_prefix><role>-..., in `region` only when given."""
    only = {"region": region} if region else {}
    return [{"namePrefix": f"{name_prefix}{role}", "role": f"bench-{role}", **only} for role in PREFIX_ROLES]


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(argora_netbox_requests_total|argora_objects_written_total)\{(.*)\} (\S+)$", line)
        if match:
            values[f"{match[1]}{{{match[2]}}}"] = float(match[3])
    return values


def total(metrics: dict[str, float], name: str) -> float:
    return sum(value for key, value in metrics.items() if key.startswith(name))


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def operator_env(kube: KubeCluster, netbox: NetBoxServer) -> dict[str, str]:
    return operator_environment(
        kube, netbox, netbox.readonly_v2_token, ARGORA_LOG_LEVEL="INFO", ARGORA_DEFAULT_BMC_CREDENTIALS="bench/bmc"
    )


def measure(name: str, operator: OperatorProcess, first: Callable[[], str], again: Callable[[], str]) -> None:
    """Time a first full pass and a pass with nothing to change; count NetBox requests and writes."""
    requests, writes = "argora_netbox_requests_total", "argora_objects_written_total"
    before = scrape(operator.metrics_url)
    started = time.monotonic()
    counts = first()
    first_pass = time.monotonic() - started
    after_first = scrape(operator.metrics_url)
    started = time.monotonic()
    again()
    no_change = time.monotonic() - started
    after_second = scrape(operator.metrics_url)
    print(f"{name}: {counts}")
    first_requests = total(after_first, requests) - total(before, requests)
    print(f"  first full pass: {first_pass:.1f} s, {first_requests:.0f} NetBox requests")
    print(
        f"  no-change pass:  {no_change:.1f} s, {total(after_second, requests) - total(after_first, requests):.0f}"
        f" NetBox requests, {total(after_second, writes) - total(after_first, writes):.0f} writes"
    )
    print(f"  peak RSS:        {peak_rss_mb(operator.process.pid):.0f} MB", flush=True)


def main() -> None:
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
    finally:
        stop_all()


if __name__ == "__main__":
    main()
