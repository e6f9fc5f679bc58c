"""How a controller's triggers feed its one work queue (argora_common.workqueue): the watch events of its
resources, the watch indexes of what it writes, NetBox's change log and webhooks. The handlers of each
controller wire themselves with these; argora_common.operator runs the process around them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import kopf

from argora_common.changes import ChangeFeed, FeedTask, Interest
from argora_common.kube import SYNC_ANNOTATION, Kind, Kube
from argora_common.netbox import NetBox
from argora_common.passes import Body, Key, Log, PassRunner, key_of
from argora_common.peering import LEASE
from argora_common.queued import QueuedPasses
from argora_common.settings import Settings, exit_with
from argora_common.watch import Indexes, QueuedEvents
from argora_common.webhook import WebhookServer
from argora_common.webhook_endpoint import EndpointKeeper, endpoint_slice
from argora_common.workqueue import WorkQueue

log = logging.getLogger("argora")

# How long a stopping operator waits for the passes under way.
STOP_SECONDS = 10.0


def work_queue(registry: kopf.OperatorRegistry, settings: Settings, controller: str) -> WorkQueue:
    """The controller's one work queue (argora_common.workqueue): its workers run while kopf runs, which
    is only in the active replica; the change log's looks have a worker of their own."""
    queue = WorkQueue(
        f"argora-{controller}", settings.workers, active=LEASE.active, express=lambda key: isinstance(key, FeedTask)
    )

    @kopf.on.startup(registry=registry)
    def start_queue(**_: Any) -> None:
        queue.start()

    @kopf.on.cleanup(registry=registry)
    def stop_queue(**_: Any) -> None:
        queue.stop(timeout=STOP_SECONDS)

    return queue


def own_inputs(body: Body) -> object:
    """What starts a pass over one of our own resources when it changes: its spec (by generation) and
    the sync annotation; our status writes do not."""
    return body["metadata"].get("generation"), (body["metadata"].get("annotations") or {}).get(SYNC_ANNOTATION)


def register_sync(registry: kopf.OperatorRegistry, resource: Kind, passes: QueuedPasses[Any, Any, Any]) -> None:
    """The watch events of one of our own resources feed its passes: on create, spec change, operator
    start and sync request; every pass queues the next (resync or retry). A raw watch puts no finalizer
    and no state of kopf's on the resource."""

    @kopf.on.event(resource.group, resource.version, resource.plural, registry=registry)
    def on_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        passes.observe(type, dict(body))


def sync_own_resource(
    registry: kopf.OperatorRegistry,
    settings: Settings,
    netbox: NetBox,
    resource: Kind,
    runner: PassRunner[Any, Any, Any],
    interest: Interest,
    *,
    delete: Callable[[Body, Log], None] | None = None,
) -> QueuedPasses[Any, Any, Any]:
    """The runtime of a controller of one of our own resources: the work queue, the passes it runs, the
    resource's watch events and NetBox's changes feeding it, and the delete path (`delete`, with kopf's
    finalizer on the resource: it is ours) when there is something to clean up."""
    queue = work_queue(registry, settings, runner.controller)
    passes = QueuedPasses(runner, queue, own_inputs, log)
    register_sync(registry, resource, passes)
    follow_netbox_changes(registry, settings, netbox, interest, passes, f"argora-{runner.controller}")
    if delete is not None:

        @kopf.on.delete(resource.group, resource.version, resource.plural, registry=registry)
        def on_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
            passes.forget(key_of(body))
            delete(body, logger)

    return passes


def index_written_objects(
    registry: kopf.OperatorRegistry,
    kube: Kube,
    kinds: Sequence[Kind],
    namespaces: Sequence[str] = (),
    events: QueuedEvents | None = None,
) -> None:
    """Watch indexes (argora_common.watch) of the kinds the controller writes, from start to cleanup:
    its passes then know the live objects without listing them. `events` gets each change the watches
    see after their first listing, through the work queue: every replica keeps its indexes, ready to take
    over, and only the active one's queue runs."""
    indexes = [
        Indexes(kube, kind, kube.field_manager, namespaces, events.listener(kind) if events is not None else None)
        for kind in kinds
    ]

    @kopf.on.startup(registry=registry)
    def start_indexes(**_: Any) -> None:
        for index in indexes:
            index.start()

    @kopf.on.cleanup(registry=registry)
    def stop_indexes(**_: Any) -> None:
        for index in indexes:
            index.stop()


def follow_netbox_changes(
    registry: kopf.OperatorRegistry,
    settings: Settings,
    netbox: NetBox,
    interest: Interest,
    passes: QueuedPasses[Any, Any, Any],
    field_manager: str,
) -> ChangeFeed[Key]:
    """Passes for the resources NetBox's changes concern: from the change log every
    `ARGORA_NETBOX_CHANGES_INTERVAL` seconds and, when a webhook secret is set, from NetBox's webhooks
    (with the chart, the active replica points the webhook's Service at itself as `field_manager`)."""
    feed: ChangeFeed[Key] = ChangeFeed(
        netbox, interest, settings, passes.request, passes.queue, describe="/".join,
        controller=passes.runner.controller,
    )  # fmt: skip
    passes.runner.changes = feed
    keeper = webhook_endpoint(settings, field_manager) if WebhookServer.enabled(settings) else None
    webhook = WebhookServer(
        settings,
        lambda changes: feed.submit(changes, "webhook"),
        upkeep=keeper.upkeep if keeper is not None else lambda: None,
    )
    if keeper is not None:
        LEASE.observe(keeper.became)

    # At once, not at kopf's start: a standby runs no kopf, and answers NetBox 503 until it is active.
    if WebhookServer.enabled(settings):
        webhook.start()

    @kopf.on.startup(registry=registry)
    def start_following(**_: Any) -> None:
        feed.start()
        if not feed.polling and not WebhookServer.enabled(settings):
            log.info("NetBox changes are not followed: they reach passes at the resync")

    @kopf.on.cleanup(registry=registry)
    def stop_following(**_: Any) -> None:
        webhook.stop()

    return feed


def webhook_endpoint(settings: Settings, field_manager: str) -> EndpointKeeper | None:
    """The keeper of the webhook Service's EndpointSlice when the chart asks for one (it names the Service
    and gives the pod's IP in POD_IP); None otherwise: the webhook is served as it is, a standby
    answering 503."""
    ip = os.environ.get("POD_IP", "").strip()
    if settings.webhook_service is None or not ip:
        return None
    try:
        desired = endpoint_slice(settings.webhook_service, settings.own_namespace, ip, settings.webhook_port)
    except ValueError:
        exit_with(field_manager, f"POD_IP: not an IP address: {ip!r}")
    # A connection of its own: the webhook's accepting thread must not wait behind the passes' writes.
    return EndpointKeeper(Kube.connect(field_manager), desired, LEASE.active)
