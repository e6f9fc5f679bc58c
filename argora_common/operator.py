"""Running one Argora controller as a kopf operator: CLI, settings, logging, metrics, health, peering.

Each controller has its own kopf registry (its handlers only), finalizer, state-storage prefix and
Lease (argora_common.peering), so the operators can watch the same cluster without stepping on each
other. kopf runs standalone, and only in the replica holding the Lease.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kopf
import yaml
from kubernetes.config import ConfigException
from pydantic.fields import FieldInfo

from argora_common.apiserver import load_api_client
from argora_common.changes import ChangeFeed, FeedTask, Interest
from argora_common.health import StandbyHealth
from argora_common.identity import Identity
from argora_common.kube import SYNC_ANNOTATION, Kind, Kube
from argora_common.metrics import serve_metrics
from argora_common.netbox import NetBox, NetBoxError, NetBoxRejectedError, NetBoxUnavailableError
from argora_common.passes import Body, Key, Log, PassRunner, QueuedPasses, key_of
from argora_common.peering import LEASE, MAX_REQUEST_SECONDS, KubeLeaseStore, own_identity
from argora_common.settings import ENV_PREFIX, Settings, exit_with, load_settings
from argora_common.watch import Indexes, QueuedEvents
from argora_common.webhook import PATH, WebhookServer, ensure_webhook
from argora_common.webhook_endpoint import EndpointKeeper, endpoint_slice
from argora_common.workqueue import WorkQueue

log = logging.getLogger("argora")

# How long a stopping operator waits for the passes under way.
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class Controller:
    """What distinguishes one operator from the others."""

    identity: Identity
    description: str
    # Registers the controller's handlers once its settings are known (the resync timer needs them).
    register: Callable[[kopf.OperatorRegistry, Any, NetBox], None]
    settings_class: type[Settings] = Settings
    # The NetBox object types whose changes start passes; None: the controller does not follow them.
    interest: Interest | None = None

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def program(self) -> str:
        return self.identity.program

    @property
    def prefix(self) -> str:
        return self.identity.prefix

    @property
    def field_manager(self) -> str:
        return self.identity.field_manager


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


def _parser(controller: Controller) -> argparse.ArgumentParser:
    settings_help = "\n".join(
        f"  {ENV_PREFIX}{name.upper():32} {field.description or ''}{_default_text(field)}"
        for name, field in controller.settings_class.model_fields.items()
    )
    parser = argparse.ArgumentParser(
        prog=controller.program,
        description=controller.description,
        epilog=f"Configuration comes from the environment:\n{settings_help}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if controller.interest is not None:
        commands = parser.add_subparsers(dest="command", metavar="COMMAND")
        hook = commands.add_parser(
            "netbox-webhook",
            help="create or update NetBox's webhook and event rule that send this controller's changes to --url",
            description=f"Creates (or updates) the webhook and event rule {controller.program} in NetBox, signed "
            f"with {ENV_PREFIX}WEBHOOK_SECRET(_FILE). The token ({ENV_PREFIX}NETBOX_TOKEN(_FILE)) must be allowed to "
            "add and change webhooks and event rules.",
        )
        hook.add_argument(
            "--url", required=True, help=f"what NetBox calls, e.g. http://argora-{controller.name}:8081{PATH}"
        )
        hook.add_argument("--no-verify-tls", action="store_true", help="NetBox does not check the URL's certificate")
    return parser


def netbox_webhook_command(controller: Controller, settings: Settings, url: str, *, verify_tls: bool) -> None:
    """`argora-<name> netbox-webhook --url …`: one line saying what was done, or why not."""
    assert controller.interest is not None
    if not WebhookServer.enabled(settings):
        exit_with(controller.program, f"set {ENV_PREFIX}WEBHOOK_SECRET or {ENV_PREFIX}WEBHOOK_SECRET_FILE first")
    secret = WebhookServer(settings, lambda _: None).secret()
    try:
        done = ensure_webhook(
            NetBox(settings), controller.program, url, secret, controller.interest, verify_tls=verify_tls
        )
    except NetBoxError as error:
        exit_with(controller.program, f"could not set up the webhook: {error}")
    print(f"{controller.program}: {done}")


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return " (required)"
    default = field.get_default(call_default_factory=True)
    return "" if default in (None, []) else f" (default {default})"


def configure_kopf(settings: kopf.OperatorSettings, controller: Controller) -> None:
    settings.persistence.finalizer = f"{controller.prefix}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=controller.prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=controller.prefix, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # A watch that silently stops delivering events is worse than a reconnect every few minutes.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


class PerObjectLinesAtDebug(logging.Filter):
    """kopf says "Handler '…' succeeded.", "Timer '…' succeeded." and "… is processed: 1 succeeded; 0
    failed." at INFO for every handled event and resync: lines per object and per pass, next to the
    pass's own summary line. They become DEBUG lines (kopf still posts its Events on our resources;
    that does not go through here); kopf's lines about failures stay."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name == "kopf.objects":
            message = record.getMessage()
            succeeded = message.startswith(("Handler '", "Timer '")) and message.endswith("succeeded.")
            if succeeded or message.endswith("is processed: 1 succeeded; 0 failed."):
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                return self.level <= logging.DEBUG
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(PerObjectLinesAtDebug(logging.getLevelName(level)))


def check_netbox(controller: Controller, netbox: NetBox) -> None:
    """Refuse to start with a token NetBox rejects; an unreachable NetBox is only worth a warning."""
    try:
        status = netbox.status()
    except NetBoxRejectedError as error:
        exit_with(controller.program, f"NetBox rejected our request, check {ENV_PREFIX}NETBOX_TOKEN: {error}")
    except NetBoxUnavailableError as error:
        log.warning("NetBox is not reachable yet, reconciles will retry: %s", error)
        return
    log.info("NetBox %s at %s", status.get("netbox-version", "?"), netbox.url)


def check_kube_config(controller: Controller) -> None:
    """Refuse to start, with one line, when there is no usable Kubernetes configuration: neither a
    ServiceAccount (in a Pod) nor a readable, valid $KUBECONFIG or ~/.kube/config. Only the configuration
    is read here; an API server that does not answer yet is waited for."""
    try:
        load_api_client().close()
    except (ConfigException, yaml.YAMLError, OSError) as error:
        source = f"$KUBECONFIG={os.environ['KUBECONFIG']}" if os.environ.get("KUBECONFIG") else "~/.kube/config"
        reason = " ".join(str(error).split())
        exit_with(controller.program, f"no usable Kubernetes configuration (not in a Pod; {source}): {reason}")


def follow_lease(controller: Controller, settings: Settings) -> None:
    """Take part in the election of the controller's active replica: the Lease `argora-<name>` in the
    operator's own namespace (the chart's `-own` Role grants it by that name)."""
    duration = settings.peering_lifetime_seconds
    timeout = max(1.0, min(MAX_REQUEST_SECONDS, duration / 6))
    try:
        store = KubeLeaseStore(controller.program, settings.own_namespace, timeout)
    except (ConfigException, yaml.YAMLError, OSError) as error:
        exit_with(controller.program, f"no usable Kubernetes configuration: {error}")
    LEASE.follow(store, own_identity(), duration, controller.name)


def stand_by(controller: Controller, settings: Settings) -> bool:
    """Until this replica holds the Lease: /healthz answers (a standby stays Ready), nothing of kopf's runs.
    False when the process was told to stop meanwhile."""
    health = StandbyHealth(settings.health_port).start()

    def stop(signum: int, _frame: object) -> None:
        log.info("standby stopping (signal %d)", signum)
        LEASE.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "%s takes part in the election of its active replica: the Lease %s/%s",
        controller.program, settings.own_namespace, controller.program,
    )  # fmt: skip
    try:
        return LEASE.wait_until_active()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        health.stop()  # kopf's liveness endpoint takes the port


def run(controller: Controller, argv: Sequence[str] | None = None) -> None:
    arguments = _parser(controller).parse_args(argv)
    settings = load_settings(controller.settings_class, controller.program)
    if getattr(arguments, "command", None) == "netbox-webhook":
        netbox_webhook_command(controller, settings, arguments.url, verify_tls=not arguments.no_verify_tls)
        return
    check_kube_config(controller)
    configure_logging(settings.log_level)
    netbox = NetBox(settings)
    check_netbox(controller, netbox)
    if not settings.standalone:
        follow_lease(controller, settings)
    serve_metrics(settings.metrics_port)
    registry = kopf.OperatorRegistry()
    # Registered before standing by: what it starts at once (the webhook server, answering 503) serves
    # a standby too.
    controller.register(registry, settings, netbox)
    if not settings.standalone and not stand_by(controller, settings):
        return

    @kopf.on.startup(registry=registry)
    def _configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, controller)

    # kopf's built-in login handlers live in its global registry, which we do not use.
    @kopf.on.login(registry=registry)
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    try:
        kopf.run(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
            # No kopf peering: the Lease chose this replica (argora_common.peering), and only it runs kopf.
            standalone=True,
            memo=kopf.Memo(settings=settings, netbox=netbox, controller=controller),
        )
    finally:
        LEASE.release()  # kopf stopped: nothing of ours writes any more
