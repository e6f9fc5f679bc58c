"""NetBox webhooks for tests: a webhook and the event rule that fires it, made and removed over the REST API.

NetBox sends a webhook only when an event rule names it; the rule says for which object types and events.
Test plumbing only: registering the controllers' own webhook is production code's job (argora_common).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
