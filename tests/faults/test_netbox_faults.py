"""Scenarios 1 to 3: NetBox failing in the middle of the reads of argora-ironcore and argora-metal3, each with
the 1,000 devices of the fault inventory imported.

1. The HTTP fault layer answers 500, 502 or 429 (with Retry-After) instead of NetBox for a share of the
   pages (page size 100: ten pages per list) for a while.
2. Toxiproxy slows every NetBox answer by 2 s (the pass still completes), then hangs every request past
   the timeout (the pass fails within the timeout times the attempts).
3. Toxiproxy cuts connections in the middle of a response (limit_data).

While each fault lasts NetBox holds changes a pass would write (the devices' site moved to another region), so a pass
that wrongly completed on a partial read would show as writes, deleted objects or lost ones. After the
fault: no object was deleted or made again (same uids), none is duplicated, the status said NetBox was
unavailable, and the next pass converges (every object's region label follows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from argora_dev.faults import TABLE, FaultRow, FaultyNetBox, HttpFault, Tally, uids
from argora_dev.kubeobjects import Clusters, Objects, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess
from argora_dev.seed import NetBoxSeeder
from argora_dev.toxiproxy import Proxy, Toxiproxy
from tests.faults.conftest import INVENTORY, Inventory, converged

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LABEL_PREFIX = "kubernetes.metal.cloud.sap"
NETBOX_CLUSTER = "argora.cloud.sap/netbox-cluster"
REGION_LABEL = "topology.kubernetes.io/region"
FAULT_SECONDS = 40
TIMEOUT_SECONDS = 30  # the default: NetBox on a busy machine may take 10 s for a page
RETRIES = 3
# Ten pages per list: a fault hits some pages of a read, not the whole read.
PAGE_SIZE = 100
FIRST_PASS_TIMEOUT = 600


@dataclass
class Subject:
    """One controller's side of a scenario: its resource, its objects and what its status says."""

    controller: str
    namespace: str
    objects: Objects
    clusters: Clusters
    operator: OperatorProcess

    def create(self, netbox_cluster: str) -> None:
        if self.controller == "ironcore":
            spec = {"clusters": [{"name": netbox_cluster, "bmcCredentialsRef": {"name": "bmc"}}]}
            self.objects.create_import(self.namespace, "import", spec)
        else:
            self.clusters.create(self.namespace, "capi", annotations={NETBOX_CLUSTER: netbox_cluster})

    def written(self) -> dict[str, dict[str, Any]]:
        """The objects the controller made for the resource, keyed by kind/name."""
        if self.controller == "ironcore":
            return {
                f"{kind}/{name}": obj
                for kind, plural in (("BMC", "bmcs"), ("BMCSecret", "bmcsecrets"))
                for name, obj in self.objects.owned(plural, self.namespace, "import").items()
            }
        hosts = {f"BareMetalHost/{name}": host for name, host in self.clusters.hosts(self.namespace).items()}
        secrets = self.clusters.core.list_namespaced_secret(
            self.namespace, label_selector="app.kubernetes.io/managed-by=argora-metal3"
        ).items
        return {
            **hosts,
            **{
                f"Secret/{s.metadata.name}": {"metadata": {"uid": s.metadata.uid, "labels": s.metadata.labels or {}}}
                for s in secrets
            },
        }

    def failure(self) -> str | None:
        """The reason the last pass failed, or None when it completed."""
        if self.controller == "ironcore":
            status = (self.objects.get_import(self.namespace, "import") or {}).get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
            return None if ready is None or ready["status"] == "True" else str(ready["reason"])
        summary = self.clusters.sync_status(self.namespace, "capi") or {}
        return summary.get("error")

    def passes(self) -> float:
        """Passes the controller finished so far, failed ones included (its own histogram)."""
        return self.operator.metric("argora_reconcile_duration_seconds_count")

    def request_pass(self) -> float:
        """Ask for a pass, as a user does with the sync annotation; returns the passes finished before."""
        done = self.passes()
        if self.controller == "ironcore":
            self.objects.request_sync(self.namespace, "import")
        else:
            annotation = {"argora.cloud.sap/sync-requested": str(time.time())}
            self.clusters.patch(self.namespace, "capi", {"metadata": {"annotations": annotation}})
        return done

    def passed_after(self, done: float) -> bool:
        return self.passes() > done


def identity(obj: Mapping[str, Any]) -> str:
    labels = obj["metadata"].get("labels") or {}
    kind = obj.get("kind") or ("Secret" if "spec" not in obj else "?")
    return f"{kind}/{labels.get(f'{LABEL_PREFIX}/device-id') or labels.get(f'{LABEL_PREFIX}/name')}"


def shown(subject: Subject) -> dict[str, str]:
    """Device name → the region label of its object (BMC or BareMetalHost)."""
    found: dict[str, str] = {}
    for key, obj in subject.written().items():
        if key.startswith(("BMC/", "BareMetalHost/")):
            labels = obj["metadata"].get("labels") or {}
            found[labels.get(f"{LABEL_PREFIX}/name", "")] = labels.get(REGION_LABEL, "")
    return found


def change_devices(seeder: NetBoxSeeder, inventory: Inventory, subject: Subject) -> dict[str, str]:
    """Move the inventory's site to a new region: every object's region label must follow (labels are
    written on every pass; a BMC's address is immutable and only reported as drift). Device name → the
    region its object must then show."""
    slug = f"{subject.namespace[:40]}-{int(time.time() * 1000) % 100000}"
    region = seeder.create_one("dcim/regions", name=slug, slug=slug)
    (site,) = seeder.get("dcim/sites", slug=f"{INVENTORY}-site")
    seeder.update("dcim/sites", site["id"], region=region["id"])
    return dict.fromkeys(inventory.devices, slug)


def shows(subject: Subject, changed: Mapping[str, str]) -> bool:
    now = shown(subject)
    return all(now.get(name) == value for name, value in changed.items())


@pytest.fixture(scope="module")
def clusters(api_client: Any) -> Clusters:
    return Clusters(api_client)


@pytest.fixture
def netbox_proxy(toxiproxy: Toxiproxy, netbox: NetBoxServer, prefix: str) -> Iterator[Proxy]:
    proxy = toxiproxy.proxy(prefix, netbox.url.removeprefix("http://"))
    yield proxy
    proxy.set_enabled(False)


def start(
    start_controller: Callable[..., OperatorProcess],
    controller: str,
    namespace: str,
    netbox_url: str,
    objects: Objects,
    clusters: Clusters,
) -> Subject:
    """argora-<controller> for the test's namespace only, reading NetBox at `netbox_url`."""
    env = {
        "ARGORA_NETBOX_URL": netbox_url,
        "ARGORA_NAMESPACES": namespace,
        "ARGORA_NETBOX_PAGE_SIZE": str(PAGE_SIZE),
        "ARGORA_NETBOX_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "ARGORA_NETBOX_RETRIES": str(RETRIES),
        "ARGORA_RETRY_BASE_SECONDS": "2",
        "ARGORA_RETRY_MAX_SECONDS": "8",
    }
    if controller == "metal3":
        env["ARGORA_DEFAULT_BMC_CREDENTIALS"] = f"{namespace}/bmc"
    return Subject(controller, namespace, objects, clusters, start_controller(controller, env))


def imported(subject: Subject, inventory: Inventory) -> dict[str, dict[str, Any]]:
    """The first full pass: two objects per device."""
    subject.create(inventory.cluster)
    expected = 2 * len(inventory.devices)
    wait_for(
        lambda: len(subject.written()) >= expected and subject.passes() and subject.failure() is None,
        FIRST_PASS_TIMEOUT,
        f"{expected} objects of argora-{subject.controller}",
    )
    return subject.written()


@dataclass
class FaultWindow:
    """What happened while a fault lasted: passes asked for, those that failed, and their reasons."""

    requested: int = 0
    failed: int = 0
    reasons: frozenset[str] = frozenset()


def passes_during(subject: Subject, seconds: float, pass_timeout: float) -> FaultWindow:
    """Ask for passes one after the other for `seconds`; each is waited for (up to `pass_timeout`)."""
    window = FaultWindow()
    reasons: set[str] = set()
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        done = subject.request_pass()
        window.requested += 1
        wait_for(partial(subject.passed_after, done), pass_timeout, "a pass during the fault")
        if (reason := subject.failure()) is not None:
            window.failed += 1
            reasons.add(reason)
    window.reasons = frozenset(reasons)
    return window


def after_fault(
    subject: Subject,
    before: dict[str, dict[str, Any]],
    changed: Mapping[str, str],
    written_before: float,
    scenario: str,
    window: FaultWindow,
    note: str,
) -> None:
    """The fault has ended: the next pass converges; count and record what the fault cost."""
    written_during = subject.operator.metric("argora_objects_written_total") - written_before
    healed = time.monotonic()
    previous = subject.request_pass()
    converged(
        lambda: subject.passed_after(previous) and subject.failure() is None and shows(subject, changed),
        FIRST_PASS_TIMEOUT,
        "the pass after the fault",
    )
    seconds = time.monotonic() - healed
    after = subject.written()
    tally = Tally(set(before), uids(before), after, identity)
    TABLE.add(
        FaultRow.of(
            scenario, f"argora-{subject.controller}", tally, seconds, int(written_during),
            f"{window.failed} of {window.requested} passes failed ({', '.join(sorted(window.reasons)) or '-'}); {note}",
        )
    )  # fmt: skip
    assert (tally.present, tally.lost, tally.duplicated) == (len(before), 0, 0)
    assert "Traceback" not in subject.operator.log()


@pytest.mark.parametrize("controller", ["ironcore", "metal3"])
def test_http_errors_on_some_pages_lose_nothing(
    controller: str,
    objects: Objects,
    clusters: Clusters,
    inventory: Inventory,
    faulty_netbox: FaultyNetBox,
    start_controller: Callable[..., OperatorProcess],
    seeder: NetBoxSeeder,
    namespace: str,
    credentials_secret: str,
    clean_bmcs: None,
) -> None:
    subject = start(start_controller, controller, namespace, faulty_netbox.url, objects, clusters)
    before = imported(subject, inventory)
    written_before = subject.operator.metric("argora_objects_written_total")

    # Half the pages answered with an error: with three attempts per request, most passes fail on one.
    faulty_netbox.set_fault(HttpFault(share=0.5, retry_after=1))
    fault_started = time.monotonic()
    changed = change_devices(seeder, inventory, subject)
    window = passes_during(subject, FAULT_SECONDS, pass_timeout=300)
    faulty_netbox.set_fault(None)
    faulted = faulty_netbox.count(fault_started, faulted=True)

    assert window.failed >= 1, "no pass failed: the fault was too mild to show anything"
    assert window.reasons <= {"NetBoxUnavailable"}, window.reasons
    after_fault(
        subject, before, changed, written_before, "1. NetBox 500/502/429 on pages", window,
        f"{faulted} answers faulted",
    )  # fmt: skip


@pytest.mark.parametrize("controller", ["ironcore", "metal3"])
def test_slow_netbox_then_a_hang_fails_within_the_timeout(
    controller: str,
    objects: Objects,
    clusters: Clusters,
    inventory: Inventory,
    netbox_proxy: Proxy,
    start_controller: Callable[..., OperatorProcess],
    seeder: NetBoxSeeder,
    namespace: str,
    credentials_secret: str,
    clean_bmcs: None,
) -> None:
    subject = start(start_controller, controller, namespace, netbox_proxy.url(), objects, clusters)
    before = imported(subject, inventory)
    written_before = subject.operator.metric("argora_objects_written_total")
    changed = change_devices(seeder, inventory, subject)

    # 2 s per answer: slower than usual, well inside the timeout: the pass completes.
    netbox_proxy.add_toxic("slow", "latency", {"latency": 2000})
    slow_started = time.monotonic()
    previous = subject.request_pass()
    wait_for(lambda: subject.passed_after(previous) or None, 600, "a pass through the slow NetBox")
    slow_seconds = time.monotonic() - slow_started
    assert subject.failure() is None
    assert shows(subject, changed)

    # Then nothing answers at all: each attempt ends at the timeout, the pass after the last attempt.
    changed = change_devices(seeder, inventory, subject)
    written_before = subject.operator.metric("argora_objects_written_total")
    # Held on the way to NetBox: it never sees the request nor closes the connection, so each attempt
    # waits out the timeout (dropping only the answers would end at NetBox's close after answering).
    netbox_proxy.add_toxic("hang", "timeout", {"timeout": 0}, stream="upstream")
    hang_started = time.monotonic()
    previous = subject.request_pass()
    bound = TIMEOUT_SECONDS * RETRIES * 4  # generous: attempts, backoff between them, and the pass itself
    wait_for(lambda: subject.passed_after(previous) or None, bound, "the pass to give up on the hanging NetBox")
    failed_after = time.monotonic() - hang_started
    assert subject.failure() == "NetBoxUnavailable"
    netbox_proxy.remove_toxic("hang")
    netbox_proxy.remove_toxic("slow")
    after_fault(
        subject, before, changed, written_before, "2. NetBox slow + one request hanging",
        FaultWindow(1, 1, frozenset({"NetBoxUnavailable"})),
        f"pass at 2 s per answer took {slow_seconds:.0f} s; the hanging pass failed after {failed_after:.0f} s"
        f" (timeout {TIMEOUT_SECONDS} s, {RETRIES} attempts)",
    )  # fmt: skip


@pytest.mark.parametrize("controller", ["ironcore", "metal3"])
def test_connections_cut_mid_page_lose_nothing(
    controller: str,
    objects: Objects,
    clusters: Clusters,
    inventory: Inventory,
    netbox_proxy: Proxy,
    start_controller: Callable[..., OperatorProcess],
    seeder: NetBoxSeeder,
    namespace: str,
    credentials_secret: str,
    clean_bmcs: None,
) -> None:
    subject = start(start_controller, controller, namespace, netbox_proxy.url(), objects, clusters)
    before = imported(subject, inventory)
    written_before = subject.operator.metric("argora_objects_written_total")

    # Half the connections are closed after 20 kB: in the middle of a page of 100 devices.
    netbox_proxy.add_toxic("cut", "limit_data", {"bytes": 20_000}, toxicity=0.5)
    changed = change_devices(seeder, inventory, subject)
    window = passes_during(subject, FAULT_SECONDS, pass_timeout=300)
    netbox_proxy.remove_toxic("cut")

    assert window.reasons <= {"NetBoxUnavailable"}, window.reasons
    after_fault(
        subject, before, changed, written_before, "3. connection reset mid-page", window,
        "half the connections cut after 20 kB",
    )  # fmt: skip
