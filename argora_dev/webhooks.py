"""NetBox webhooks for tests: a webhook and the event rule that fires it, made and removed over the REST API;
and a controller started to follow NetBox's changes by the change log or by webhooks.

NetBox sends a webhook only when an event rule names it; the rule says for which object types and events.
A controller's own webhook is set up by its `netbox-webhook` command, as users do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from argora_dev.kube import KubeCluster
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess, operator_environment, run_console_script
from argora_dev.process import free_port, wait_until
from argora_dev.seed import NetBoxSeeder

EVENT_TYPES = ("object_created", "object_updated", "object_deleted")


@dataclass(frozen=True)
class NetBoxWebhook:
    webhook_id: int
    event_rule_id: int


def create_webhook(
    seeder: NetBoxSeeder,
    name: str,
    payload_url: str,
    object_types: Sequence[str],
    secret: str = "",
    ssl_verification: bool = True,
) -> NetBoxWebhook:
    """A webhook POSTing JSON to `payload_url` on every create, update and delete of `object_types`
    (such as "dcim.device"); with a `secret`, NetBox signs each body (X-Hook-Signature: HMAC-SHA512)."""
    webhook = seeder.create_one(
        "extras/webhooks",
        name=name,
        payload_url=payload_url,
        http_method="POST",
        http_content_type="application/json",
        secret=secret,
        ssl_verification=ssl_verification,
    )
    rule = seeder.create_one(
        "extras/event-rules",
        name=name,
        object_types=list(object_types),
        event_types=list(EVENT_TYPES),
        action_type="webhook",
        action_object_type="extras.webhook",
        action_object_id=webhook["id"],
    )
    return NetBoxWebhook(webhook_id=webhook["id"], event_rule_id=rule["id"])


def remove_webhook(seeder: NetBoxSeeder, hook: NetBoxWebhook) -> None:
    # The rule first: deleting the webhook would take its rules along, and this delete would then fail.
    seeder.delete("extras/event-rules", [hook.event_rule_id])
    seeder.delete("extras/webhooks", [hook.webhook_id])


# How a controller follows NetBox's changes in the tests: its change log, or NetBox's webhooks with the
# change log off.
CHANGE_PATHS = ("changelog", "webhook")
CONTROLLER_WEBHOOK_SECRET = "argora-tests-webhook-secret"


def start_following(
    name: str,
    path: str,
    kube: KubeCluster,
    netbox: NetBoxServer,
    token: str,
    workdir: Path,
    *,
    interval: str = "1",
    **extra: str,
) -> OperatorProcess:
    """argora-<name> following NetBox's changes by `path`: the change log every `interval` seconds, or
    webhooks that its own `netbox-webhook` command sets up (with the admin token) to its webhook port."""
    if path == "changelog":
        env = operator_environment(kube, netbox, token, ARGORA_NETBOX_CHANGES_INTERVAL=interval, **extra)
        return OperatorProcess(name, workdir, env).start()
    port = free_port()
    webhook = {
        "ARGORA_NETBOX_CHANGES_INTERVAL": "0",
        "ARGORA_WEBHOOK_PORT": str(port),
        "ARGORA_WEBHOOK_SECRET": CONTROLLER_WEBHOOK_SECRET,
    }
    operator = OperatorProcess(name, workdir, operator_environment(kube, netbox, token, **webhook, **extra)).start()
    operator.webhook_url = f"http://127.0.0.1:{port}/netbox/webhook"
    # A replica answers NetBox 503 until it holds its Lease and is the active one: a change sent before would
    # be lost (NetBox does not send it again).
    wait_until(
        lambda: operator.metric("argora_peering_active", controller=name) == 1, 60, f"argora-{name} active",
        operator.process,
    )  # fmt: skip
    setup = run_console_script(
        name, operator_environment(kube, netbox, netbox.v2_token, **webhook), "netbox-webhook", "--url",
        operator.webhook_url,
    )  # fmt: skip
    if setup.returncode != 0:
        operator.stop()
        raise RuntimeError(f"argora-{name} netbox-webhook failed: {setup.stderr}")
    return operator


def stop_following(operator: OperatorProcess, netbox: NetBoxServer) -> None:
    """Stop the operator and remove the webhook and event rule its command made, if any."""
    operator.stop()
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    name = f"argora-{operator.name}"
    seeder.delete("extras/event-rules", [rule["id"] for rule in seeder.get("extras/event-rules", name=name)])
    seeder.delete("extras/webhooks", [hook["id"] for hook in seeder.get("extras/webhooks", name=name)])
