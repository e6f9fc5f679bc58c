"""NetBox changes reach Kubernetes without a resync: argora-ironcore following NetBox's change log, and
NetBox's own webhooks delivered by its background worker, against the real API server and NetBox.

The resync is an hour away in every test here, so whatever happens within a test's wait came from a
NetBox change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from argora_dev.kube import KubeCluster
from argora_dev.kubeobjects import Objects, ensure_secret, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment, run_console_script
from argora_dev.seed import NetBoxSeeder, Server, Topology, add_servers
from argora_dev.webhooks import CHANGE_PATHS, CONTROLLER_WEBHOOK_SECRET, start_following, stop_following

pytestmark = pytest.mark.integration

SECRET_NAMESPACE = "argora-system"
CREDENTIALS = {"username": "changes-user", "password": "changes-pass"}
# Long enough for several looks at the change log after the change (one a second).
QUIET_SECONDS = 4.0


@pytest.fixture(scope="module")
def objects(api_client: client.ApiClient) -> Objects:
    ensure_secret(api_client, SECRET_NAMESPACE, "bmc-changes", CREDENTIALS)
    return Objects(api_client)


def start_ironcore(kube: KubeCluster, netbox: NetBoxServer, workdir: Any, **extra: str) -> OperatorProcess:
    env = operator_environment(
        kube, netbox, netbox.readonly_v2_token,
        ARGORA_DEFAULT_BMC_CREDENTIALS=f"{SECRET_NAMESPACE}/bmc-changes",
        **extra,
    )  # fmt: skip
    return OperatorProcess("ironcore", workdir, env).start()


# One argora-ironcore per test: two at once would share the Lease and the ClusterImports, and one's
# NetBox changes would ask for the other's passes.
@pytest.fixture(params=CHANGE_PATHS)
def following(
    request: pytest.FixtureRequest, kube: KubeCluster, netbox: NetBoxServer, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """argora-ironcore following NetBox's changes by its change log (every second) or by webhooks."""
    operator = start_following(
        "ironcore", request.param, kube, netbox, netbox.readonly_v2_token, tmp_path,
        ARGORA_DEFAULT_BMC_CREDENTIALS=f"{SECRET_NAMESPACE}/bmc-changes",
    )  # fmt: skip
    yield operator
    stop_following(operator, netbox)
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


class Slice:
    """Cluster A (imported) with three servers, cluster B (not imported) with one."""

    def __init__(self, seeder: NetBoxSeeder, prefix: str) -> None:
        self.seeder = seeder
        self.prefix = prefix
        self.a = Topology(seeder, f"{prefix}-a")
        self.b = Topology(seeder, f"{prefix}-b")
        self.cluster_a = self.a.cluster("c")
        self.cluster_b = self.b.cluster("c")
        self.servers = add_servers(self.a, self.cluster_a, [f"{prefix}-a{i}" for i in range(3)])
        self.other = add_servers(self.b, self.cluster_b, [f"{prefix}-b0"])


def import_cluster(objects: Objects, namespace: str, the_slice: Slice) -> None:
    objects.create_import(namespace, "import", {"clusters": [{"name": the_slice.cluster_a["name"]}]})
    objects.synced_import(namespace, "import")


def bmc(objects: Objects, server: Server) -> dict[str, Any] | None:
    return objects.get_metal("bmcs", server.name)


def passes_logged(operator: OperatorProcess, namespace: str) -> int:
    return operator.log().count(f"ClusterImport {namespace}/import synced")


def test_netbox_changes_bring_dns_name_offline_and_new_device(
    following: OperatorProcess, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    the_slice = Slice(seeder, prefix)
    import_cluster(objects, namespace, the_slice)
    first, second, _ = the_slice.servers
    assert bmc(objects, first) is not None

    seeder.update("ipam/ip-addresses", first.ip["id"], dns_name=f"{first.name}-renamed.example.com")
    wait_for(
        lambda: (bmc(objects, first) or {}).get("spec", {}).get("hostname") == f"{first.name}-renamed.example.com",
        60, "BMC hostname from the new DNS name",
    )  # fmt: skip

    seeder.update("dcim/devices", second.device["id"], status="offline")
    wait_for(lambda: bmc(objects, second) is None, 60, "BMC of the offline device gone")

    (new,) = add_servers(the_slice.a, the_slice.cluster_a, [f"{prefix}-a9"])
    wait_for(lambda: bmc(objects, new), 60, "BMC of the new device")
    source = "webhook" if following.webhook_url else "changelog"
    assert following.metric("argora_netbox_changes_total", source=source, relevance="relevant") > 0


def test_unrelated_change_starts_no_pass(
    following: OperatorProcess, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    the_slice = Slice(seeder, prefix)
    import_cluster(objects, namespace, the_slice)
    # Whatever the seeding started has run its course.
    time.sleep(QUIET_SECONDS)
    before = passes_logged(following, namespace)

    (other,) = the_slice.other
    seeder.update("ipam/ip-addresses", other.ip["id"], dns_name=f"{other.name}-renamed.example.com")
    seeder.update("dcim/devices", other.device["id"], status="planned")
    time.sleep(QUIET_SECONDS)
    assert passes_logged(following, namespace) == before

    # The same kind of change on an imported device does start one.
    first = the_slice.servers[0]
    seeder.update("ipam/ip-addresses", first.ip["id"], dns_name=f"{first.name}-moved.example.com")
    wait_for(lambda: passes_logged(following, namespace) > before, 30, "a pass for the imported device's change")


def test_netbox_webhook_command_creates_the_webhook_and_event_rule_once(
    kube: KubeCluster, netbox: NetBoxServer, seeder: NetBoxSeeder
) -> None:
    url = "http://argora-update-webhook.argora-system.svc:8081/netbox/webhook"
    env = operator_environment(kube, netbox, netbox.v2_token, ARGORA_WEBHOOK_SECRET="command-secret")
    for done in ("created", "updated"):
        result = run_console_script("update", env, "netbox-webhook", "--url", url)
        assert result.returncode == 0, result.stderr
        assert f"webhook argora-update {done}" in result.stdout
    try:
        (hook,) = seeder.get("extras/webhooks", name="argora-update")
        (rule,) = seeder.get("extras/event-rules", name="argora-update")
        assert (hook["payload_url"], hook["http_method"], hook["ssl_verification"]) == (url, "POST", True)
        assert rule["action_object_id"] == hook["id"] and rule["enabled"]
        assert set(rule["object_types"]) == {
            "virtualization.cluster", "dcim.device", "dcim.interface", "ipam.ipaddress", "dcim.platform"
        }  # fmt: skip
        assert set(rule["event_types"]) == {"object_created", "object_updated", "object_deleted"}
        # NetBox never shows the secret again; a signature made with it proves it was set.
        assert "command-secret" not in result.stdout + result.stderr
    finally:
        seeder.delete("extras/event-rules", [rule["id"]])
        seeder.delete("extras/webhooks", [hook["id"]])


def test_netbox_webhook_command_says_what_is_missing(kube: KubeCluster, netbox: NetBoxServer) -> None:
    url = "http://example.invalid/netbox/webhook"
    without_secret = run_console_script(
        "ironcore", operator_environment(kube, netbox, netbox.v2_token), "netbox-webhook", "--url", url
    )
    assert without_secret.returncode == 2
    assert "set ARGORA_WEBHOOK_SECRET or ARGORA_WEBHOOK_SECRET_FILE first" in without_secret.stderr
    read_only = operator_environment(kube, netbox, netbox.readonly_v2_token, ARGORA_WEBHOOK_SECRET="x" * 20)
    refused = run_console_script("ironcore", read_only, "netbox-webhook", "--url", url)
    assert refused.returncode == 2
    assert "could not set up the webhook" in refused.stderr and "403" in refused.stderr
    assert "x" * 20 not in refused.stderr


# A user that may view everything but NetBox's change log, and a read-only token of it.
NO_CHANGE_LOG_TOKEN_SCRIPT = """
from core.models import ObjectType
from users.models import ObjectPermission, Token, User

user, _ = User.objects.get_or_create(username="argora-no-changelog")
view, _ = ObjectPermission.objects.get_or_create(
    name="argora tests: all but the change log", defaults={"actions": ["view"]}
)
view.object_types.set(ObjectType.objects.public().exclude(app_label="core", model="objectchange"))
user.object_permissions.add(view)
token = Token(user=user, version=2, write_enabled=False, description="argora tests: no change log")
token.save()
print("ARGORA-TOKEN:" + token.get_auth_header_prefix().removeprefix("Bearer ") + token.token)
"""


def test_a_token_that_may_not_read_the_change_log_gets_one_warning_and_the_resync(
    kube: KubeCluster, netbox: NetBoxServer, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    output = netbox.netbox_command("shell", "--no-imports", "-c", NO_CHANGE_LOG_TOKEN_SCRIPT, log_name="no-changelog")
    (token,) = [line.removeprefix("ARGORA-TOKEN:") for line in output.splitlines() if line.startswith("ARGORA-TOKEN:")]
    env = operator_environment(
        kube, netbox, token,
        ARGORA_DEFAULT_BMC_CREDENTIALS=f"{SECRET_NAMESPACE}/bmc-changes", ARGORA_NETBOX_CHANGES_INTERVAL="1",
    )  # fmt: skip
    operator = OperatorProcess("ironcore", tmp_path, env).start()
    try:
        the_slice = Slice(seeder, prefix)
        import_cluster(objects, namespace, the_slice)
        time.sleep(QUIET_SECONDS)
        warning = "NetBox does not let our token read the change log"
        assert operator.log().count(warning) == 1
        # Passes still run, from a sync request as from the resync.
        first = the_slice.servers[0]
        seeder.update("ipam/ip-addresses", first.ip["id"], dns_name=f"{first.name}-later.example.com")
        objects.resync(namespace, "import")
        assert (bmc(objects, first) or {})["spec"]["hostname"] == f"{first.name}-later.example.com"
        assert operator.log().count(warning) == 1
    finally:
        operator.stop()


@pytest.fixture
def webhooks(kube: KubeCluster, netbox: NetBoxServer, tmp_path: Path) -> Iterator[OperatorProcess]:
    """argora-ironcore with the change log off and NetBox's webhook on, set up by its own command."""
    operator = start_following(
        "ironcore", "webhook", kube, netbox, netbox.readonly_v2_token, tmp_path,
        ARGORA_DEFAULT_BMC_CREDENTIALS=f"{SECRET_NAMESPACE}/bmc-changes",
    )  # fmt: skip
    yield operator
    stop_following(operator, netbox)
    assert "Traceback" not in operator.log(), operator.log()[-5000:]


def signature(secret: str, body: bytes) -> str:
    """How NetBox signs a webhook's body."""
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def settled(operator: OperatorProcess, namespace: str) -> int:
    """The number of passes once no new one came for QUIET_SECONDS (NetBox's worker delivers the
    webhooks of a seeding one after another)."""
    count = passes_logged(operator, namespace)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(QUIET_SECONDS)
        now = passes_logged(operator, namespace)
        if now == count:
            return count
        count = now
    raise TimeoutError("passes did not settle")


def test_unsigned_wrongly_signed_and_malformed_webhooks_start_nothing(
    webhooks: OperatorProcess, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str
) -> None:
    the_slice = Slice(seeder, prefix)
    import_cluster(objects, namespace, the_slice)
    before = settled(webhooks, namespace)
    device = the_slice.servers[0].device
    in_cluster = {"cluster": the_slice.cluster_a["id"]}
    body = json.dumps(
        {"event": "updated", "object_type": "dcim.device", "data": {"id": device["id"]},
         "snapshots": {"prechange": in_cluster, "postchange": in_cluster}}
    ).encode()  # fmt: skip
    json_type = {"Content-Type": "application/json"}
    signed = {
        **json_type,
        "X-Hook-Signature": hmac.new(CONTROLLER_WEBHOOK_SECRET.encode(), body, hashlib.sha512).hexdigest(),
    }
    wrong = {**json_type, "X-Hook-Signature": hmac.new(b"guessed", body, hashlib.sha512).hexdigest()}
    assert post(webhooks.webhook_url, body, json_type) == 401
    assert post(webhooks.webhook_url, body, wrong) == 401
    assert post(webhooks.webhook_url, body + b"tampered", signed) == 401
    garbage = b"{not json"
    garbage_signed = {
        "X-Hook-Signature": hmac.new(CONTROLLER_WEBHOOK_SECRET.encode(), garbage, hashlib.sha512).hexdigest()
    }
    assert post(webhooks.webhook_url, garbage, garbage_signed) == 400
    assert post(webhooks.webhook_url, b"x" * (2 << 20), signed) == 413
    time.sleep(QUIET_SECONDS)
    assert passes_logged(webhooks, namespace) == before
    assert webhooks.metric("argora_webhook_requests_total", result="unsigned") >= 1
    assert webhooks.metric("argora_webhook_requests_total", result="bad_signature") >= 2

    # Still serving, and the same body signed with the secret does start a pass.
    assert post(webhooks.webhook_url, body, signed) == 202
    wait_for(lambda: passes_logged(webhooks, namespace) > before, 30, "a pass for the signed webhook")
    assert CONTROLLER_WEBHOOK_SECRET not in webhooks.log()


def test_a_resync_with_nothing_changed_in_netbox_reads_only_the_change_log(
    kube: KubeCluster, netbox: NetBoxServer, objects: Objects, seeder: NetBoxSeeder, namespace: str, prefix: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    operator = start_ironcore(
        kube, netbox, tmp_path, ARGORA_NETBOX_CHANGES_INTERVAL="1", ARGORA_RESYNC_INTERVAL_SECONDS="10"
    )
    try:
        the_slice = Slice(seeder, prefix)
        import_cluster(objects, namespace, the_slice)
        # Seeding may still be reaching passes: wait until one pass reads NetBox no more.
        reused = f"ClusterImport {namespace}/import synced (NetBox unchanged since the last read, not read again)"
        wait_for(lambda: reused in operator.log(), 60, "a resync that reuses the last read")
        # Passes that read NetBox log "synced: ..."; the process's request metrics would also count the
        # passes over other tests' ClusterImports, which this operator resumed.
        read_again = f"ClusterImport {namespace}/import synced: "
        full_passes = operator.log().count(read_again)
        looks = operator.metric("argora_netbox_requests_total", endpoint="core/object-changes")
        wait_for(lambda: operator.log().count(reused) >= 2, 60, "another resync")
        assert operator.log().count(read_again) == full_passes
        assert operator.metric("argora_netbox_requests_total", endpoint="core/object-changes") > looks
        assert time.time() - operator.metric("argora_netbox_change_log_last_read_timestamp_seconds") < 30
        # The BMCs are still there and still converged: the resync ran, from the last read.
        assert all(bmc(objects, server) for server in the_slice.servers)
    finally:
        operator.stop()
