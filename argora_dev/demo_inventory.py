"""`make demo`'s NetBox inventory, shared by hack/demo.py and hack/seed_demo.py (docker-compose's
seed job, which runs it in the production image: only the project's runtime dependencies here).
"""

from __future__ import annotations

from argora_dev.seed import NetBoxSeeder, Topology, add_servers, fresh_ipv4

# (cluster, vendor, device count)
INVENTORY = [("k8s-a1", "Dell", 4), ("k8s-b1", "HPE", 3), ("k8s-c1", "Lenovo", 2)]


def cluster_names() -> list[str]:
    """The NetBox clusters `seed` makes, one per INVENTORY entry."""
    return [f"demo-{cluster}-cluster" for cluster, _, _ in INVENTORY]


def seed(seeder: NetBoxSeeder) -> None:
    """Write the demo inventory (INVENTORY) into an empty NetBox."""
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


def is_seeded(seeder: NetBoxSeeder) -> bool:
    """Whether every demo cluster is in NetBox already (a second seeding would collide)."""
    names = cluster_names()
    return len(seeder.get("virtualization/clusters", name=names)) == len(names)
