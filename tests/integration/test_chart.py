"""The Helm chart: lint, per-controller toggles, schema, install into the real API server, RBAC."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.settings import ENV_PREFIX, Settings
from argora_dev.chart import (
    BASE_VALUES,
    CHART,
    CONTROLLERS,
    VERBS,
    Access,
    Reviewer,
    create_from_manifests,
    helm,
    render,
    served_accesses,
    service_account_user,
    toggles,
)
from argora_dev.seed import unique_prefix
from ipaddress_controller.__main__ import CONTROLLER as IPADDRESS
from ippool_controller.__main__ import CONTROLLER as IPPOOL
from ironcore_controller.__main__ import CONTROLLER as IRONCORE
from metal3_controller.__main__ import CONTROLLER as METAL3
from update_controller.__main__ import CONTROLLER as UPDATE

pytestmark = pytest.mark.integration

SETTINGS: dict[str, type[Settings]] = {c.name: c.settings_class for c in (IRONCORE, METAL3, UPDATE, IPPOOL, IPADDRESS)}


def test_helm_lint() -> None:
    result = helm("lint", str(CHART), *BASE_VALUES, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "enabled",
    [set(combo) for size in range(len(CONTROLLERS) + 1) for combo in itertools.combinations(CONTROLLERS, size)],
    ids=lambda enabled: "+".join(sorted(enabled)) or "none",
)
def test_template_yields_exactly_the_enabled_controllers(enabled: set[str]) -> None:
    docs = render(*toggles(enabled))
    by_kind: dict[str, set[str]] = {}
    for doc in docs:
        component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        by_kind.setdefault(doc["kind"], set()).add(component)
    for kind in ("Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service"):
        assert by_kind.get(kind, set()) == enabled, kind


def test_schema_rejects_wrong_values_with_a_readable_message() -> None:
    cases = {
        ("--set", "ironcore.replicas=two"): "at '/ironcore/replicas': got string, want integer",
        ("--set", "netbox.url=netbox"): "at '/netbox/url': 'netbox' does not match pattern",
        ("--set", "update.image.pullPolicy=Sometimes"): "at '/update/image/pullPolicy'",
        ("--set", "metal3.bmcAddresses.dell=redfish://host"): "at '/metal3/bmcAddresses/dell'",
        ("--set", "update.retryBaseSeconds=0"): "at '/update/retryBaseSeconds'",
        ("--set", "ippool.gatewayCustomField="): "at '/ippool/gatewayCustomField'",
        ("--set-json", 'ipaddress.poolNames=["pool-a,pool-b"]'): "at '/ipaddress/poolNames/0'",
        ("--set", "ipaddress.createdTag="): "at '/ipaddress/createdTag'",
        ("--set", "ipaddress.dryRun=maybe"): "at '/ipaddress/dryRun'",
        ("--set", "ipaddress.maxDeletesPerPass=-1"): "at '/ipaddress/maxDeletesPerPass'",
        ("--set", "ironcore.netboxChanges.intervalSeconds=-1"): "at '/ironcore/netboxChanges/intervalSeconds'",
        ("--set", "metal3.netboxChanges.intervalSeconds=3601"): "at '/metal3/netboxChanges/intervalSeconds'",
        ("--set", "update.netboxChanges.fullReadIntervalSeconds=hourly"): (
            "at '/update/netboxChanges/fullReadIntervalSeconds': got string, want integer"
        ),
        ("--set", "ippool.webhook.enabled=maybe"): "at '/ippool/webhook/enabled'",
        ("--set", "webhook.enabled=yes"): "at '/webhook/enabled'",
        ("--set", "webhook.port=0"): "at '/webhook/port'",
        ("--set", "webhook.port=65536"): "at '/webhook/port'",
        ("--set", "webhook.secret.name="): "at '/webhook/secret/name'",
        ("--set", "webhook.secret.key="): "at '/webhook/secret/key'",
        # argora-ipaddress does not follow NetBox's changes: it has neither value.
        ("--set", "ipaddress.webhook.enabled=true"): "additional properties 'webhook' not allowed",
        ("--set", "ipaddress.netboxChanges.intervalSeconds=10"): "additional properties 'netboxChanges' not allowed",
    }
    for args, message in cases.items():
        result = helm("template", "argora", str(CHART), *BASE_VALUES, *args, check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr
    missing = helm("template", "argora", str(CHART), check=False)
    assert missing.returncode != 0 and "at '/netbox/url'" in missing.stderr, missing.stderr
    for port in ("healthPort", "metricsPort"):
        clash = helm(
            "template", "argora", str(CHART), *BASE_VALUES, "--set", "webhook.enabled=true",
            "--set", "webhook.port=9999", "--set", f"{port}=9999", check=False,
        )  # fmt: skip
        assert clash.returncode != 0 and "webhook.port must differ" in clash.stderr, clash.stderr


def test_deployment_is_hardened_and_probed() -> None:
    (deployment,) = [d for d in render(*toggles({"update"})) if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["ARGORA_NETBOX_TOKEN_FILE"] == "/var/run/argora/netbox-token/token"
    assert (env["ARGORA_RETRY_BASE_SECONDS"], env["ARGORA_RETRY_MAX_SECONDS"]) == ("30", "600")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["netbox-token"]["secret"]["secretName"] == "argora-netbox-write"


def test_independent_images_and_scaling() -> None:
    docs = render("--set", "metal3.image.tag=1.2.3", "--set", "ironcore.replicas=3")
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Deployment"}
    assert deployments["metal3"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.2.3")
    assert deployments["ironcore"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.1.0")
    assert deployments["ironcore"]["spec"]["replicas"] == 3


# The controllers that follow NetBox's change log and can take its webhook; argora-ipaddress does not.
CHANGE_FOLLOWERS = ("ironcore", "metal3", "update", "ippool")
WEBHOOK_SECRET_FILE = "/var/run/argora/webhook-secret/secret"


def by_component(docs: list[dict[str, Any]], kind: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        if doc["kind"] == kind:
            found.setdefault(doc["metadata"]["labels"]["app.kubernetes.io/component"], []).append(doc)
    return found


def webhook_parts(deployment: dict[str, Any]) -> dict[str, Any]:
    """Everything of the webhook a Deployment has: its variables, the pod's IP, container port, mount and
    volume."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return {
        "env": {e["name"]: e.get("value") for e in container["env"] if e["name"].startswith("ARGORA_WEBHOOK_")},
        "pod_ip": [e.get("valueFrom") for e in container["env"] if e["name"] == "POD_IP"],
        "ports": [p for p in container["ports"] if p["name"] == "webhook"],
        "mounts": [m for m in container["volumeMounts"] if m["name"] == "webhook-secret"],
        "volumes": [v for v in pod["volumes"] if v["name"] == "webhook-secret"],
    }


def test_defaults_poll_the_change_log_and_serve_no_webhook() -> None:
    docs = render()
    deployments = {name: d for name, (d,) in by_component(docs, "Deployment").items()}
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        changes = (env.get("ARGORA_NETBOX_CHANGES_INTERVAL"), env.get("ARGORA_NETBOX_FULL_READ_INTERVAL_SECONDS"))
        assert changes == (("10", "3600") if name in CHANGE_FOLLOWERS else (None, None)), name
        assert webhook_parts(deployment) == {"env": {}, "pod_ip": [], "ports": [], "mounts": [], "volumes": []}, name
    services = by_component(docs, "Service")
    assert {name: [s["metadata"]["name"] for s in found] for name, found in services.items()} == {
        name: [f"argora-{name}-metrics"] for name in CONTROLLERS
    }
    # Without the webhook every controller writes its Lease in the release's namespace, and argora-metal3
    # its claims record besides.
    roles = {name: [role["metadata"]["name"] for role in found] for name, found in by_component(docs, "Role").items()}
    assert roles == {name: [f"argora-{name}-own"] for name in CONTROLLERS}
    for name, (own,) in by_component(docs, "Role").items():
        named = {object_name for rule in own["rules"] for object_name in rule.get("resourceNames", ())}
        assert named == {f"argora-{name}", *(["argora-metal3-claims"] if name == "metal3" else [])}, name
    assert set(by_component(docs, "RoleBinding")) == set(CONTROLLERS)


def test_change_log_values_are_per_controller() -> None:
    docs = render(
        "--set", "metal3.netboxChanges.intervalSeconds=0",
        "--set", "update.netboxChanges.fullReadIntervalSeconds=0",
    )  # fmt: skip
    env = {
        name: {item["name"]: item.get("value") for item in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        for name, (d,) in by_component(docs, "Deployment").items()
    }
    assert env["metal3"]["ARGORA_NETBOX_CHANGES_INTERVAL"] == "0"
    assert env["update"]["ARGORA_NETBOX_FULL_READ_INTERVAL_SECONDS"] == "0"
    assert env["ironcore"]["ARGORA_NETBOX_CHANGES_INTERVAL"] == "10"
    assert env["ippool"]["ARGORA_NETBOX_FULL_READ_INTERVAL_SECONDS"] == "3600"


def test_webhook_renders_env_secret_port_and_service_but_not_for_ipaddress() -> None:
    docs = render("--set", "webhook.enabled=true", release="rel", namespace="ops")
    deployments = {name: d for name, (d,) in by_component(docs, "Deployment").items()}
    services = by_component(docs, "Service")
    roles, bindings = by_component(docs, "Role"), by_component(docs, "RoleBinding")
    for name in CHANGE_FOLLOWERS:
        parts = webhook_parts(deployments[name])
        assert parts["env"] == {
            "ARGORA_WEBHOOK_PORT": "8081",
            "ARGORA_WEBHOOK_SECRET_FILE": WEBHOOK_SECRET_FILE,
            "ARGORA_WEBHOOK_SERVICE": f"rel-{name}-webhook",
        }
        assert parts["pod_ip"] == [{"fieldRef": {"fieldPath": "status.podIP"}}]
        assert parts["ports"] == [{"name": "webhook", "containerPort": 8081}]
        assert parts["mounts"] == [
            {"name": "webhook-secret", "mountPath": "/var/run/argora/webhook-secret", "readOnly": True}
        ]
        assert parts["volumes"] == [
            {
                "name": "webhook-secret",
                "secret": {"secretName": "argora-netbox-webhook", "items": [{"key": "secret", "path": "secret"}]},
            }
        ]
        # NetBox calls http://rel-<name>-webhook.ops.svc:8081/netbox/webhook: the Service says which controller.
        # No selector (a standby would answer 503): the active replica writes the EndpointSlice, its port
        # named like the Service's.
        (webhook,) = [s for s in services[name] if s["metadata"]["name"] == f"rel-{name}-webhook"]
        assert webhook["metadata"]["namespace"] == "ops"
        assert webhook["spec"] == {"ports": [{"name": "webhook", "port": 8081, "targetPort": 8081}]}
        # Which the Role in the release's namespace lets it write: that one slice, read and applied by name
        # (after its Lease).
        (role,), (binding,) = roles[name], bindings[name]
        assert (role["metadata"]["name"], role["metadata"]["namespace"]) == (f"rel-{name}-own", "ops")
        assert {rule["resources"][0] for rule in role["rules"][:2]} == {"leases"}
        assert role["rules"][2:4] == [
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["create"]},
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "resourceNames": [f"rel-{name}-webhook"],
                "verbs": ["get", "patch"],
            },
        ]
        # argora-metal3's claims record besides.
        assert {rule["resources"][0] for rule in role["rules"][4:]} == ({"configmaps"} if name == "metal3" else set())
        assert binding["metadata"]["namespace"] == "ops"
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"rel-{name}-own",
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"rel-{name}", "namespace": "ops"}]
        # The metrics Service stays as it was.
        (metrics,) = [s for s in services[name] if s["metadata"]["name"] == f"rel-{name}-metrics"]
        assert [port["name"] for port in metrics["spec"]["ports"]] == ["metrics"]
    ipaddress = deployments["ipaddress"]
    assert webhook_parts(ipaddress) == {"env": {}, "pod_ip": [], "ports": [], "mounts": [], "volumes": []}
    # argora-ipaddress serves no webhook: its Role in the release's namespace names its Lease alone.
    ((own,),) = [roles["ipaddress"]]
    assert {rule["resources"][0] for rule in own["rules"]} == {"leases"}
    (container,) = ipaddress["spec"]["template"]["spec"]["containers"]
    assert not {item["name"] for item in container["env"]} & {
        "ARGORA_NETBOX_CHANGES_INTERVAL",
        "ARGORA_NETBOX_FULL_READ_INTERVAL_SECONDS",
    }
    assert [s["metadata"]["name"] for s in services["ipaddress"]] == ["rel-ipaddress-metrics"]


def test_webhook_per_controller_override_port_and_secret() -> None:
    def served(*args: str) -> dict[str, dict[str, Any]]:
        docs = render(*args)
        return {
            name: webhook_parts(d) for name, (d,) in by_component(docs, "Deployment").items() if webhook_parts(d)["env"]
        }

    assert set(served("--set", "ironcore.webhook.enabled=true")) == {"ironcore"}
    assert set(served("--set", "webhook.enabled=true", "--set", "metal3.webhook.enabled=false")) == {
        "ironcore", "update", "ippool",
    }  # fmt: skip
    custom = served(
        "--set", "update.webhook.enabled=true", "--set", "webhook.port=8443",
        "--set", "webhook.secret.name=hook", "--set", "webhook.secret.key=hmac",
    )["update"]  # fmt: skip
    assert custom["env"] == {
        "ARGORA_WEBHOOK_PORT": "8443",
        "ARGORA_WEBHOOK_SECRET_FILE": "/var/run/argora/webhook-secret/hmac",
        "ARGORA_WEBHOOK_SERVICE": "argora-update-webhook",
    }
    assert custom["ports"] == [{"name": "webhook", "containerPort": 8443}]
    assert custom["volumes"][0]["secret"] == {"secretName": "hook", "items": [{"key": "hmac", "path": "hmac"}]}


def test_chart_with_webhook_installs(api_client: client.ApiClient, namespace: str) -> None:
    """The API server takes the webhook's Deployments and Services as rendered (named target ports)."""
    docs = render("--set", "webhook.enabled=true", release=namespace, namespace=namespace)
    create_from_manifests(api_client, docs)
    core = client.CoreV1Api(api_client)
    for name in CHANGE_FOLLOWERS:
        service = core.read_namespaced_service(f"{namespace}-{name}-webhook", namespace)
        (port,) = service.spec.ports
        assert (port.name, port.port, port.target_port) == ("webhook", 8081, 8081)
        assert service.spec.selector is None
        deployment = client.AppsV1Api(api_client).read_namespaced_deployment(f"{namespace}-{name}", namespace)
        (container,) = deployment.spec.template.spec.containers
        assert {(p.name, p.container_port) for p in container.ports} >= {("webhook", 8081)}
    webhook_services = {s.metadata.name for s in core.list_namespaced_service(namespace).items} - {
        f"{namespace}-{name}-metrics" for name in CONTROLLERS
    }
    assert webhook_services == {f"{namespace}-{name}-webhook" for name in CHANGE_FOLLOWERS}


def test_network_policy_admits_only_the_served_ports(api_client: client.ApiClient, namespace: str) -> None:
    assert by_component(render(), "NetworkPolicy") == {}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    netbox = {"ipBlock": {"cidr": "192.0.2.10/32"}}
    docs = render(
        "--set", "networkPolicy.enabled=true", "--set", "ironcore.webhook.enabled=true",
        "--set-json", f"networkPolicy.metricsFrom=[{json.dumps(monitoring)}]",
        "--set-json", f"networkPolicy.webhookFrom=[{json.dumps(netbox)}]",
        release=namespace, namespace=namespace,
    )  # fmt: skip
    policies = {name: policy for name, (policy,) in by_component(docs, "NetworkPolicy").items()}
    assert set(policies) == set(CONTROLLERS)
    deployments = {name: d for name, (d,) in by_component(docs, "Deployment").items()}
    for name, policy in policies.items():
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        rules = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
        served = {"health": None, "metrics": [monitoring]}
        assert rules == ({**served, "webhook": [netbox]} if name == "ironcore" else served)
    # The API server takes them as rendered (named ports).
    create_from_manifests(api_client, list(policies.values()))
    stored = client.NetworkingV1Api(api_client).list_namespaced_network_policy(namespace).items
    assert {p.metadata.name for p in stored} == {f"{namespace}-{name}" for name in CONTROLLERS}


@pytest.fixture
def installed(api_client: client.ApiClient, namespace: str) -> Iterator[str]:
    """The whole chart installed as a release named after the test's namespace."""
    docs = render(release=namespace, namespace=namespace)
    create_from_manifests(api_client, docs)
    yield namespace


def test_rendered_chart_installs(api_client: client.ApiClient, installed: str) -> None:
    apps = client.AppsV1Api(api_client)
    names = {d.metadata.name for d in apps.list_namespaced_deployment(installed).items}
    assert names == {f"{installed}-{name}" for name in CONTROLLERS}


def grants(group: str, resources: str, verbs: str) -> frozenset[Access]:
    return frozenset((verb, group, resource) for resource in resources.split() for verb in verbs.split())


@dataclass(frozen=True)
class Needs:
    """What one controller asks of the API server, from the calls its code (and kopf's) makes."""

    cluster: frozenset[Access]  # everywhere, whatever watchNamespaces says
    namespaced: frozenset[Access]  # in the namespaces it watches (everywhere when it watches them all)
    default_credentials: bool = False  # GETs the defaultBmcCredentials Secret, wherever that is
    # In the release's namespace alone (ARGORA_OWN_NAMESPACE): on objects of any name, and on the objects
    # named <release>-<controller><suffix> alone, by suffix.
    own: frozenset[Access] = frozenset()
    own_named: tuple[tuple[str, frozenset[Access]], ...] = ()
    # There too, on the objects of exactly that name, whatever the release is called.
    own_exact: tuple[tuple[str, frozenset[Access]], ...] = ()

    def own_names(self, fullname: str) -> tuple[tuple[str, frozenset[Access]], ...]:
        return (*((fullname + suffix, named) for suffix, named in self.own_named), *self.own_exact)


ARGORA, METAL, IPAM = "argora.cloud.sap", "metal.ironcore.dev", "ipam.cluster.x-k8s.io"
# Events on the objects a controller handles: kopf's and argora_common.status.post_event.
EVENTS = grants("", "events", "create")
# With the webhook on (as the reviews below install the chart), the webhook Service's EndpointSlice: read
# and server-side applied by name (argora_common.webhook_endpoint); applying creates it when missing, and
# a create names no object RBAC could check.
WEBHOOK_OWN = grants("discovery.k8s.io", "endpointslices", "create")
WEBHOOK_OWN_NAMED = (("-webhook", grants("discovery.k8s.io", "endpointslices", "get patch")),)
# The Lease electing the active replica (argora_common.peering): argora-<controller>, read and merge-patched
# by name, created by the first replica (a create names no object RBAC could check).
LEASE_OWN = grants("coordination.k8s.io", "leases", "create")


def lease_own(name: str) -> tuple[tuple[str, frozenset[Access]], ...]:
    return ((f"argora-{name}", grants("coordination.k8s.io", "leases", "get patch")),)


# Their own resources: kopf lists and watches them and, where a delete handler cleans up after them,
# merge-patches its finalizer; the passes patch their status; never a GET, never a PUT.
NEEDS = {
    "ironcore": Needs(
        # Watch indexes, server-side apply (which creates), the repair's GET, deletion when NetBox drops a BMC.
        cluster=grants(METAL, "bmcs bmcsecrets", "get list watch create patch delete"),
        namespaced=grants(ARGORA, "clusterimports", "list watch patch")
        | grants(ARGORA, "clusterimports/status", "patch")
        | EVENTS | grants("", "secrets", "get"),  # the Secret a ClusterImport names, next to it
        default_credentials=True,
        own=LEASE_OWN | WEBHOOK_OWN, own_named=WEBHOOK_OWN_NAMED, own_exact=lease_own("ironcore"),
    ),
    "metal3": Needs(
        cluster=frozenset(),
        # Clusters: Cluster API's, only our annotation is applied (no create: a vanished Cluster stays gone).
        # BareMetalHosts and their Secrets: watch indexes, apply, deletion; the named credentials: GET.
        namespaced=grants("cluster.x-k8s.io", "clusters", "list watch patch")
        | grants("metal3.io", "baremetalhosts", "list watch create patch delete")
        | grants("", "secrets", "get list watch create patch delete") | EVENTS,
        default_credentials=True,
        # The claims record (metal3_controller.claims): read, created when missing, applied.
        own=LEASE_OWN | WEBHOOK_OWN | grants("", "configmaps", "create"), own_named=WEBHOOK_OWN_NAMED,
        own_exact=(*lease_own("metal3"), ("argora-metal3-claims", grants("", "configmaps", "get patch"))),
    ),
    "update": Needs(
        cluster=frozenset(),
        namespaced=grants(ARGORA, "updates", "list watch") | grants(ARGORA, "updates/status", "patch") | EVENTS,
        own=LEASE_OWN | WEBHOOK_OWN, own_named=WEBHOOK_OWN_NAMED, own_exact=lease_own("update"),
    ),
    "ippool": Needs(
        # The pools (cluster-scoped) are listed, applied and deleted; addresses listed to see pools in use.
        cluster=grants(IPAM, "globalinclusterippools", "list create patch delete")
        | grants(IPAM, "ipaddresses", "list"),
        namespaced=grants(ARGORA, "ippoolimports", "list watch patch") | grants(ARGORA, "ippoolimports/status", "patch")
        | EVENTS,
        own=LEASE_OWN | WEBHOOK_OWN, own_named=WEBHOOK_OWN_NAMED, own_exact=lease_own("ippool"),
    ),
    "ipaddress": Needs(
        # Its passes read every namespace whatever watchNamespaces says, and post Events on what they find.
        cluster=grants(IPAM, "ipaddresses", "list watch patch")
        | grants(IPAM, "ipaddressclaims globalinclusterippools", "list")
        | grants(METAL, "serverclaims servers bmcs", "list") | EVENTS,
        namespaced=frozenset(),
        own=LEASE_OWN, own_exact=lease_own("ipaddress"),
    ),
}  # fmt: skip


def kopf_needs(limited: bool) -> Needs:
    """kopf's own: the CRD scan; limited to namespaces, the namespace scan. No peering: kopf runs
    standalone, in the replica holding the Lease."""
    cluster = grants("apiextensions.k8s.io", "customresourcedefinitions", "list watch")
    if limited:
        cluster |= grants("", "namespaces", "list watch")
    return Needs(cluster, frozenset())


# What every authenticated account may do (system:basic-user), whatever the chart grants.
BASELINE = grants("authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews", "create") | grants(
    "authentication.k8s.io", "selfsubjectreviews", "create"
)
SECRET_ACCESS = grants("", "secrets", " ".join(VERBS))
CLUSTER_WIDE, WATCHED = "cluster-wide", "watchNamespaces"
DEFAULT_SECRET = "bmc-default"


@dataclass(frozen=True)
class Release:
    """The whole chart installed in `namespace`, with defaultBmcCredentials in `credentials`."""

    namespace: str
    watched: tuple[str, str]  # watchNamespaces, when the release sets it
    unwatched: str
    credentials: str

    def user(self, name: str) -> tuple[str, list[str]]:
        return service_account_user(self.namespace, f"{self.namespace}-{name}")


@pytest.fixture(scope="module")
def releases(api_client: client.ApiClient) -> dict[str, Release]:
    """The chart installed twice: with the default values and with every controller limited to two
    namespaces; each with a default credentials Secret in a namespace no controller watches, and with the
    webhook on (the followers of NetBox's changes write its EndpointSlice in the release's namespace)."""
    core = client.CoreV1Api(api_client)
    found = {}
    for mode in (CLUSTER_WIDE, WATCHED):
        base = unique_prefix(f"rbac-{mode}")
        release = Release(base, (f"{base}-w1", f"{base}-w2"), f"{base}-other", f"{base}-creds")
        for namespace in (release.namespace, *release.watched, release.unwatched, release.credentials):
            core.create_namespace({"metadata": {"name": namespace}})
        args = [
            "--set",
            f"defaultBmcCredentials={release.credentials}/{DEFAULT_SECRET}",
            "--set",
            "webhook.enabled=true",
        ]
        if mode == WATCHED:
            watched = json.dumps(release.watched)
            args += [arg for name in CONTROLLERS for arg in ("--set-json", f"{name}.watchNamespaces={watched}")]
        docs = render(*args, release=release.namespace, namespace=release.namespace)
        create_from_manifests(api_client, docs)
        found[mode] = release
    return found


def differences(allowed: set[Access], expected: frozenset[Access]) -> dict[str, list[Access]]:
    return {"allowed but not needed": sorted(allowed - expected), "needed but denied": sorted(expected - allowed)}


NO_DIFFERENCE: dict[str, list[Access]] = {"allowed but not needed": [], "needed but denied": []}


def rule_accesses(role: dict[str, Any]) -> set[Access]:
    """What a Role's or ClusterRole's rules name, a verb at a time; resourceNames aside (none but one)."""
    return {
        (verb, group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("mode", (CLUSTER_WIDE, WATCHED))
def test_rendered_rules_name_exactly_the_needs(mode: str) -> None:
    """The rules as rendered, verb by verb, are the tables above: no grant the API server would ignore
    (a verb a resource does not serve) slips past the reviews below, and with watchNamespaces the
    namespaced needs sit in a Role per watched namespace, the default credentials in a Role of their own
    holding that one Secret, only for the controllers that read it and only outside the watched ones."""
    limited = mode == WATCHED
    args = ["--set", "defaultBmcCredentials=creds/bmc", "--set", "webhook.enabled=true"]
    if limited:
        args += [arg for name in CONTROLLERS for arg in ("--set-json", f'{name}.watchNamespaces=["w1","w2","creds"]')]
    docs = render(*args)
    for name in CONTROLLERS:
        needs, kopf = NEEDS[name], kopf_needs(limited)
        (cluster_role,) = by_component(docs, "ClusterRole")[name]
        roles = {role["metadata"]["namespace"]: role for role in by_component(docs, "Role").get(name, [])}
        # The release's namespace (argora-system): the Role of the controller's own needs there, if any.
        own = roles.pop("argora-system", None)
        own_names = needs.own_names(f"argora-{name}")
        named = frozenset().union(*(accesses for _, accesses in own_names))
        assert (own is None) == (not needs.own | named), name
        if own is not None:
            assert own["metadata"]["name"] == f"argora-{name}-own"
            assert rule_accesses(own) == needs.own | named, name
            by_names = {tuple(rule.get("resourceNames", ())) for rule in own["rules"]}
            assert by_names == {(), *((object_name,) for object_name, _ in own_names)}, name
        namespaced = kopf.namespaced | needs.namespaced
        if limited:
            assert rule_accesses(cluster_role) == kopf.cluster | needs.cluster, name
            # None where it has no namespaced needs (argora-ipaddress: kopf's peering is gone).
            assert set(roles) == ({"w1", "w2", "creds"} if namespaced else set()), name
            assert all(rule_accesses(role) == namespaced for role in roles.values()), name
        else:
            assert rule_accesses(cluster_role) == kopf.cluster | needs.cluster | namespaced, name
            assert roles == {}, name
    # The default Secret outside the watched namespaces: a Role for that one Secret.
    outside = render("--set", "defaultBmcCredentials=creds/bmc", "--set-json", 'metal3.watchNamespaces=["w1"]')
    roles = {role["metadata"]["namespace"]: role for role in by_component(outside, "Role")["metal3"]}
    assert set(roles) == {"w1", "creds", "argora-system"}  # the last: its claims record
    assert roles["creds"]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["bmc"], "verbs": ["get"]}
    ]
    beyond_own = {
        name
        for name, found in by_component(outside, "Role").items()
        if any(role["metadata"]["namespace"] != "argora-system" for role in found)
    }
    assert beyond_own == {"metal3"}


@pytest.mark.parametrize("mode", (CLUSTER_WIDE, WATCHED))
@pytest.mark.parametrize("name", CONTROLLERS)
def test_each_service_account_may_do_exactly_what_its_controller_needs(
    api_client: client.ApiClient, releases: dict[str, Release], mode: str, name: str
) -> None:
    """Every verb the API server serves on every resource (subresources too), in every namespace, in a
    watched one and in one no controller watches: the API server's authorizer allows exactly what the
    controller needs, and with watchNamespaces its namespaced needs (Secrets above all) only where it
    watches."""
    release, limited = releases[mode], mode == WATCHED
    every = served_accesses(api_client)
    assert {ARGORA, METAL, IPAM, "metal3.io", "cluster.x-k8s.io", "coordination.k8s.io"} <= {
        group for _, group, _ in every
    }
    needs, kopf = NEEDS[name], kopf_needs(limited)
    everywhere = BASELINE | kopf.cluster | needs.cluster
    watched = everywhere | kopf.namespaced | needs.namespaced
    assert watched | needs.own <= every, "the table names resources the API server does not serve"
    expected = {
        "": everywhere if limited else watched,
        release.unwatched: everywhere if limited else watched,
        # The release's own namespace, which no controller watches here: its own needs on any object there.
        release.namespace: (everywhere if limited else watched) | needs.own,
    }
    if limited:
        expected[release.watched[0]] = watched
    reviewer, user = Reviewer(api_client), release.user(name)
    for namespace, wanted in expected.items():
        assert differences(reviewer.allowed(user, namespace, every), wanted) == NO_DIFFERENCE, namespace or "cluster"
    # On its own objects by name: those needs too, on that object alone (not on another of the kind, nor
    # in another namespace).
    for object_name, named in needs.own_names(f"{release.namespace}-{name}"):
        kinds = {(g, r) for _, g, r in named}
        asked = {(verb, group, resource) for group, resource in kinds for verb in VERBS}
        base = expected[release.namespace] & asked
        assert reviewer.allowed(user, release.namespace, asked, object_name) == base | named, object_name
        assert reviewer.allowed(user, release.namespace, asked, "another") == base, object_name
        assert reviewer.allowed(user, release.unwatched, asked, object_name) == expected[release.unwatched] & asked
    # The second watched namespace has its own Role.
    assert reviewer.allowed(user, release.watched[1], watched) == watched
    # The default credentials Secret: that one is readable where it lies, no other Secret there.
    default = {("get", "", "secrets")} if needs.default_credentials else set()
    outside = watched & SECRET_ACCESS if not limited else set()
    assert reviewer.allowed(user, release.credentials, SECRET_ACCESS, DEFAULT_SECRET) == outside | default
    assert reviewer.allowed(user, release.credentials, SECRET_ACCESS, "another") == outside
    assert reviewer.allowed(user, release.credentials, SECRET_ACCESS) == outside


def test_an_account_the_chart_binds_nothing_to_may_do_only_the_baseline(
    api_client: client.ApiClient, releases: dict[str, Release]
) -> None:
    """BASELINE above is what the API server gives every account, not a hole in the tables."""
    every = served_accesses(api_client)
    user = service_account_user(releases[WATCHED].namespace, "nobody")
    assert Reviewer(api_client).allowed(user, "", every) == BASELINE


def as_account(api_client: client.ApiClient, namespace: str, account: str) -> client.CoreV1Api:
    """The core API as the ServiceAccount's own token (TokenRequest) sees it."""
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        account, namespace, {"spec": {"audiences": []}}
    )
    # A Configuration of its own: the admin's may carry a client certificate, which would win over the token.
    admin = api_client.configuration
    configuration = client.Configuration(host=admin.host, api_key={"authorization": f"Bearer {token.status.token}"})
    configuration.ssl_ca_cert, configuration.verify_ssl = admin.ssl_ca_cert, admin.verify_ssl
    return client.CoreV1Api(client.ApiClient(configuration))


def status_of(call: Callable[..., object], *args: str) -> int:
    try:
        call(*args)
    except ApiException as error:
        return int(error.status)
    return 200


def test_with_watch_namespaces_each_token_reads_secrets_only_where_it_should(
    api_client: client.ApiClient, releases: dict[str, Release]
) -> None:
    """With the controllers' own tokens: argora-ironcore reads the Secret a ClusterImport names in a
    watched namespace and the default one, and nothing else; argora-metal3 lists Secrets only in the
    namespaces it watches; argora-update reads none."""
    release = releases[WATCHED]
    core = client.CoreV1Api(api_client)
    placed = {release.watched[0]: "bmc", release.unwatched: "bmc", release.credentials: DEFAULT_SECRET}
    for namespace, name in placed.items():
        core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "stringData": {"username": "u"}})
    ironcore = as_account(api_client, release.namespace, f"{release.namespace}-ironcore")
    metal3 = as_account(api_client, release.namespace, f"{release.namespace}-metal3")
    update = as_account(api_client, release.namespace, f"{release.namespace}-update")
    assert status_of(ironcore.read_namespaced_secret, "bmc", release.watched[0]) == 200
    assert status_of(ironcore.read_namespaced_secret, DEFAULT_SECRET, release.credentials) == 200
    assert status_of(ironcore.read_namespaced_secret, "bmc", release.unwatched) == 403
    assert status_of(ironcore.list_namespaced_secret, release.watched[0]) == 403
    assert status_of(ironcore.list_secret_for_all_namespaces) == 403
    assert status_of(metal3.list_namespaced_secret, release.watched[1]) == 200
    assert status_of(metal3.read_namespaced_secret, DEFAULT_SECRET, release.credentials) == 200
    assert status_of(metal3.list_namespaced_secret, release.credentials) == 403
    assert status_of(metal3.read_namespaced_secret, "bmc", release.unwatched) == 403
    assert status_of(metal3.list_secret_for_all_namespaces) == 403
    for namespace, name in placed.items():
        assert status_of(update.read_namespaced_secret, name, namespace) == 403


def test_compose_stack_agrees_with_the_chart() -> None:
    """docker-compose.yml runs the same controllers, images and settings the chart deploys."""
    compose = yaml.safe_load((CHART.parents[1] / "docker-compose.yml").read_text())["services"]
    deployments = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in render("--set", "defaultBmcCredentials=ns/name")
        if d["kind"] == "Deployment"
    }
    for name, deployment in deployments.items():
        service = compose[f"argora-{name}"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert service["build"]["args"]["CONTROLLER"] == name
        assert container["image"].rsplit(":", 1)[0].endswith(f"/argora-{name}")
        assert service["image"].split(":")[0] == f"argora-{name}"
        chart_env = {item["name"] for item in container["env"]}
        # Compose runs one replica without peering; everything else it sets, the chart sets too.
        compose_env = {key for key in service["environment"] if key.startswith("ARGORA_")} - {"ARGORA_STANDALONE"}
        assert compose_env <= chart_env, compose_env - chart_env
        # The same NetBox token: compose's `read` or `write` file, the chart's argora-netbox-read or -write.
        token = PurePosixPath(service["environment"]["ARGORA_NETBOX_TOKEN_FILE"]).name
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["netbox-token"]["secret"]["secretName"] == f"argora-netbox-{token}", name


# Every value that adds an optional variable, set, so that each variable the chart can render is seen.
EVERY_OPTIONAL_VARIABLE = [
    "--set", "defaultBmcCredentials=ns/name",
    "--set", "netbox.caBundle.configMapName=netbox-ca",
    "--set-json", 'ironcore.bmcProtocols={"supermicro": {"name": "IPMI"}}',
    "--set-json", 'metal3.bmcAddresses={"dell": "redfish://{ip}"}',
    "--set-json", 'metal3.rootDeviceHints={"r660": {"deviceName": "/dev/sda"}}',
    "--set", "metal3.disableCertificateVerification=true",
    "--set-json", 'metal3.roleTags={"KVM": "kvm"}',
    "--set-json", 'metal3.allowedNetboxClusters={"team-a": ["rack-a-*"]}',
    "--set", "webhook.enabled=true",
]  # fmt: skip


@pytest.mark.parametrize("name", CONTROLLERS)
def test_chart_variables_are_the_settings_of_each_controller(name: str) -> None:
    """Every ARGORA_* variable a Deployment sets is a setting of its controller, and every setting a
    controller has beyond the shared ones has a chart value that sets it."""
    (deployment,) = [
        d
        for d in render(*EVERY_OPTIONAL_VARIABLE)
        if d["kind"] == "Deployment" and d["metadata"]["labels"]["app.kubernetes.io/component"] == name
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    rendered = {item["name"] for item in container["env"] if item["name"].startswith(ENV_PREFIX)}
    known = {ENV_PREFIX + field.upper() for field in SETTINGS[name].model_fields}
    own = known - {ENV_PREFIX + field.upper() for field in Settings.model_fields}
    assert rendered <= known, f"argora-{name} has no such settings: {sorted(rendered - known)}"
    assert own <= rendered, f"the chart cannot set argora-{name}'s {sorted(own - rendered)}"


@pytest.mark.parametrize("name", CONTROLLERS)
def test_chart_defaults_are_the_settings_defaults(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The variables a Deployment sets by default load (as the controller would read them) into the
    same values as the settings' own defaults: values.yaml and the settings do not drift apart, and
    nothing is lost in rendering (quoting of a regex, a list joined with commas)."""
    (deployment,) = [
        d
        for d in render()
        if d["kind"] == "Deployment" and d["metadata"]["labels"]["app.kubernetes.io/component"] == name
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"] if item["name"].startswith(ENV_PREFIX)}
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # The mounted Secret, replaced by a stand-in.
    token_file = tmp_path / "token"
    token_file.write_text("nbt_abc.def\n")
    monkeypatch.setenv("ARGORA_NETBOX_TOKEN_FILE", str(token_file))
    settings = SETTINGS[name]()
    fields = SETTINGS[name].model_fields
    set_by_chart = {key.removeprefix(ENV_PREFIX).lower() for key in env} - {
        "netbox_url",
        "netbox_token_file",
        "own_namespace",
    }
    differing = {
        field: getattr(settings, field)
        for field in set_by_chart
        if getattr(settings, field) != fields[field].get_default(call_default_factory=True)
    }
    assert not differing, f"argora-{name}: the chart's defaults differ from the settings' {differing}"


@pytest.mark.parametrize("name", CHANGE_FOLLOWERS)
def test_webhook_variables_load_into_the_settings(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With the webhook on, the Deployment's variables load (as the controller would read them) into a
    webhook on the chart's port with the mounted secret, and the change log polled as set."""
    (deployment,) = by_component(
        render("--set", "webhook.enabled=true", "--set", f"{name}.netboxChanges.intervalSeconds=30"), "Deployment"
    )[name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"] if item["name"].startswith(ENV_PREFIX)}
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    # The mounted Secrets, replaced by stand-ins.
    files = {"ARGORA_NETBOX_TOKEN_FILE": "nbt_abc.def\n", "ARGORA_WEBHOOK_SECRET_FILE": "hook-secret\n"}
    for key, content in files.items():
        (tmp_path / key).write_text(content)
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / key) if key in files else value)
    settings = SETTINGS[name]()
    assert settings.webhook_port == 8081
    assert settings.webhook_service == f"argora-{name}-webhook"
    assert settings.webhook_secret_file == tmp_path / "ARGORA_WEBHOOK_SECRET_FILE"
    assert env["ARGORA_WEBHOOK_SECRET_FILE"] == WEBHOOK_SECRET_FILE
    assert (settings.netbox_changes_interval, settings.netbox_full_read_interval_seconds) == (30, 3600)
