"""Running one Argora controller as a kopf operator: CLI, settings, logging, metrics, health, peering.

Each controller has its own kopf registry (its handlers only), finalizer, state-storage prefix and
Lease (argora_common.peering), so the operators can watch the same cluster without stepping on each
other. kopf runs standalone, and only in the replica holding the Lease.
"""

from __future__ import annotations

import argparse
import gc
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
from argora_common.changes import Interest
from argora_common.health import StandbyHealth
from argora_common.identity import Identity
from argora_common.metrics import serve_metrics
from argora_common.netbox import NetBox, NetBoxError, NetBoxRejectedError, NetBoxUnavailableError
from argora_common.peering import LEASE, MAX_REQUEST_SECONDS, KubeLeaseStore, own_identity
from argora_common.settings import ENV_PREFIX, Settings, exit_with, load_settings
from argora_common.webhook import PATH, WebhookServer, ensure_webhook

log = logging.getLogger("argora")


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


# Objects made before Python's young-generation collector runs (its default: 700). A pass over 10,000
# devices makes hundreds of thousands, most of which outlive it (the plan, the read), and every few young
# collections the whole heap (the watch index, the last read) was scanned again: 40% of a pass's plan.
YOUNG_OBJECTS_BEFORE_COLLECTING = 20_000


def run(controller: Controller, argv: Sequence[str] | None = None) -> None:
    arguments = _parser(controller).parse_args(argv)
    settings = load_settings(controller.settings_class, controller.program)
    if getattr(arguments, "command", None) == "netbox-webhook":
        netbox_webhook_command(controller, settings, arguments.url, verify_tls=not arguments.no_verify_tls)
        return
    check_kube_config(controller)
    configure_logging(settings.log_level)
    gc.set_threshold(YOUNG_OBJECTS_BEFORE_COLLECTING, *gc.get_threshold()[1:])
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
