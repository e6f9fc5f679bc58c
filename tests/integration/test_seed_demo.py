"""docker-compose.yml's seed job, run here against a real NetBox: the command compose runs, with only
the URL and the token folder changed (the compose stack itself needs Docker).

Its own NetBox, not the session's: the demo inventory hands out the same IP and MAC addresses as a
fresh seeding process would, which the shared server's other tests may hold already.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from argora_common.crds import IPPoolImportSpec
from argora_common.kube import Owner
from argora_common.netbox import NetBox
from argora_common.netbox_schema import CLUSTERS, DEVICES, INTERFACES
from argora_common.prefixes import read_prefixes
from argora_common.settings import Settings
from argora_dev import REPO_ROOT
from argora_dev.demo_inventory import INVENTORY, IPPOOL_SELECTORS, LAG_DEVICE, LAG_INTERFACES, cluster_names
from argora_dev.netbox import NetBoxServer
from argora_dev.seed import GATEWAY_FIELD, NetBoxSeeder
from ipaddress_controller.desired import target_interface
from ipaddress_controller.settings import IPAddressSettings
from ippool_controller.desired import FIELD_MANAGER, plan

pytestmark = pytest.mark.integration

SEED = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["seed"]


@pytest.fixture(scope="module")
def own_netbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetBoxServer]:
    server = NetBoxServer(tmp_path_factory.mktemp("seed-netbox"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def run_seed_job(netbox: NetBoxServer, token_dir: Path) -> subprocess.CompletedProcess[str]:
    """The compose service's entrypoint and command, from the checkout as its working directory."""
    argv: list[str] = [*SEED["entrypoint"], *SEED["command"]]
    assert argv[:3] == ["python", "-m", "hack.seed_demo"]
    argv[0] = sys.executable
    argv[argv.index("--url") + 1] = netbox.url
    argv[argv.index("--token-dir") + 1] = str(token_dir)
    env = {**os.environ, **SEED["environment"], "NETBOX_PASSWORD": netbox.admin_password}
    return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def seeded(own_netbox: NetBoxServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    token_dir = tmp_path_factory.mktemp("tokens")
    result = run_seed_job(own_netbox, token_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seeded demo-k8s-a1" in result.stdout
    return token_dir


def reader(netbox: NetBoxServer, token_file: Path) -> NetBox:
    """NetBox as a controller configured with ARGORA_NETBOX_TOKEN_FILE reads it."""
    return NetBox(Settings(netbox_url=netbox.url, netbox_token_file=token_file))


def test_controllers_read_the_demo_inventory_with_the_tokens_the_job_wrote(
    own_netbox: NetBoxServer, seeded: Path
) -> None:
    names = cluster_names()
    expected_devices = sum(count for _, _, count in INVENTORY) + 1  # k8s-a1-node099, without OOB IP
    for token in ("read", "write"):
        netbox = reader(own_netbox, seeded / token)
        clusters = netbox.select(CLUSTERS, name=names)
        assert sorted(c.name for c in clusters) == sorted(names)
        devices = netbox.list_by_ids(DEVICES, "cluster_id", [c.id for c in clusters])
        assert len(devices) == expected_devices


def test_the_demo_ippoolimport_gets_a_pool_per_prefix_at_a_site(own_netbox: NetBoxServer, seeded: Path) -> None:
    """What argora-ippool plans for the demo's IPPoolImport from what the read token reads: the location's
    prefix at its site, the compute transit pool by its VLAN, the gateway from the custom field or the first
    host, and the region's prefix without a pool."""
    spec = IPPoolImportSpec.model_validate({"ippools": IPPOOL_SELECTORS})
    selection = read_prefixes(reader(own_netbox, seeded / "read"), spec.ippools)
    planned = plan(selection, spec, Owner("demo", "pools", FIELD_MANAGER), "demo.example", GATEWAY_FIELD)
    assert {(pool.name, pool.prefix, pool.body["spec"]["gateway"]) for pool in planned.pools} == {
        ("nodes-demo-de-1a", "10.20.1.0/24", "10.20.1.254"),
        ("nodes-demo-de-1b", "10.20.2.0/24", "10.20.2.1"),
        ("nodes-demo-de-1c", "10.20.3.0/24", "10.20.3.1"),
        ("transit-a0-demo-de-1", "10.21.0.0/26", "10.21.0.1"),
    }
    assert [(problem.prefix, problem.reason) for problem in planned.problems] == [("10.20.0.0/16", "NoSite")]


def test_argora_ipaddress_finds_the_lag_of_the_demo_device(own_netbox: NetBoxServer, seeded: Path) -> None:
    """The interface argora-ipaddress puts the demo machine's address on: the device's highest LAG."""
    netbox = reader(own_netbox, seeded / "read")
    device = netbox.select(DEVICES, name=[LAG_DEVICE])[0]
    lags = netbox.select(INTERFACES, device_id=[device.id], type="lag")
    pattern = re.compile(IPAddressSettings.model_fields["lag_interface_pattern"].default)
    assert sorted(lag.name for lag in lags) == sorted(LAG_INTERFACES)
    chosen = target_interface(lags, pattern)
    assert chosen is not None and chosen.name == LAG_INTERFACES[-1]


@pytest.mark.parametrize(("token", "status"), [("read", 403), ("write", 201)])
def test_only_the_write_token_may_write(own_netbox: NetBoxServer, seeded: Path, token: str, status: int) -> None:
    secret = (seeded / token).read_text().strip()
    assert secret.startswith("nbt_")
    response = requests.post(
        f"{own_netbox.url}/api/dcim/manufacturers/",
        json={"name": f"seed-check-{token}", "slug": f"seed-check-{token}"},
        headers={"Authorization": f"Bearer {secret}", "Accept": "application/json"},
        timeout=60,
    )
    assert response.status_code == status, response.text


def test_a_second_run_keeps_the_inventory_and_renews_the_tokens(own_netbox: NetBoxServer, seeded: Path) -> None:
    before = (seeded / "read").read_text()
    result = run_seed_job(own_netbox, seeded)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the demo inventory is there already" in result.stdout
    assert (seeded / "read").read_text() != before
    assert reader(own_netbox, seeded / "read").select(CLUSTERS, name=["demo-k8s-a1-cluster"])


def test_a_second_run_seeds_nothing(own_netbox: NetBoxServer, seeded: Path, tmp_path: Path) -> None:
    """The job runs at every `docker compose up`: a seeded NetBox is left as it is."""
    result = run_seed_job(own_netbox, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the demo inventory is there already" in result.stdout


def test_a_netbox_seeded_before_argora_ipaddress_gets_the_lags(own_netbox: NetBoxServer, seeded: Path) -> None:
    """Each part is seeded when NetBox lacks it: a demo NetBox without the LAG interfaces gets them."""
    admin = NetBoxSeeder(own_netbox.url, own_netbox.api_headers(own_netbox.v2_token))
    admin.delete("dcim/interfaces", [lag["id"] for lag in admin.get("dcim/interfaces", device=LAG_DEVICE, type="lag")])
    result = run_seed_job(own_netbox, seeded)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"seeded the LAG interfaces of {LAG_DEVICE}" in result.stdout
    lags = admin.get("dcim/interfaces", device=LAG_DEVICE, type="lag")
    assert sorted(lag["name"] for lag in lags) == sorted(LAG_INTERFACES)
