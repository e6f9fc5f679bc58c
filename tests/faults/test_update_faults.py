"""argora-update, the controller that writes to NetBox, while NetBox fails: scenarios 8 and 1 to 3.

Each scenario seeds a NetBox cluster of its own with pending corrections as production holds them:
vendor-named BMC ports (iDRAC, iLO, XCC, iRMC) without an OOB IP, their MACs in every shape; a VMK
interface with an IP and two MACs on every device, a second VMK with two IPs on every third; a non-VMK
interface with an IP (eth1) on every other device. The controller reads NetBox through the HTTP fault
layer (and Toxiproxy in front of it for 2 and 3), page size 25, so a fault hits some pages of a read.

8. NetBox fails between the re-read and the delete: the DELETEs answered 502/500 once one went through;
   and, apart, IPs re-assigned and a VMK edited at the moment the first DELETE arrives.
1. 500/502/429 on half the pages of the reads, for a while.
2. 2 s per answer, then the first DELETE's answer never comes (and nothing after it).
3. Half the connections cut after 8 kB, mid-page.

What is checked is what a user would look at: NetBox's records (every device corrected in the end, no
non-VMK interface or IP lost, no IP deleted that the re-check did not confirm as it was, nothing
duplicated), the Update's status and Events (the failure named, what was written before it counted,
no internal error).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from argora_dev.faults import TABLE, FaultRow, FaultyNetBox, HttpFault
from argora_dev.kubeobjects import Objects, wait_for
from argora_dev.netbox import NetBoxServer
from argora_dev.operator import OperatorProcess
from argora_dev.seed import MacShape, NetBoxSeeder, Server, Topology, add_macs, add_servers, fresh_ipv4
from argora_dev.toxiproxy import Proxy, Toxiproxy
from tests.faults.conftest import Inventory, converged

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CONTROLLER = "argora-update"
# Enough for two bulk requests of VMK IPs to delete and several pages of every read, on a busy machine.
DEVICES = 60
SHAPES: tuple[tuple[str, MacShape], ...] = (
    ("iDRAC", "primary"),
    ("iLO", "assigned"),
    ("XCC", "two-with-primary"),
    ("iRMC", "two-assigned"),
)
PAGE_SIZE = 25
# A bulk write of 50 objects takes NetBox 5-15 s, and far more when other suites share the 2 cores: the
# timeout of a request is generous, except where it is what the scenario measures (2).
TIMEOUT_SECONDS = 60
HANG_TIMEOUT_SECONDS = 30
RETRIES = 3
FAULT_SECONDS = 40
PASS_TIMEOUT = 600
WRITES = ("POST", "PATCH", "PUT", "DELETE")
UPDATE = "fix"


@dataclass
class Seeded:
    """A cluster with pending corrections, and what NetBox must hold when they are made."""

    cluster: str
    servers: list[Server]
    eth1: dict[int, int] = field(default_factory=dict)  # device id -> its eth1 (every other device)
    vmks: dict[int, dict[str, int]] = field(default_factory=dict)  # device id -> VMK name -> interface id
    vmk_ips: dict[int, int] = field(default_factory=dict)  # VMK IP id -> its interface id
    kept_ips: set[int] = field(default_factory=set)  # BMC and eth1 IPs: never to be deleted

    @property
    def device_ids(self) -> list[int]:
        return [server.device["id"] for server in self.servers]


def seed_corrections(seeder: NetBoxSeeder, prefix: str) -> Seeded:
    topology = Topology(seeder, prefix)
    cluster = topology.cluster("c")
    servers: list[Server] = []
    for vendor, shape in SHAPES:
        names = [f"{prefix}-{vendor.lower()}-{i:03d}" for i in range(DEVICES // len(SHAPES))]
        servers += add_servers(topology, cluster, names, set_oob_ip=False, interface_name=vendor, mac_shape=shape)
    wanted = [(s, "vmk0", "virtual", 1) for s in servers]
    wanted += [(s, "vmk1", "virtual", 2) for s in servers[::3]]
    wanted += [(s, "eth1", "1000base-t", 1) for s in servers[::2]]
    interfaces = seeder.create(
        "dcim/interfaces", [{"device": s.device["id"], "name": name, "type": kind} for s, name, kind, _ in wanted]
    )
    addresses = seeder.create(
        "ipam/ip-addresses",
        [
            {"address": fresh_ipv4(), "assigned_object_type": "dcim.interface", "assigned_object_id": iface["id"]}
            for (_, _, _, count), iface in zip(wanted, interfaces, strict=True)
            for _ in range(count)
        ],
    )
    add_macs(seeder, [iface for iface in interfaces if iface["name"] == "vmk0"], "two-assigned")
    seeded = Seeded(cluster["name"], servers, kept_ips={server.ip["id"] for server in servers})
    for iface in interfaces:
        if iface["name"] == "eth1":
            seeded.eth1[iface["device"]["id"]] = iface["id"]
        else:
            seeded.vmks.setdefault(iface["device"]["id"], {})[iface["name"]] = iface["id"]
    vmk_ids = {i for vmks in seeded.vmks.values() for i in vmks.values()}
    for address in addresses:
        if address["assigned_object_id"] in vmk_ids:
            seeded.vmk_ips[address["id"]] = address["assigned_object_id"]
        else:
            seeded.kept_ips.add(address["id"])
    return seeded


@dataclass(frozen=True)
class Outcome:
    """NetBox's records of the seeded devices, measured against the corrections."""

    corrected: int  # devices with only remoteboard (and eth1) left, and their BMC IP as OOB IP
    lost: int  # BMC or eth1 interfaces and IPs gone, and VMK IPs deleted after they moved away
    duplicated: int  # interfaces of one device sharing a name, addresses held twice
    vmk_ips_deleted: int  # of those that stayed VMK IPs
    vmk_interfaces_left: int


def outcome(seeder: NetBoxSeeder, seeded: Seeded, moved: AbstractSet[int] = frozenset()) -> Outcome:
    """`moved`: VMK IPs re-assigned to eth1 during the scenario, which must survive it."""
    ids = seeded.device_ids
    interfaces = seeder.get("dcim/interfaces", device_id=ids, fields="id,name,device")
    addresses = {ip["id"]: ip for ip in seeder.get("ipam/ip-addresses", device_id=ids, fields="id,address")}
    devices = {d["id"]: d for d in seeder.get("dcim/devices", id=ids, fields="id,oob_ip")}
    names: dict[int, list[str]] = {}
    for iface in interfaces:
        names.setdefault(iface["device"]["id"], []).append(iface["name"])
    corrected = sum(
        1
        for server in seeded.servers
        if sorted(names.get(server.device["id"], []))
        == sorted(["remoteboard", *(["eth1"] if server.device["id"] in seeded.eth1 else [])])
        and (devices[server.device["id"]]["oob_ip"] or {}).get("id") == server.ip["id"]
    )
    kept_interfaces = {i["id"] for i in interfaces if not i["name"].startswith("vmk")}
    lost = (
        len((seeded.kept_ips | moved) - addresses.keys())
        + len(set(seeded.eth1.values()) - kept_interfaces)
        + sum(1 for server in seeded.servers if server.interface["id"] not in kept_interfaces)
    )
    duplicated = sum(n - 1 for n in Counter((i["device"]["id"], i["name"]) for i in interfaces).values() if n > 1)
    duplicated += sum(n - 1 for n in Counter(ip["address"] for ip in addresses.values()).values() if n > 1)
    return Outcome(
        corrected,
        lost,
        duplicated,
        len((seeded.vmk_ips.keys() - moved) - addresses.keys()),
        sum(1 for i in interfaces if i["name"].startswith("vmk")),
    )


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def failure(status: dict[str, Any]) -> str | None:
    ready = condition(status, "Ready")
    return None if not ready or ready["status"] == "True" else str(ready["reason"])


@dataclass
class Subject:
    """The Update of a scenario, the argora-update process passing it, and NetBox as a user reads it."""

    objects: Objects
    namespace: str
    operator: OperatorProcess
    seeder: NetBoxSeeder
    seeded: Seeded

    def create(self) -> None:
        spec = {"clusters": [{"name": self.seeded.cluster}], "maxDeletesPerPass": 10 * DEVICES}
        self.objects.create_import(self.namespace, UPDATE, spec, kind="Update")

    def status(self) -> dict[str, Any]:
        found = self.objects.get_import(self.namespace, UPDATE, kind="Update") or {}
        status: dict[str, Any] = found.get("status") or {}
        return status

    def condition(self, kind: str) -> dict[str, Any]:
        return condition(self.status(), kind)

    def failure(self) -> str | None:
        """The reason the last pass failed; None when it completed (or none ended yet)."""
        return failure(self.status())

    def failed_with(self, reason: str) -> dict[str, Any]:
        """The status the first failed pass wrote: the retries that follow write theirs."""

        def failed() -> dict[str, Any] | None:
            status = self.status()
            return status if failure(status) == reason else None

        return wait_for(failed, PASS_TIMEOUT, f"a pass failed with {reason}")

    def event_reasons(self) -> set[tuple[str, str]]:
        return {(kind, reason) for kind, reason, _ in self.objects.events(self.namespace, UPDATE)}

    def passes(self) -> float:
        """Passes finished so far, failed ones included (the controller's own histogram)."""
        return self.operator.metric("argora_reconcile_duration_seconds_count")

    def request_pass(self) -> float:
        """Ask for a pass, as a user does with the sync annotation; returns the passes finished before."""
        done = self.passes()
        self.objects.request_sync(self.namespace, UPDATE, kind="Update")
        return done

    def passed_after(self, done: float) -> bool:
        return self.passes() > done

    def outcome(self, moved: AbstractSet[int] = frozenset()) -> Outcome:
        return outcome(self.seeder, self.seeded, moved)

    def finished(self, moved: AbstractSet[int] = frozenset()) -> bool:
        """The last pass completed and NetBox holds every correction."""
        if self.failure() is not None or self.condition("Ready").get("status") != "True":
            return False
        now = self.outcome(moved)
        return now.corrected == DEVICES and now.vmk_interfaces_left == 0


@pytest.fixture
def netbox_proxy(toxiproxy: Toxiproxy, faulty_netbox: FaultyNetBox, prefix: str) -> Iterator[Proxy]:
    """Toxiproxy in front of the fault layer: TCP faults, and the layer still counts every request."""
    proxy = toxiproxy.proxy(prefix, faulty_netbox.url.removeprefix("http://"))
    yield proxy
    proxy.set_enabled(False)


@pytest.fixture
def subject_at(
    start_controller: Callable[..., OperatorProcess],
    netbox: NetBoxServer,
    objects: Objects,
    namespace: str,
    seeder: NetBoxSeeder,
    prefix: str,
    inventory: Inventory,
) -> Callable[..., Subject]:
    """Seed the scenario's cluster, then start argora-update for the test's namespace only, with a token
    that may write, reading NetBox at the given URL. (`inventory`: the addresses the restored dump holds
    are skipped.)"""

    def start(netbox_url: str, timeout: int = TIMEOUT_SECONDS) -> Subject:
        seeded = seed_corrections(seeder, prefix)
        env = {
            "ARGORA_NETBOX_URL": netbox_url,
            "ARGORA_NETBOX_TOKEN": netbox.v2_token,
            "ARGORA_NAMESPACES": namespace,
            "ARGORA_NETBOX_PAGE_SIZE": str(PAGE_SIZE),
            "ARGORA_NETBOX_TIMEOUT_SECONDS": str(timeout),
            "ARGORA_NETBOX_RETRIES": str(RETRIES),
            "ARGORA_RETRY_BASE_SECONDS": "2",
            "ARGORA_RETRY_MAX_SECONDS": "8",
        }
        return Subject(objects, namespace, start_controller("update", env), seeder, seeded)

    return start


def once(action: Callable[[], None], method: str, path: str) -> Callable[[str, str], None]:
    """A fault layer hook that runs `action` when the first `method` request to `path` arrives; that
    request and every other wait until it is done."""
    lock = threading.Lock()
    done: list[bool] = []

    def hook(request_method: str, target: str) -> None:
        if request_method != method or not target.startswith(path):
            return
        with lock:
            if not done:
                done.append(True)
                action()

    return hook


@dataclass
class FaultWindow:
    """Passes while a fault lasted: how many ended, how many failed, and why."""

    ended: int = 0
    failed: int = 0
    reasons: set[str] = field(default_factory=set)

    def note(self) -> str:
        return f"{self.failed} of {self.ended} passes failed ({', '.join(sorted(self.reasons)) or '-'})"


def passes_during(subject: Subject, seconds: float) -> FaultWindow:
    """Passes one after the other for `seconds` (the first is the Update's creation's), each waited for."""
    window = FaultWindow()
    ends = time.monotonic() + seconds
    done = 0.0
    while True:
        wait_for(partial(subject.passed_after, done), PASS_TIMEOUT, "a pass during the fault")
        window.ended += 1
        if (reason := subject.failure()) is not None:
            window.failed += 1
            window.reasons.add(reason)
        if time.monotonic() >= ends:
            return window
        done = subject.request_pass()


def interrupted_report(subject: Subject, status: dict[str, Any], reason: str) -> None:
    """A pass NetBox failed in the middle of its writes said so (`status`, as it wrote it), and counted
    what NetBox took before."""
    assert status["state"] == "Error"
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert "changes were applied before" in ready["message"], ready
    assert condition(status, "DeletesComplete")["reason"] == "Interrupted"
    assert status["applied"]["rename"] == DEVICES and status["applied"]["oobIP"] == DEVICES
    reasons = subject.event_reasons()
    assert {("Normal", "InterfacesRenamed"), ("Normal", "OOBIPsSet"), ("Warning", reason)} <= reasons, reasons
    assert ("Warning", "InternalError") not in reasons


def record(
    subject: Subject, scenario: str, seconds: float, writes: int, note: str, moved: AbstractSet[int] = frozenset()
) -> Outcome:
    """Add the scenario's row from NetBox's records after it; they are returned for the assertions."""
    after = subject.outcome(moved)
    TABLE.add(
        FaultRow(scenario, CONTROLLER, DEVICES, after.corrected, after.lost, after.duplicated, seconds, writes, note)
    )
    assert "Traceback" not in subject.operator.log()
    return after


SCENARIO_8 = "8. NetBox fails between re-read and delete"


def test_deletes_failing_after_the_recheck_lose_nothing_and_the_next_pass_finishes(
    subject_at: Callable[..., Subject], faulty_netbox: FaultyNetBox
) -> None:
    subject = subject_at(faulty_netbox.url)
    # Every DELETE from the second on is answered 502 or 500: the pass has renamed, set the OOB IPs and
    # re-checked everything when the deletes start failing, one request of IPs in.
    faulty_netbox.set_fault(
        HttpFault(statuses=(502, 500), share=1.0, methods=frozenset({"DELETE"}), pages_only=False, after=1)
    )
    fault_started = time.monotonic()
    subject.create()
    status = subject.failed_with("NetBoxUnavailable")
    during = subject.outcome()
    interrupted_report(subject, status, "NetBoxUnavailable")
    # The IPs of the DELETE that went through, no more: the status counts what NetBox took.
    assert 0 < during.vmk_ips_deleted == status["applied"]["ipDeleted"]
    assert status["applied"]["interfaceDeleted"] == 0 and during.vmk_interfaces_left == len(
        [i for vmks in subject.seeded.vmks.values() for i in vmks.values()]
    )
    assert (during.lost, during.duplicated) == (0, 0)
    faulty_netbox.set_fault(None)
    healed = time.monotonic()
    writes = faulty_netbox.count(fault_started, healed, methods=WRITES, faulted=False)
    faulted = faulty_netbox.count(fault_started, healed, faulted=True)

    # The work queue retries the failed pass by itself.
    seconds = converged(subject.finished, PASS_TIMEOUT, "the pass after the fault")
    after = record(
        subject, SCENARIO_8, seconds, writes,
        f"DELETEs answered 502/500 from the second on ({faulted} answers): {during.vmk_ips_deleted} VMK IPs deleted"
        " and counted in the status, the failure reported; the retry deletes the rest",
    )  # fmt: skip
    assert (after.corrected, after.lost, after.duplicated) == (DEVICES, 0, 0)


def test_records_changed_between_recheck_and_delete_are_not_deleted(
    subject_at: Callable[..., Subject], faulty_netbox: FaultyNetBox, seeder: NetBoxSeeder
) -> None:
    subject = subject_at(faulty_netbox.url)
    seeded = subject.seeded
    # Devices with eth1 and a single VMK IP: that IP moves to eth1 as the first DELETE of IPs arrives,
    # after the pass re-checked it on its VMK.
    movers = [s.device["id"] for i, s in enumerate(seeded.servers) if i % 2 == 0 and i % 3 != 0][:4]
    moves = {
        ip: seeded.eth1[device]
        for device in movers
        for ip, iface in seeded.vmk_ips.items()
        if iface == seeded.vmks[device]["vmk0"]
    }
    moved = set(moves)
    # And somebody edits two second VMKs (their IPs unchanged) at the same moment.
    edited = [seeded.vmks[s.device["id"]]["vmk1"] for i, s in enumerate(seeded.servers) if i % 3 == 0][1:3]

    def meanwhile() -> None:
        seeder.update_many("ipam/ip-addresses", [{"id": ip, "assigned_object_id": to} for ip, to in moves.items()])
        seeder.update_many("dcim/interfaces", [{"id": i, "description": "kept by hand"} for i in edited])

    faulty_netbox.set_hook(once(meanwhile, "DELETE", "/api/ipam/ip-addresses/"))
    started = time.monotonic()
    subject.create()
    wait_for(lambda: subject.passed_after(0), PASS_TIMEOUT, "the first pass")
    ended = time.monotonic()
    faulty_netbox.set_hook(None)
    status = subject.status()
    during = subject.outcome(moved)
    writes = faulty_netbox.count(started, ended, methods=WRITES, faulted=False)

    # The moved IPs live on; the edited VMKs too; both devices' problems say why; the rest is done.
    assert subject.failure() is None, subject.condition("Ready")
    names = {s.device["id"]: s.name for s in seeded.servers}
    problems = {(p["device"], p["reason"]) for p in status["problems"]}
    wanted = {(names[d], "Rejected") for d in movers}
    wanted |= {(names[d], "Rejected") for d, vmks in seeded.vmks.items() if vmks.get("vmk1") in edited}
    assert problems == wanted, status["problems"]
    assert all("changed in NetBox since it was read" in p["message"] for p in status["problems"])
    assert len(seeder.get("ipam/ip-addresses", id=sorted(moved))) == len(moved)
    assert len(seeder.get("dcim/interfaces", id=edited)) == len(edited)
    assert (during.lost, during.duplicated) == (0, 0)
    assert during.corrected == DEVICES - len(wanted)

    # The next pass reads them as they are now: the emptied VMKs and the edited ones go, the moved IPs stay.
    subject.request_pass()
    seconds = converged(partial(subject.finished, moved), PASS_TIMEOUT, "the next pass")
    after = record(
        subject, SCENARIO_8, seconds, writes,
        f"{len(moved)} VMK IPs re-assigned and {len(edited)} VMKs edited between the re-check and the DELETE:"
        " NetBox refused their deletes (If-Match), the devices reported; the next pass finishes",
        moved,
    )  # fmt: skip
    assert (after.corrected, after.lost, after.duplicated) == (DEVICES, 0, 0)


def test_http_errors_on_some_pages_delete_nothing_unconfirmed(
    subject_at: Callable[..., Subject], faulty_netbox: FaultyNetBox
) -> None:
    subject = subject_at(faulty_netbox.url)
    # Half the pages answered 500, 502 or 429: with three attempts per request most passes fail on one,
    # in their reads or in their re-checks.
    faulty_netbox.set_fault(HttpFault(share=0.5, retry_after=1))
    fault_started = time.monotonic()
    subject.create()
    window = passes_during(subject, FAULT_SECONDS)
    during = subject.outcome()
    faulty_netbox.set_fault(None)
    healed = time.monotonic()
    writes = faulty_netbox.count(fault_started, healed, methods=WRITES, faulted=False)
    faulted = faulty_netbox.count(fault_started, healed, faulted=True)

    assert window.failed >= 1, "no pass failed: the fault was too mild to show anything"
    assert window.reasons <= {"NetBoxUnavailable"}, window.reasons
    # Whatever a pass deleted before a page failed it was re-checked whole: no BMC or eth1 record gone.
    assert (during.lost, during.duplicated) == (0, 0)
    assert ("Warning", "InternalError") not in subject.event_reasons()
    subject.request_pass()
    seconds = converged(subject.finished, PASS_TIMEOUT, "the pass after the fault")
    after = record(
        subject, "1. NetBox 500/502/429 on pages", seconds, writes,
        f"{window.note()}; {faulted} answers faulted; {during.corrected} devices corrected during the fault",
    )  # fmt: skip
    assert (after.corrected, after.lost, after.duplicated) == (DEVICES, 0, 0)


def test_slow_netbox_then_a_hanging_delete_fails_cleanly(
    subject_at: Callable[..., Subject], faulty_netbox: FaultyNetBox, netbox_proxy: Proxy
) -> None:
    subject = subject_at(netbox_proxy.url(), timeout=HANG_TIMEOUT_SECONDS)
    # 2 s per answer; then, as the first DELETE arrives, no answer at all (that one and every later one).
    netbox_proxy.add_toxic("slow", "latency", {"latency": 2000})
    hung: list[float] = []

    def hang() -> None:
        # Held on the way to NetBox: it never sees the request nor closes the connection, so each attempt
        # waits out the timeout (dropping only the answers would end at NetBox's close after answering).
        netbox_proxy.add_toxic("hang", "timeout", {"timeout": 0}, stream="upstream")
        hung.append(time.monotonic())

    faulty_netbox.set_hook(once(hang, "DELETE", "/api/"))
    started = time.monotonic()
    subject.create()
    status = subject.failed_with("NetBoxUnavailable")
    failed_after = time.monotonic() - hung[0]
    slow_seconds = hung[0] - started
    interrupted_report(subject, status, "NetBoxUnavailable")
    assert "Timeout" in condition(status, "Ready")["message"]
    during = subject.outcome()
    netbox_proxy.remove_toxic("hang")
    netbox_proxy.remove_toxic("slow")
    faulty_netbox.set_hook(None)
    writes = faulty_netbox.count(started, time.monotonic(), methods=WRITES, faulted=False)

    # Attempts at the timeout each, the backoff between them: generous, the machine is shared.
    assert failed_after < HANG_TIMEOUT_SECONDS * RETRIES * 4, failed_after
    assert (during.lost, during.duplicated) == (0, 0)
    seconds = converged(subject.finished, PASS_TIMEOUT, "the pass after the hang")
    after = record(
        subject, "2. NetBox slow + one request hanging", seconds, writes,
        f"reads and the first writes at 2 s per answer took {slow_seconds:.0f} s; the pass failed"
        f" {failed_after:.0f} s after its first DELETE hung (timeout {HANG_TIMEOUT_SECONDS} s, {RETRIES} attempts),"
        " reporting the renames and OOB IPs it had made",
    )  # fmt: skip
    assert (after.corrected, after.lost, after.duplicated) == (DEVICES, 0, 0)


def test_connections_cut_mid_page_delete_nothing_unconfirmed(
    subject_at: Callable[..., Subject], faulty_netbox: FaultyNetBox, netbox_proxy: Proxy
) -> None:
    subject = subject_at(netbox_proxy.url())
    # Half the connections closed after 8 kB: in the middle of a page of 25 interfaces or IPs.
    netbox_proxy.add_toxic("cut", "limit_data", {"bytes": 8000}, toxicity=0.5)
    fault_started = time.monotonic()
    subject.create()
    window = passes_during(subject, FAULT_SECONDS)
    during = subject.outcome()
    netbox_proxy.remove_toxic("cut")
    healed = time.monotonic()
    writes = faulty_netbox.count(fault_started, healed, methods=WRITES, faulted=False)

    assert window.reasons <= {"NetBoxUnavailable"}, window.reasons
    assert (during.lost, during.duplicated) == (0, 0)
    assert ("Warning", "InternalError") not in subject.event_reasons()
    subject.request_pass()
    seconds = converged(subject.finished, PASS_TIMEOUT, "the pass after the fault")
    after = record(
        subject, "3. connection reset mid-page", seconds, writes,
        f"{window.note()}; half the connections cut after 8 kB; {during.corrected} devices corrected during the fault",
    )  # fmt: skip
    assert (after.corrected, after.lost, after.duplicated) == (DEVICES, 0, 0)
