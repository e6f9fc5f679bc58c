"""`make demo`'s NetBox inventory, shared by hack/demo.py and hack/seed_demo.py (docker-compose's
seed job, which runs it in the production image: only the project's runtime dependencies here).
"""

from __future__ import annotations

from typing import Any

from argora_dev.seed import NetBoxSeeder, PrefixSeed, Topology, add_prefixes, add_region, add_servers, fresh_ipv4

# (cluster, vendor, device count)
INVENTORY = [("k8s-a1", "Dell", 4), ("k8s-b1", "HPE", 3), ("k8s-c1", "Lenovo", 2)]

# argora-ippool's part: the prefixes of two roles in a region of three sites (demo-de-1a, ...).
PREFIX_REGION = "demo-de-1"
NODE_ROLE = "demo-nodes"
TRANSIT_ROLE = "demo-kubernetes-compute-transit"
# The spec.ippools of the demo's IPPoolImport: the node networks as nodes-<site>, their first 16 addresses
# kept for the network gear, and the compute transit networks as transit-<site letter><block>-<region>.
IPPOOL_SELECTORS: list[dict[str, Any]] = [
    {"namePrefix": "nodes", "role": NODE_ROLE, "excludeMask": 28},
    {"namePrefix": "transit", "role": TRANSIT_ROLE},
]

# argora-ipaddress's part: a machine on this device gets an address of POOL; it goes on the device's
# highest LAG.
LAG_DEVICE = "k8s-a1-node001"
LAG_INTERFACES = ("LAG1", "LAG2")
POOL = "nodes-demo-de-1a"  # argora-ippool's name for the node network of demo-de-1a


def cluster_names() -> list[str]:
    """The NetBox clusters `seed` makes, one per INVENTORY entry."""
    return [f"demo-{cluster}-cluster" for cluster, _, _ in INVENTORY]


def seed(seeder: NetBoxSeeder) -> list[str]:
    """Write the parts of the demo inventory NetBox lacks (a second seeding of a part would collide):
    INVENTORY's clusters and their servers, the prefixes of PREFIX_REGION and LAG_DEVICE's LAG interfaces.
    Returns what was seeded."""
    seeded = []
    if not clusters_seeded(seeder):
        seed_clusters(seeder)
        seeded.append(", ".join(f"demo-{c}" for c, _, _ in INVENTORY))
    # A demo NetBox seeded before argora-ippool existed gets its prefixes now.
    if not seeder.get("dcim/regions", slug=PREFIX_REGION):
        seed_prefixes(seeder)
        seeded.append(f"the prefixes of {PREFIX_REGION}")
    # And one seeded before argora-ipaddress existed the LAG interfaces.
    if not seeder.get("dcim/interfaces", device=LAG_DEVICE, type="lag"):
        seed_lags(seeder)
        seeded.append(f"the LAG interfaces of {LAG_DEVICE}")
    return seeded


def seed_clusters(seeder: NetBoxSeeder) -> None:
    for cluster_name, vendor, count in INVENTORY:
        topology = Topology(seeder, f"demo-{cluster_name}", manufacturer=vendor, shared_vendor=True)
        cluster = topology.cluster("cluster")
        names = [f"{cluster_name}-node{i:03d}" for i in range(1, count + 1)]
        if cluster_name == "k8s-c1":
            # Fresh from the vendor: the BMC port has Lenovo's name, no OOB IP, its MAC assigned through the API but
            # not primary, and an ESXi leftover.
            servers = add_servers(
                topology, cluster, names, set_oob_ip=False, interface_name="XClarity", mac_shape="assigned"
            )
            for server in servers:
                vmk0 = seeder.create_one("dcim/interfaces", device=server.device["id"], name="vmk0", type="virtual")
                seeder.create_one(
                    "ipam/ip-addresses", address=fresh_ipv4(), assigned_object_type="dcim.interface",
                    assigned_object_id=vmk0["id"],
                )  # fmt: skip
            continue
        add_servers(topology, cluster, names)
        if cluster_name == "k8s-a1":
            # A server without an OOB IP: reported, and it blocks none of the others.
            add_servers(topology, cluster, ["k8s-a1-node099"], set_oob_ip=False, interface_name="eth0")


def seed_prefixes(seeder: NetBoxSeeder) -> None:
    """A node network at each site (one with its gateway in the custom field, one scoped to a location),
    one recorded for the whole region, and a compute transit network on VLAN `...-compute1-...`."""
    region, (site_a, site_b, site_c) = add_region(seeder, PREFIX_REGION, 3)
    hall = seeder.create_one(
        "dcim/locations", name="hall2", slug=f"{site_c['slug']}-hall2", site=site_c["id"], status="active"
    )
    nodes, transit = seeder.create("ipam/roles", [{"name": slug, "slug": slug} for slug in (NODE_ROLE, TRANSIT_ROLE)])
    add_prefixes(
        seeder,
        [
            PrefixSeed("10.20.1.0/24", site_a, role=nodes, vlan=(201, "demo-de-1a-nodes"), gateway="10.20.1.254"),
            PrefixSeed("10.20.2.0/24", site_b, role=nodes, vlan=(201, "demo-de-1b-nodes")),
            PrefixSeed("10.20.3.0/24", site_c, location=hall, role=nodes),
            PrefixSeed("10.21.0.0/26", site_a, role=transit, vlan=(301, "demo-de-1a-compute1-transit")),
        ],
    )
    # Scoped to the region, at no site: it gets no pool, and the IPPoolImport says why.
    seeder.create_one(
        "ipam/prefixes", prefix="10.20.0.0/16", scope_type="dcim.region", scope_id=region["id"], role=nodes["id"]
    )


def seed_lags(seeder: NetBoxSeeder) -> None:
    device = seeder.get("dcim/devices", name=LAG_DEVICE)[0]
    seeder.create("dcim/interfaces", [{"device": device["id"], "name": name, "type": "lag"} for name in LAG_INTERFACES])


def clusters_seeded(seeder: NetBoxSeeder) -> bool:
    """Whether every demo cluster is in NetBox already."""
    names = cluster_names()
    return len(seeder.get("virtualization/clusters", name=names)) == len(names)
