"""Scenarios 1 to 3 for the IP controllers: NetBox failing in the middle of the reads of argora-ippool (300
production-shaped prefixes behind one IPPoolImport) and argora-ipaddress (120 IPAddresses written back).

1. The HTTP fault layer answers 500, 502 or 429 (with Retry-After) instead of NetBox for a share of the
   pages (small pages: several per list) for a while.
2. Toxiproxy slows every NetBox answer by 2 s (the pass still completes), then hangs every request past
   the timeout (the pass fails within the timeout times the attempts).
3. Toxiproxy cuts connections in the middle of a response (limit_data).

While each fault lasts, the world changes in ways a pass that trusted a partial read would get wrong:
argora-ippool's NetBox loses a few prefixes and gains a few (a partial read of the prefixes would prune
pools whose prefixes are still there); argora-ipaddress sees IPAddresses released and new ones handed out,
and one released NetBox address moved by hand (a release must read it again and keep it). After the fault:
no pool or NetBox address was deleted or made again that should have stayed, none is duplicated, the status
said NetBox was unavailable, and the next pass converges.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client

from argora_dev.faults import TABLE, FaultRow, FaultyNetBox, HttpFault, Tally, uids
from argora_dev.kubeobjects import IPAM_POOLS, Machines, Objects, Pools, ipaddress_state, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess
from argora_dev.seed import NetBoxSeeder, PrefixSeed, add_prefixes, add_region, fresh_network
from argora_dev.toxiproxy import Proxy, Toxiproxy
from tests.faults.conftest import Inventory, converged

# A scenario is a first full pass, the fault and the pass after it: on a loaded machine argora-ipaddress's
# first pass alone (each address written, then made primary) takes minutes.
pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(2400)]

LABEL_PREFIX = "kubernetes.metal.cloud.sap"
KIND = "IPPoolImport"
SYNC = "argora.cloud.sap/sync-status"
FAULT_SECONDS = 40
TIMEOUT_SECONDS = 10
RETRIES = 3
# Small pages: each list of a read is several pages, so a fault hits some pages of a read, not all.
PAGE_SIZE = 20
FIRST_PASS_TIMEOUT = 600
PASS_TIMEOUT = 300

# argora-ippool: one selector per role, a prefix of each role at each site of two regions.
ROLES = ("bmc", "kubernetes-nodes", "kubernetes-compute-transit", "storage", "management", "services")
SITES_PER_REGION = 25
CHANGED_PREFIXES = 3  # prefixes deleted, and new ones added, while a fault lasts

# argora-ipaddress: machines on devices of the fault inventory, a slice of their own per test.
MACHINES = 120
RELEASED = 4  # IPAddresses deleted while a fault lasts: their NetBox addresses go
ADDED = 4  # IPAddresses handed out while a fault lasts: their NetBox addresses come


def env_for(netbox_url: str, **extra: str) -> dict[str, str]:
    return {
        "ARGORA_NETBOX_URL": netbox_url,
        "ARGORA_NETBOX_PAGE_SIZE": str(PAGE_SIZE),
        "ARGORA_NETBOX_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "ARGORA_NETBOX_RETRIES": str(RETRIES),
        "ARGORA_RETRY_BASE_SECONDS": "2",
        "ARGORA_RETRY_MAX_SECONDS": "8",
        **extra,
    }


class Subject(Protocol):
    """One controller's side of a scenario, as a user looks at it."""

    controller: str
    operator: OperatorProcess

    def change_during_fault(self) -> None:
        """Change the world as a pass that trusted a partial read would get wrong."""
        ...

    def failure(self) -> str | None:
        """Why the last pass failed, as the controller reports it; None when it completed."""
        ...

    def request_pass(self) -> None: ...

    def converged(self) -> bool:
        """The objects and the status are what the changed world asks for."""
        ...

    def violations(self) -> list[str]:
        """What must never be seen, not even while a fault lasts (a pool or address wrongly deleted)."""
        ...

    def tally(self) -> Tally: ...


def passes(subject: Subject) -> float:
    """Passes the controller finished so far, failed ones included (its own histogram)."""
    return subject.operator.metric("argora_reconcile_duration_seconds_count")


def written(subject: Subject) -> float:
    return subject.operator.metric("argora_objects_written_total")


def next_pass(subject: Subject, timeout: float = PASS_TIMEOUT) -> None:
    """Ask for a pass and wait until one more has finished."""
    done = passes(subject)
    subject.request_pass()
    wait_for(lambda: passes(subject) > done, timeout, f"a pass of argora-{subject.controller}")


@dataclass
class FaultWindow:
    """What happened while a fault lasted: passes, those that failed, their reasons, what was seen."""

    passes: int = 0
    failed: int = 0
    reasons: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def note(self) -> str:
        return f"{self.failed} of {self.passes} passes failed ({', '.join(sorted(self.reasons)) or '-'})"


def passes_during(subject: Subject, seconds: float, window: FaultWindow) -> None:
    """Ask for passes one after the other for `seconds`, and after each look at what the user sees."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        next_pass(subject)
        window.passes += 1
        if (reason := subject.failure()) is not None:
            window.failed += 1
            window.reasons.add(reason)
        window.violations.extend(subject.violations())


def after_fault(subject: Subject, written_before: float, scenario: str, window: FaultWindow, note: str) -> None:
    """The fault has ended: the next pass converges; count and record what the fault cost."""
    written_during = written(subject) - written_before
    subject.request_pass()
    seconds = converged(subject.converged, FIRST_PASS_TIMEOUT, f"argora-{subject.controller} after the fault")
    tally = subject.tally()
    TABLE.add(
        FaultRow.of(
            scenario, f"argora-{subject.controller}", tally, seconds, int(written_during), f"{window.note()}; {note}"
        )
    )
    assert not window.violations, window.violations[:10]
    assert (tally.present, tally.lost, tally.duplicated) == (len(tally.expected), 0, 0)
    assert "Traceback" not in subject.operator.log()


# ---- argora-ippool -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefixInventory:
    """The prefixes every argora-ippool scenario selects: a prefix per role at each site, a quarter scoped to
    a location of the site, each with a VLAN, the BMC networks with their gateway in the custom field."""

    roles: Mapping[str, Mapping[str, Any]]  # our role name -> NetBox role
    region: Mapping[str, Any]
    prefix_ids: Sequence[int]


@pytest.fixture(scope="module")
def prefix_inventory(netbox: NetBoxServer) -> PrefixInventory:
    seeder = NetBoxSeeder(netbox.url, netbox.api_headers(netbox.v2_token))
    slug = "ipf"
    sites: list[dict[str, Any]] = []
    regions = []
    for number in (1, 2):
        region, made = add_region(seeder, f"{slug}{number}", SITES_PER_REGION)
        regions.append(region)
        sites.extend(made)
    locations = seeder.create(
        "dcim/locations",
        [{"name": "hall1", "slug": f"{site['slug']}-hall1", "site": site["id"], "status": "active"} for site in sites],
    )
    made_roles = seeder.create("ipam/roles", [{"name": f"{slug}-{role}", "slug": f"{slug}-{role}"} for role in ROLES])
    seeds = [
        PrefixSeed(
            str(fresh_network()),
            site,
            location=location if (r + s) % 4 == 0 else None,
            role=role,
            # The transit VLANs carry the compute block the pool name is made of.
            vlan=(100 + r, f"{site['slug']}-{'compute1-transit' if 'transit' in name else name}"),
            gateway=None,
        )
        for s, (site, location) in enumerate(zip(sites, locations, strict=True))
        for r, (name, role) in enumerate(zip(ROLES, made_roles, strict=True))
    ]
    # The BMC networks name their gateway (the last host) in the custom field.
    seeds = [
        PrefixSeed(seed.prefix, seed.site, seed.location, seed.role, seed.vlan,
                   str(ipaddress.ip_network(seed.prefix)[-2]) if seed.role is made_roles[0] else None)
        for seed in seeds
    ]  # fmt: skip
    created = add_prefixes(seeder, seeds)
    return PrefixInventory(dict(zip(ROLES, made_roles, strict=True)), regions[0], [p["id"] for p in created])


@dataclass
class PoolSubject:
    controller: str
    operator: OperatorProcess
    objects: Objects
    pools: Pools
    seeder: NetBoxSeeder
    inventory: PrefixInventory
    namespace: str
    prefix: str
    before: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)  # pools whose prefixes left NetBox during the fault
    added: set[str] = field(default_factory=set)  # pools of prefixes NetBox gained during the fault
    new_sites: list[dict[str, Any]] = field(default_factory=list)

    def selectors(self) -> list[dict[str, str]]:
        return [{"namePrefix": f"{self.prefix}-{role}", "role": r["slug"]} for role, r in self.inventory.roles.items()]

    def owned(self) -> dict[str, dict[str, Any]]:
        return self.pools.owned(self.namespace, "pools")

    def status(self) -> dict[str, Any]:
        return (self.objects.get_import(self.namespace, "pools", KIND) or {}).get("status") or {}

    def conditions(self) -> dict[str, dict[str, Any]]:
        return {c["type"]: c for c in self.status().get("conditions") or []}

    def remove_pools(self) -> None:
        """The next test's IPPoolImport selects the same prefixes: pools of this one left holding them would
        give it none (PrefixInOtherPool). Its argora-ippool stops first, so that none comes back."""
        self.operator.stop()
        for name in self.owned():
            self.pools.custom.delete_cluster_custom_object(*IPAM_POOLS, "globalinclusterippools", name)

    def first_sync(self) -> None:
        self.objects.create_import(self.namespace, "pools", {"ippools": self.selectors()}, kind=KIND)
        expected = len(self.inventory.prefix_ids)
        wait_for(
            lambda: len(self.owned()) >= expected and self.failure() is None and self.status().get("counts"),
            FIRST_PASS_TIMEOUT,
            f"{expected} pools of argora-ippool",
        )
        self.before = self.owned()
        # The sites the prefixes NetBox gains during the fault are scoped to (not what the test is about).
        self.new_sites = self.seeder.create(
            "dcim/sites",
            [
                {"name": f"{self.prefix}-new{i}", "slug": f"{self.prefix}-new{i}", "status": "active",
                 "region": self.inventory.region["id"]}
                for i in range(CHANGED_PREFIXES)
            ],
        )  # fmt: skip

    def change_during_fault(self) -> None:
        """NetBox loses some prefixes (their pools may go) and gains others (their pools must come)."""
        by_prefix = {int(pool["metadata"]["labels"][f"{LABEL_PREFIX}/prefix-id"]): name for name, pool in
                     self.before.items()}  # fmt: skip
        gone = sorted(by_prefix)[: CHANGED_PREFIXES * 7 : 7]
        self.seeder.delete("ipam/prefixes", gone)
        self.deleted = {by_prefix[prefix_id] for prefix_id in gone}
        role = self.inventory.roles["storage"]
        add_prefixes(self.seeder, [PrefixSeed(str(fresh_network()), site, role=role) for site in self.new_sites])
        self.added = {f"{self.prefix}-storage-{site['slug']}" for site in self.new_sites}

    def failure(self) -> str | None:
        conditions = self.conditions()
        ready = conditions.get("Ready")
        if ready is None or ready["status"] == "True":
            return None
        reachable = conditions.get("NetBoxReachable", {}).get("status")
        return str(ready["reason"]) + ("" if reachable == "False" else f" (NetBoxReachable {reachable})")

    def request_pass(self) -> None:
        self.objects.request_sync(self.namespace, "pools", KIND)

    def expected(self) -> set[str]:
        return (set(self.before) - self.deleted) | self.added

    def converged(self) -> bool:
        conditions = self.conditions()
        return (
            all(conditions.get(kind, {}).get("status") == "True" for kind in ("Ready", "NetBoxReachable"))
            and set(self.owned()) == self.expected()
        )

    def violations(self) -> list[str]:
        now = uids(self.owned())
        kept = {name: uid for name, uid in uids(self.before).items() if name not in self.deleted}
        return [f"pool {name} {'made again' if name in now else 'deleted'}" for name, uid in kept.items()
                if now.get(name) != uid]  # fmt: skip

    def tally(self) -> Tally:
        kept = {name: uid for name, uid in uids(self.before).items() if name not in self.deleted}
        return Tally(self.expected(), kept, self.owned(), lambda pool: pool["metadata"]["labels"][
            f"{LABEL_PREFIX}/prefix-id"])  # fmt: skip


# ---- argora-ipaddress ----------------------------------------------------------------------------


# Each scenario takes devices of its own from the fault inventory: their LAGs, BMCs and primary IPs.
_next_slice = iter(range(1000))


@dataclass
class AddressSubject:
    controller: str
    operator: OperatorProcess
    machines: Machines
    seeder: NetBoxSeeder
    namespace: str
    pool: str
    network: ipaddress.IPv4Network
    devices: list[tuple[str, int]]  # MACHINES + ADDED (name, NetBox id): the first MACHINES from the start
    before: dict[str, int] = field(default_factory=dict)  # IPAddress name -> NetBox address id
    released: set[str] = field(default_factory=set)
    moved: str = ""  # released after someone moved its NetBox address by hand: it stays
    added: set[str] = field(default_factory=set)

    def host(self, index: int) -> str:
        return str(self.network.network_address + 10 + index)

    def names(self) -> dict[str, str]:
        """Host -> the IPAddress name it was handed out under."""
        return {self.host(index): f"m{index:03d}" for index in range(len(self.devices))}

    def netbox_addresses(self) -> list[dict[str, Any]]:
        return self.seeder.get("ipam/ip-addresses", parent=str(self.network))

    def add_machines(self, indexes: Sequence[int]) -> None:
        def add(index: int) -> None:
            name, device_id = self.devices[index]
            self.machines.server(name, {f"{LABEL_PREFIX}/device-id": str(device_id)})
            self.machines.claim(self.namespace, f"m{index:03d}", name, self.pool)
            self.machines.address(self.namespace, f"m{index:03d}", self.pool, self.host(index), 24)

        with ThreadPoolExecutor(max_workers=8) as executor:
            list(executor.map(add, indexes))

    def states(self) -> Counter[str]:
        return Counter(ipaddress_state(a) for a in self.machines.list_addresses(self.namespace))

    def first_sync(self) -> None:
        wait_for(
            lambda: self.states() == {"Synced": MACHINES} and len(self.netbox_addresses()) == MACHINES,
            FIRST_PASS_TIMEOUT,
            f"{MACHINES} IPAddresses of argora-ipaddress Synced",
        )
        names = self.names()
        self.before = {names[a["address"].split("/")[0]]: a["id"] for a in self.netbox_addresses()}

    def change_during_fault(self) -> None:
        """Machines released and new ones handed out; one released address had been moved by hand."""
        self.released = {f"m{index:03d}" for index in range(RELEASED)}
        self.moved = f"m{RELEASED:03d}"
        (address,) = self.seeder.get("ipam/ip-addresses", id=self.before[self.moved])
        device_id = self.devices[RELEASED][1]
        (lag1,) = self.seeder.get("dcim/interfaces", device_id=device_id, name="LAG1")
        self.seeder.update("ipam/ip-addresses", address["id"], assigned_object_id=lag1["id"])
        for name in [*self.released, self.moved]:
            self.machines.delete_address(self.namespace, name)
        self.add_machines(range(MACHINES, MACHINES + ADDED))
        self.added = {f"m{index:03d}" for index in range(MACHINES, MACHINES + ADDED)}

    def failure(self) -> str | None:
        for item in self.machines.list_addresses(self.namespace):
            status = (item["metadata"].get("annotations") or {}).get(SYNC, "")
            if "state=Error" in status:
                return str(status.split("reason=", 1)[-1].split(",", 1)[0])
        return None

    def request_pass(self) -> None:
        """Passes come by themselves: after every change of an IPAddress, every resync (10 s here) and after
        a failed pass's delay."""

    def expected(self) -> set[str]:
        """The IPAddresses whose NetBox address should be there (the moved one's too: it is kept)."""
        return (set(self.before) - self.released) | self.added

    def kept(self) -> dict[str, str]:
        return {name: str(address_id) for name, address_id in self.before.items() if name not in self.released}

    def by_name(self) -> dict[str, dict[str, Any]]:
        """The NetBox addresses by the IPAddress name of their host; a second one of a host under name~id."""
        names = self.names()
        found: dict[str, dict[str, Any]] = {}
        for address in sorted(self.netbox_addresses(), key=lambda a: a["id"]):
            name = names.get(address["address"].split("/")[0], address["address"])
            key = name if name not in found else f"{name}~{address['id']}"
            found[key] = {"metadata": {"uid": str(address["id"])}, "address": address["address"]}
        return found

    def converged(self) -> bool:
        live = {a["metadata"]["name"] for a in self.machines.list_addresses(self.namespace)}
        expected_live = ({f"m{index:03d}" for index in range(MACHINES)} - self.released - {self.moved}) | self.added
        return (
            self.states() == {"Synced": len(expected_live)}
            and live == expected_live
            and set(self.by_name()) == self.expected()
        )

    def violations(self) -> list[str]:
        now = self.by_name()
        uid_now = {name: address["metadata"]["uid"] for name, address in now.items()}
        problems = [
            f"NetBox address of {name} {'made again' if name in now else 'deleted'}"
            for name, uid in self.kept().items()
            if uid_now.get(name) != uid
        ]
        return problems + [f"NetBox holds {key.split('~')[0]} twice" for key in now if "~" in key]

    def tally(self) -> Tally:
        return Tally(self.expected(), self.kept(), self.by_name(), lambda address: str(address["address"]))


# ---- the scenarios -------------------------------------------------------------------------------


type MakeSubject = Callable[[str, str], Subject]


@pytest.fixture
def make_subject(
    request: pytest.FixtureRequest,
    netbox: NetBoxServer,
    inventory: Inventory,
    api_client: client.ApiClient,
    objects: Objects,
    seeder: NetBoxSeeder,
    start_controller: Callable[..., OperatorProcess],
    namespace: str,
    prefix: str,
) -> MakeSubject:
    """argora-<controller> for the test's namespace, reading NetBox at the URL given, with its objects
    made by a first full pass."""

    def make(controller: str, netbox_url: str) -> Subject:
        subject: PoolSubject | AddressSubject
        if controller == "ippool":
            prefixes: PrefixInventory = request.getfixturevalue("prefix_inventory")
            operator = start_controller("ippool", env_for(netbox_url, ARGORA_NAMESPACES=namespace))
            subject = PoolSubject("ippool", operator, objects, Pools(api_client), seeder, prefixes, namespace, prefix)
            request.addfinalizer(subject.remove_pools)
        else:
            subject = address_subject(netbox, inventory, api_client, seeder, start_controller, namespace, prefix,
                                      netbox_url)  # fmt: skip
        subject.first_sync()
        return subject

    return make


def address_subject(
    netbox: NetBoxServer,
    inventory: Inventory,
    api_client: client.ApiClient,
    seeder: NetBoxSeeder,
    start_controller: Callable[..., OperatorProcess],
    namespace: str,
    prefix: str,
    netbox_url: str,
) -> AddressSubject:
    """MACHINES machines of Argora's chain (BMC, Server, ServerClaim, IPAddressClaim, IPAddress) on devices of
    the fault inventory given LAG1 and LAG2, out of one pool whose network NetBox holds as a prefix."""
    count = MACHINES + ADDED
    first = next(_next_slice) * count
    devices = sorted(inventory.devices.items())[first : first + count]
    seeder.create(
        "dcim/interfaces",
        [{"device": device_id, "name": lag, "type": "lag"} for _, device_id in devices for lag in ("LAG1", "LAG2")],
    )
    network = fresh_network()
    seeder.create_one("ipam/prefixes", prefix=str(network))
    pool = f"{prefix}-pool"
    Pools(api_client).create(
        pool, {"addresses": [str(network)], "prefix": 24, "gateway": str(network.network_address + 1)}
    )
    env = env_for(
        netbox_url,
        ARGORA_NETBOX_TOKEN=netbox.v2_token,
        # Each scenario's argora-ipaddress covers only its own pool and its own NetBox addresses.
        ARGORA_POOL_SCOPE="argora",
        ARGORA_POOL_NAMES=pool,
        ARGORA_CREATED_TAG=prefix,
        ARGORA_RESYNC_INTERVAL_SECONDS="10",
    )
    subject = AddressSubject(
        "ipaddress", start_controller("ipaddress", env), Machines(api_client), seeder, namespace, pool, network, devices
    )
    subject.add_machines(range(MACHINES))
    return subject


@pytest.fixture
def netbox_proxy(toxiproxy: Toxiproxy, netbox: NetBoxServer, prefix: str) -> Iterator[Proxy]:
    proxy = toxiproxy.proxy(prefix, netbox.url.removeprefix("http://"))
    yield proxy
    proxy.set_enabled(False)


CONTROLLERS = ["ippool", "ipaddress"]


def later_page(target: str) -> bool:
    """A page after the first: its cursor starts past the first object."""
    start = parse_qs(urlsplit(target).query).get("start", ["0"])[0]
    return start.isdigit() and int(start) > 0


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_http_errors_on_some_pages_lose_nothing(
    controller: str, make_subject: MakeSubject, faulty_netbox: FaultyNetBox
) -> None:
    subject = make_subject(controller, faulty_netbox.url)
    written_before = written(subject)

    # Half the pages answered with an error: with three attempts per request, most passes fail on one.
    faulty_netbox.set_fault(HttpFault(share=0.5, retry_after=1))
    started = time.monotonic()
    subject.change_during_fault()
    window = FaultWindow()
    passes_during(subject, FAULT_SECONDS, window)
    faulty_netbox.set_fault(None)
    ended = time.monotonic()
    faulted = faulty_netbox.count(started, ended, faulted=True)
    later_pages = sum(1 for e in faulty_netbox.exchanges if e.faulted and later_page(e.target))
    netbox_writes = faulty_netbox.count(started, ended, methods=("POST", "PATCH", "PUT", "DELETE"))

    assert window.failed >= 1, "no pass failed: the fault was too mild to show anything"
    assert window.reasons <= {"NetBoxUnavailable"}, window.reasons
    assert later_pages, "only first pages were faulted: the pages after them went around the fault layer"
    after_fault(
        subject, written_before, "1. NetBox 500/502/429 on pages", window,
        f"{faulted} answers faulted ({later_pages} of them later pages); {netbox_writes} NetBox writes",
    )  # fmt: skip


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_slow_netbox_then_a_hang_fails_within_the_timeout(
    controller: str, make_subject: MakeSubject, netbox_proxy: Proxy
) -> None:
    subject = make_subject(controller, netbox_proxy.url())
    written_before = written(subject)

    # 2 s per answer: slower than usual, well inside the timeout: a pass completes. (The first pass to end
    # may have begun before; the second is slow from its start.)
    netbox_proxy.add_toxic("slow", "latency", {"latency": 2000})
    next_pass(subject, 900)
    slow_started = time.monotonic()
    next_pass(subject, 900)
    slow_seconds = time.monotonic() - slow_started
    assert subject.failure() is None

    # Then nothing answers at all: each attempt ends at the timeout, the pass after the last attempt.
    # Held on the way to NetBox: it never sees the request nor closes the connection, so each attempt
    # waits out the timeout (dropping only the answers would end at NetBox's close after answering).
    netbox_proxy.add_toxic("hang", "timeout", {"timeout": 0}, stream="upstream")
    hang_started = time.monotonic()
    subject.change_during_fault()
    subject.request_pass()
    window = FaultWindow()
    bound = TIMEOUT_SECONDS * RETRIES * 4  # generous: attempts, backoff between them, and the pass itself
    wait_for(subject.failure, bound, "the pass to give up on the hanging NetBox")
    failed_after = time.monotonic() - hang_started
    window.passes, window.failed, window.reasons = 1, 1, {str(subject.failure())}
    window.violations.extend(subject.violations())
    assert window.reasons == {"NetBoxUnavailable"}, window.reasons
    netbox_proxy.remove_toxic("hang")
    netbox_proxy.remove_toxic("slow")
    after_fault(
        subject, written_before, "2. NetBox slow + one request hanging", window,
        f"a pass at 2 s per answer took {slow_seconds:.0f} s; the hanging pass was reported failed after"
        f" {failed_after:.0f} s (timeout {TIMEOUT_SECONDS} s, {RETRIES} attempts)",
    )  # fmt: skip


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_connections_cut_mid_page_lose_nothing(controller: str, make_subject: MakeSubject, netbox_proxy: Proxy) -> None:
    subject = make_subject(controller, netbox_proxy.url())
    written_before = written(subject)

    # Half the connections are closed after 20 kB: in the middle of a page.
    netbox_proxy.add_toxic("cut", "limit_data", {"bytes": 20_000}, toxicity=0.5)
    subject.change_during_fault()
    window = FaultWindow()
    passes_during(subject, FAULT_SECONDS, window)
    netbox_proxy.remove_toxic("cut")

    assert window.reasons <= {"NetBoxUnavailable"}, window.reasons
    after_fault(subject, written_before, "3. connection reset mid-page", window, "half the connections cut after 20 kB")
