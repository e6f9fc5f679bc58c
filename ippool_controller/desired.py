"""What an IPPoolImport should produce, from NetBox prefixes alone: one GlobalInClusterIPPool per
selected prefix, or the reason it gets none. Pure: no I/O, unit-tested on its own."""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

from argora_common.crds import IPPoolImportSpec, IPPoolSelector, PrefixProblem
from argora_common.identity import ARGORA_IPPOOL
from argora_common.kinds import ip_address
from argora_common.kube import Owner
from argora_common.names import label_value
from argora_common.netbox_schema import Prefix
from argora_common.prefixes import PrefixSelection, ScopedPrefix

# v1beta1: served by every Cluster API release since IPAddress exists (v1beta2 only since 1.11).
IP_ADDRESS: Final = ip_address("v1beta1")
FIELD_MANAGER: Final = ARGORA_IPPOOL.field_manager

# The original operator's naming rule for compute transit networks: one pool per compute block, numbered
# from 0 after the VLAN name's `computeN`.
COMPUTE_TRANSIT_ROLE: Final = "kubernetes-compute-transit"
COMPUTE_VLAN: Final = re.compile(r"compute(\d+)", re.IGNORECASE)
# The most addresses excludeLastNAddresses may list one by one: the pool must stay far below the API
# server's object size limit (1.5 MiB), and the operator must not build millions of strings for an IPv6 /64.
MAX_LAST_N_EXCLUDED: Final = 16384
_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

type Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnusablePrefixError(Exception):
    """One prefix cannot get a pool; `reason` is machine-readable, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class DesiredPool:
    name: str
    prefix_id: int
    prefix: str
    body: dict[str, Any]
    name_override: bool = False  # named by the selector's nameOverride, not after the prefix's site
    # Set by `resolve`: the pool is the original operator's, taken over under its own name.
    adopt: bool = False

    @cached_property
    def network(self) -> Network:
        return ipaddress.ip_network(self.prefix, strict=False)


@dataclass
class Plan:
    # In NetBox's order of their prefixes; a nameOverride's pool may still be wanted by several of them.
    pools: list[DesiredPool] = field(default_factory=list)
    problems: list[PrefixProblem] = field(default_factory=list)
    selected_prefix_ids: set[int] = field(default_factory=set)
    unmatched_selectors: list[int] = field(default_factory=list)  # indexes into spec.ippools
    # Why nothing may be pruned: a selector NetBox could not answer says nothing about its prefixes.
    prune_blocked: str = ""


def pool_name(selector: IPPoolSelector, scoped: ScopedPrefix) -> str:
    if selector.name_override is not None:
        return selector.name_override
    prefix, site = scoped.prefix, scoped.site
    if site is None:
        raise UnusablePrefixError(
            "NoSite", f"scoped to {prefix.scope_type or 'nothing'}, not to a site or location: name it by nameOverride"
        )
    vlan_match = COMPUTE_VLAN.search(prefix.vlan.name) if prefix.vlan is not None else None
    role = prefix.role.slug if prefix.role is not None else None
    if role and COMPUTE_TRANSIT_ROLE in role and vlan_match:
        if site.region is None or not site.region.slug:
            raise UnusablePrefixError(
                "NoRegion", f"site {site.slug} has no region, which a compute transit pool name needs"
            )
        region = site.region.slug
        block = int(vlan_match.group(1)) - 1
        name = f"{selector.name_prefix}-{site.slug.removeprefix(region)}{block}-{region}"
    else:
        name = f"{selector.name_prefix}-{site.slug}"
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise UnusablePrefixError("UnusableName", f"{name!r} is not a valid Kubernetes name")
    return name


def gateway(network: Network, custom_fields: dict[str, Any], field_name: str) -> str:
    """The prefix's gateway custom field (with or without a mask), else its first host."""
    value = custom_fields.get(field_name)
    if value in (None, ""):
        return str(next(iter(network.hosts()), network.network_address))
    text = str(value).strip().split("/")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        message = f"custom field {field_name!r} holds {value!r}, not an IP address"
        raise UnusablePrefixError("BadGateway", message) from None
    if address not in network:
        message = f"gateway {address} (custom field {field_name!r}) is outside {network}"
        raise UnusablePrefixError("BadGateway", message)
    return str(address)


def _family(entry: str) -> int | None:
    try:
        return ipaddress.ip_network(entry.split("-", maxsplit=1)[0], strict=False).version
    except ValueError:
        return None


def exclusions(selector: IPPoolSelector, network: Network) -> list[str]:
    excluded: list[str] = []
    if selector.exclude_mask is not None:
        if not network.prefixlen < selector.exclude_mask <= network.max_prefixlen:
            raise UnusablePrefixError(
                "BadExcludeMask",
                f"excludeMask {selector.exclude_mask} must be longer than the prefix's /{network.prefixlen}"
                f" and at most {network.max_prefixlen}",
            )
        excluded.append(f"{network.network_address}/{selector.exclude_mask}")
    # A selector may pick IPv4 and IPv6 prefixes alike: each pool gets the entries of its own family.
    excluded.extend(entry for entry in selector.excluded_addresses if _family(entry) == network.version)
    if selector.exclude_last_n_addresses:
        # The original operator's count: back from the prefix's last address (IPv4: the broadcast address
        # included), each address an entry of its own, never more than the prefix holds.
        count = min(selector.exclude_last_n_addresses, network.num_addresses)
        if count > MAX_LAST_N_EXCLUDED:
            raise UnusablePrefixError(
                "TooManyExclusions",
                f"excludeLastNAddresses {selector.exclude_last_n_addresses} would list {count} addresses of "
                f"{network} one by one, more than {MAX_LAST_N_EXCLUDED}: exclude a range a-b instead",
            )
        excluded.extend(str(network.broadcast_address - offset) for offset in reversed(range(count)))
    return excluded


def pool_body(
    name: str, scoped: ScopedPrefix, selector: IPPoolSelector, owner: Owner, label_prefix: str, gateway_field: str
) -> dict[str, Any]:
    prefix = scoped.prefix
    network = ipaddress.ip_network(prefix.prefix, strict=False)
    site = scoped.site
    # Every label always, empty when NetBox has no value: a label that lost its value must change too.
    labels = {
        **owner.labels(),
        f"{label_prefix}/prefix-id": str(prefix.id),
        f"{label_prefix}/site": label_value(site.slug) if site else "",
        f"{label_prefix}/region": label_value(site.region.slug or "") if site and site.region else "",
        f"{label_prefix}/role": label_value(prefix.role.slug or "") if prefix.role else "",
        f"{label_prefix}/vlan": str(prefix.vlan.vid) if prefix.vlan else "",
    }
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "addresses": [str(network)],
            "prefix": network.prefixlen,
            "gateway": gateway(network, prefix.custom_fields, gateway_field),
            # Always written, also empty: exclusions dropped in NetBox or the spec must leave the pool.
            "excludedAddresses": exclusions(selector, network),
        },
    }


def netbox_order(prefix: Prefix) -> tuple[int, int, int, int, int]:
    """NetBox's default order of prefixes (VRF with none first, then the prefix, then the id), in which
    the original operator met them: the first of them got a contested pool name. Our reads page by id."""
    network = ipaddress.ip_network(prefix.prefix, strict=False)
    vrf = prefix.vrf.id if prefix.vrf is not None else -1
    return vrf, network.version, int(network.network_address), network.prefixlen, prefix.id


def plan(
    selection: PrefixSelection, spec: IPPoolImportSpec, owner: Owner, label_prefix: str, gateway_field: str
) -> Plan:
    result = Plan(selected_prefix_ids=selection.prefix_ids)
    if selection.selector_errors:
        failed = ", ".join(f"spec.ippools[{index}]" for index in sorted(selection.selector_errors))
        result.prune_blocked = f"NetBox could not answer {failed}; nothing is pruned"
    order: dict[int, tuple[int, int, int, int, int]] = {}
    candidates: dict[str, list[tuple[int, DesiredPool]]] = defaultdict(list)
    for index, (selector, prefixes) in enumerate(zip(spec.ippools, selection.by_selector, strict=True)):
        if not prefixes:
            result.unmatched_selectors.append(index)
        for scoped in sorted(prefixes, key=lambda scoped: netbox_order(scoped.prefix)):
            order[scoped.prefix.id] = netbox_order(scoped.prefix)
            try:
                name = pool_name(selector, scoped)
                body = pool_body(name, scoped, selector, owner, label_prefix, gateway_field)
            except UnusablePrefixError as skipped:
                result.problems.append(
                    PrefixProblem(
                        prefix=scoped.prefix.prefix,
                        prefix_id=scoped.prefix.id,
                        reason=skipped.reason,
                        message=f"spec.ippools[{index}]: {skipped}",
                    )
                )
                continue
            desired = DesiredPool(
                name, scoped.prefix.id, scoped.prefix.prefix, body, name_override=selector.name_override is not None
            )
            candidates[name].append((index, desired))
    for name, pools in candidates.items():
        # Two selectors picking the same prefix under the same name and the same spec agree.
        if all(pool.body == pools[0][1].body for _, pool in pools):
            result.pools.append(pools[0][1])
            continue
        # A nameOverride names one pool, whatever its selector matches: as with the original operator, one
        # prefix keeps it (`resolve` decides which) and the others get none.
        if all(pool.name_override and index == pools[0][0] for index, pool in pools):
            result.pools.extend(pool for _, pool in pools)
            continue
        # Prefixes of one site, or selectors naming pools alike: no rule says which prefix is meant.
        for _, pool in pools:
            others = sorted({other.prefix for _, other in pools if other is not pool})
            result.problems.append(
                PrefixProblem(
                    prefix=pool.prefix,
                    prefix_id=pool.prefix_id,
                    pool=name,
                    reason="NameCollision",
                    message=f"pool name {name!r} would also be the name of the pool of {', '.join(others)}",
                )
            )
    result.pools.sort(key=lambda pool: order[pool.prefix_id])
    return result
