"""The write-back pass for the shared skeleton (read, plan, apply, report), and when it runs.

One pass covers every IPAddress of the cluster (with ARGORA_POOL_SCOPE=argora, those of Argora's pools and
of the pools the settings name), and those going away with the original operator's finalizer: reading
them all at once keeps NetBox requests at a few pages and id chunks however many addresses there are. A pass
runs soon after an IPAddress appears, changes or goes, every resync interval, and, while some address
waits for its chain to a NetBox device, again after that address's growing delay: never a hot loop.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from argora_common.backoff import Backoff
from argora_common.errors import Decision
from argora_common.identity import ARGORA_IPPOOL
from argora_common.kinds import BMC, GLOBAL_POOL, SERVER, SERVER_CLAIM, ip_address, ip_address_claim
from argora_common.kube import MANAGED_BY_LABEL, Kube
from argora_common.metrics import IPADDRESS_RELEASES_HELD, IPADDRESS_STATES
from argora_common.netbox import NetBox
from argora_common.netbox_schema import DEVICES, INTERFACES, IP_ADDRESSES, PREFIXES, TAGS, Device, IPAddress
from argora_common.passes import Body, ControllerSteps, PassRunner
from argora_common.status import post_event
from argora_common.workqueue import WorkQueue
from ipaddress_controller.apply import Applier, ApplyResult, annotate_exactly
from ipaddress_controller.chain import Chain, Cluster, Key, Unresolved, key_of, resolve
from ipaddress_controller.desired import (
    ANNOTATIONS,
    ORIGINAL_FINALIZER,
    SYNC_STATUS_ANNOTATION,
    NetBoxFacts,
    Plan,
    State,
    cidr,
    host,
    is_deleting,
    plan,
)
from ipaddress_controller.settings import IPAddressSettings

# The pass is about all IPAddresses at once; the skeleton and the work queue key it by this name.
PASS_KEY: Final = ("", "ipaddresses")
PASS_BODY: Final = {"metadata": {"namespace": PASS_KEY[0], "name": PASS_KEY[1]}}
# Events of several IPAddresses in a row (a machine deployment scaling up) end in one pass.
DEBOUNCE_SECONDS: Final = 1.0
IPPOOL_MANAGER: Final = ARGORA_IPPOOL.field_manager

log = logging.getLogger("argora.ipaddress")


@dataclass
class Facts:
    addresses: list[dict[str, Any]]  # to record in NetBox
    every_address: list[dict[str, Any]]
    chains: dict[Key, Chain | Unresolved]
    netbox: NetBoxFacts


def of_pools(address: Mapping[str, Any], pools: set[str]) -> bool:
    ref = (address.get("spec") or {}).get("poolRef") or {}
    return (
        ref.get("kind") == GLOBAL_POOL.kind
        and ref.get("apiGroup", GLOBAL_POOL.group) == GLOBAL_POOL.group
        and (ref.get("name") in pools)
    )


def handed_over_to_us(address: Mapping[str, Any]) -> bool:
    """Going away with the original operator's finalizer: nobody but us will take it off."""
    return is_deleting(address) and ORIGINAL_FINALIZER in (address["metadata"].get("finalizers") or [])


class WriteBackSteps(ControllerSteps[IPAddressSettings]):
    """read -> plan -> apply -> report of one write-back pass."""

    kind = "IPAddress"
    kept = "NetBox is left as it is"

    def __init__(self, settings: IPAddressSettings, netbox: NetBox, kube: Kube, ip_version: str) -> None:
        super().__init__(settings, netbox, kube)
        self.ip_address = ip_address(ip_version)
        self.ip_address_claim = ip_address_claim(ip_version)
        self.pattern = re.compile(settings.lag_interface_pattern)
        # The IPAddresses of the last read, by key: a failed pass is reported on them.
        self.last_addresses: dict[Key, dict[str, Any]] = {}
        # Those going away with the original operator's finalizer, by key, as the last read found them.
        self.last_going: dict[Key, dict[str, Any]] = {}
        # Our NetBox tag's id as the last read found it; None until the first address makes the tag.
        self.tag_id: int | None = None
        # The last plan: its pending addresses decide when the next pass is due.
        self.last_plan = Plan()

    def read(self, body: Body) -> Facts:
        every_address = self.kube.list(self.ip_address)
        addresses = [address for address in every_address if not is_deleting(address)]
        if self.settings.pool_scope == "argora":
            pools = {
                pool["metadata"]["name"]
                for pool in self.kube.list(GLOBAL_POOL, label_selector=f"{MANAGED_BY_LABEL}={IPPOOL_MANAGER}")
            } | set(self.settings.pool_names)
            addresses = [address for address in addresses if of_pools(address, pools)]
        self.last_addresses = {key_of(address): address for address in addresses}
        # The original's finalizer is on IPAddresses of any pool: it comes off whatever the scope.
        self.last_going = {key_of(address): address for address in every_address if handed_over_to_us(address)}
        cluster = Cluster(
            claims={key_of(claim): claim for claim in self.kube.list(self.ip_address_claim)},
            server_claims={key_of(claim): claim for claim in self.kube.list(SERVER_CLAIM)},
            servers={server["metadata"]["name"]: server for server in self.kube.list(SERVER)},
            bmcs={bmc["metadata"]["name"]: bmc for bmc in self.kube.list(BMC)},
        )
        device_id_label = f"{self.settings.label_prefix}/device-id"
        chains = {key_of(address): resolve(address, cluster, device_id_label) for address in addresses}
        netbox = self._read_netbox([*addresses, *self.last_going.values()], chains)
        return Facts(addresses, every_address, chains, netbox)

    def _read_netbox(self, addresses: list[dict[str, Any]], chains: Mapping[Key, Chain | Unresolved]) -> NetBoxFacts:
        """What NetBox holds for `addresses` (those to record and those going away) and their devices."""
        resolved = [chain for chain in chains.values() if isinstance(chain, Chain)]
        ids = {chain.device_id for chain in resolved if chain.device_id is not None}
        by_id = {device.id: device for device in self.netbox.list_by_ids(DEVICES, "id", ids)} if ids else {}
        # A BMC argora-ironcore did not label (or whose device id is gone) names its device.
        names = {chain.device_name for chain in resolved if chain.device_id not in by_id}
        by_name: dict[str, list[Device]] = defaultdict(list)
        for device in self.netbox.list_by_ids(DEVICES, "name", names) if names else []:
            if device.name:
                by_name[device.name].append(device)
        device_ids = set(by_id) | {device.id for devices in by_name.values() for device in devices}
        interfaces = defaultdict(list)
        for interface in self.netbox.list_by_ids(INTERFACES, "device_id", device_ids, type="lag") if device_ids else []:
            interfaces[interface.device.id].append(interface)
        cidrs = [cidr(address) for address in addresses]
        by_host: dict[str, list[IPAddress]] = defaultdict(list)
        for found in self.netbox.list_by_ids(IP_ADDRESSES, "address", {host(c) for c in cidrs}) if cidrs else []:
            by_host[host(found.address)].append(found)
        networks = {str(ipaddress.ip_interface(c).network) for c in cidrs}
        prefixes = self.netbox.list_by_ids(PREFIXES, "prefix", networks) if networks else []
        # NetBox refuses a filter by a tag that does not exist (400): before our first address there is none.
        tags = self.netbox.select(TAGS, slug=self.settings.created_tag)
        self.tag_id = tags[0].id if tags else None
        created = self.netbox.select(IP_ADDRESSES, tag=[self.settings.created_tag]) if tags else []
        return NetBoxFacts(by_id, by_name, interfaces, by_host, prefixes, created)

    def plan(self, body: Body, facts: Facts) -> Plan:
        self.last_plan = plan(
            facts.addresses, facts.every_address, facts.chains, facts.netbox, self.pattern,
            tag_slug=self.settings.created_tag, release_breaker_percent=self.settings.release_breaker_percent,
        )  # fmt: skip
        return self.last_plan

    def converge(self, body: Body, planned: Plan) -> ApplyResult:
        applier = Applier(
            self.netbox,
            self.kube,
            self.ip_address,
            self.settings.created_tag,
            self.tag_id,
            dry_run=self.settings.dry_run,
            max_deletes=self.settings.max_deletes_per_pass,
        )
        return applier.apply(planned, self.last_addresses, self.last_going)

    def report(self, body: Body, facts: Facts, planned: Plan, result: ApplyResult) -> str:
        counts = {
            "addresses": len(facts.addresses),
            "created": len(result.created),
            "adopted": len(result.adopted),
            "primary": len(result.primaries),
            "pending": len(planned.pending),
            "conflicts": sum(1 for item in planned.addresses if item.conflicted) + result.failed,
            "released": len(result.released),
            "releaseHeldBack": len(result.held_back),
            "releaseKept": len(result.kept),
            "finalizersRemoved": len(result.handed_over),
        }
        for state in State:
            IPADDRESS_STATES.labels(state=state.value).set(sum(1 for item in planned.addresses if item.state is state))
        IPADDRESS_RELEASES_HELD.set(len(planned.releases) if planned.release_hold else 0)
        if planned.release_hold:
            log.warning(
                "%d released addresses kept in NetBox, the release breaker tripped: %s; check the cluster, then"
                " delete them in NetBox or set ARGORA_RELEASE_BREAKER_PERCENT=100 for one pass",
                len(planned.releases), planned.release_hold,
            )  # fmt: skip
        if result.kept:
            log.warning(
                "released addresses left in NetBox, they moved since argora-ipaddress made them: %s", result.kept
            )
        return ", ".join(f"{value} {name}" for name, value in counts.items()) + (
            " (dry run)" if self.settings.dry_run else ""
        )

    def report_failure(self, body: Body, decision: Decision) -> None:
        """The reason on every IPAddress of the last read, and an Event where it is news."""
        status = f"state=Error, reason={decision.reason}"
        for address in self.last_addresses.values():
            annotations = (address.get("metadata") or {}).get("annotations") or {}
            if annotations.get(SYNC_STATUS_ANNOTATION) == status:
                continue
            # Only the status changes: what the last completed pass found (device, interface) stays. The
            # IPAddress may have gone since the read: then nothing is written.
            wanted = {name: annotations[name] for name in ANNOTATIONS if name in annotations}
            wanted[SYNC_STATUS_ANNOTATION] = status
            if annotate_exactly(self.kube, self.ip_address, address, wanted) is not None:
                post_event(self.kube, address, "Warning", decision.reason, decision.message)


class Reconciler:
    """When the write-back pass runs (from the work queue): soon after changes of IPAddresses, at the
    resync, and when a pending address is due."""

    def __init__(self, settings: IPAddressSettings, netbox: NetBox, kube: Kube, ip_version: str, queue: WorkQueue):
        self.settings = settings
        self.steps = WriteBackSteps(settings, netbox, kube, ip_version)
        self.passes = PassRunner.from_settings(self.steps, settings, kube.controller)
        # Per IPAddress waiting for its chain: the delay grows with each pass that still finds it pending.
        self.pending: Backoff[Key] = Backoff.from_settings(settings)
        self.fingerprints: dict[Key, str] = {}
        self.lock = threading.Lock()
        self.queue = queue
        queue.route(tuple, self.run)

    def start(self) -> None:
        """The first pass, at once: it finds whatever changed while no replica ran."""
        self.queue.add(PASS_KEY)

    def on_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A pass soon when an IPAddress appears, goes, starts going (the original operator's finalizer
        waits for us) or changes its spec (not for our annotations)."""
        key = key_of(body)
        spec = repr(sorted((body.get("spec") or {}).items()))
        # Going away, its finalizers count: the original's may wait for us behind another one.
        going = f" finalizers={body['metadata'].get('finalizers')}" if is_deleting(body) else ""
        fingerprint = "" if event_type == "DELETED" else spec + going
        with self.lock:
            before = self.fingerprints.get(key)
            if event_type == "DELETED":
                self.fingerprints.pop(key, None)
                self.pending.reset(key)
            else:
                self.fingerprints[key] = fingerprint
        if event_type == "DELETED" or before != fingerprint:
            self.queue.add(PASS_KEY, DEBOUNCE_SECONDS)

    def run(self, _key: Key) -> float:
        """The queue's handler: one pass; returns the seconds until the next one is due."""
        outcome = self.passes.run(PASS_BODY, log)
        if not outcome.ok:
            return outcome.delay
        waiting = {item.key for item in self.steps.last_plan.pending}
        delays = [self.pending.failed(key) for key in waiting]
        with self.lock:
            for key in list(self.fingerprints):
                if key not in waiting:
                    self.pending.reset(key)
        return min([self.settings.resync_interval_seconds, *delays])
