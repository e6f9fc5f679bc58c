"""Where each desired pool goes among the GlobalInClusterIPPools that exist: a prefix keeps the pool that
holds it (ours by its prefix-id label, or the original operator's by its network), gets its computed name,
or is reported when another pool already hands out its addresses or two prefixes end on one name. Pure:
no I/O, unit-tested on its own."""

from __future__ import annotations

import ipaddress
import math
from bisect import bisect_right, insort
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from argora_common.converge import unowned
from argora_common.crds import PrefixProblem
from argora_common.kube import Owner, is_ignored, label_int
from ippool_controller.desired import DesiredPool, Network

# One entry of a pool's spec.addresses as the addresses it holds: IP version, first and last as integers.
type Span = tuple[int, int, int]


@dataclass
class Resolution:
    """Where each desired pool goes among the live ones, and the prefixes that get none."""

    pools: list[DesiredPool] = field(default_factory=list)
    problems: list[PrefixProblem] = field(default_factory=list)


def _span(entry: str) -> Span | None:
    """The addresses one pool entry holds: a CIDR, a single address or a range a-b; None for anything else."""
    try:
        if "-" in entry:
            first, last = (ipaddress.ip_address(part.strip()) for part in entry.split("-", maxsplit=1))
            return (first.version, int(first), int(last)) if first.version == last.version else None
        return _network_span(ipaddress.ip_network(entry.strip(), strict=False))
    except ValueError:
        return None


def _network_span(network: Network) -> Span:
    return network.version, int(network.network_address), int(network.broadcast_address)


def pool_spans(pool: Mapping[str, Any]) -> list[Span]:
    entries = (pool.get("spec") or {}).get("addresses") or []
    return [span for entry in entries if isinstance(entry, str) and (span := _span(entry)) is not None]


def sole_network(pool: Mapping[str, Any] | None) -> Network | None:
    """The network a pool hands out when it is all it hands out (10.0.0.7/24 is 10.0.0.0/24), else None."""
    entries = ((pool or {}).get("spec") or {}).get("addresses") or []
    if len(entries) != 1 or not isinstance(entries[0], str):
        return None
    try:
        return ipaddress.ip_network(entries[0].strip(), strict=False)
    except ValueError:
        return None


def holds_exactly(pool: Mapping[str, Any] | None, network: Network) -> bool:
    return sole_network(pool) == network


class AddressHolders:
    """Which pool hands out an address of a network: the live pools, whatever their entries (they may
    overlap), and the networks this pass adds (each checked against all before it, so they never overlap).
    A lookup takes a binary search, not a walk over every pool: a first pass may create thousands."""

    def __init__(self, live: Mapping[str, Mapping[str, Any]]) -> None:
        # By IP version: (first, last, pool) sorted by first, and the highest `last` so far at each position.
        self._live: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        for name, pool in live.items():
            for version, first, last in pool_spans(pool):
                self._live[version].append((first, last, name))
        self._reach: dict[int, list[int]] = {}
        for version, spans in self._live.items():
            spans.sort()
            self._reach[version] = list(accumulate((last for _, last, _ in spans), max))
        self._added: dict[int, list[tuple[int, int, str]]] = defaultdict(list)

    def holder(self, network: Network, besides: str | None = None) -> str | None:
        """A pool other than `besides` holding an address of `network`, or None."""
        version, first, last = _network_span(network)
        spans = self._live.get(version, [])
        end = bisect_right(spans, (last, math.inf))  # the spans starting at or before `last`
        if end and self._reach[version][end - 1] >= first:
            found = next((name for _, high, name in spans[:end] if high >= first and name != besides), None)
            if found is not None:
                return found
        added = self._added[version]
        # Disjoint and sorted: only the last one starting at or before `last` can reach `first`.
        end = bisect_right(added, (last, math.inf))
        if end and added[end - 1][1] >= first:
            return added[end - 1][2]
        return None

    def add(self, name: str, network: Network) -> None:
        version, first, last = _network_span(network)
        insort(self._added[version], (first, last, name))


def _preferred(names: Sequence[str], computed: str) -> str:
    return computed if computed in names else min(names)


def _in_live_order(desired: dict[str, Any], live: Mapping[str, Any] | None) -> dict[str, Any]:
    """`desired` with the live pool's order of the same excluded addresses: an order alone is no change
    worth a write (the original operator's pools may list them otherwise)."""
    wanted = desired["spec"]["excludedAddresses"]
    have = ((live or {}).get("spec") or {}).get("excludedAddresses")
    if not isinstance(have, list) or have == wanted or Counter(have) != Counter(wanted):
        return desired
    return {**desired, "spec": {**desired["spec"], "excludedAddresses": list(have)}}


def resolve(
    pools: Sequence[DesiredPool], live: Iterable[Mapping[str, Any]], owner: Owner, prefix_id_label: str
) -> Resolution:
    """Which live GlobalInClusterIPPool each desired pool (in NetBox's order) goes to, so that no prefix
    is in two pools, whatever name the original operator gave its pool:

    a. our pool labelled with the prefix id keeps its name (the computed one if there are several);
    b. else the original operator's pool (no owner labels) of exactly the prefix's network is adopted
       under its name;
    c. else a pool holding any of the prefix's addresses (anybody's) means PrefixInOtherPool: nothing
       is written, the in-cluster IPAM would hand those addresses out twice;
    d. else the computed name.
    Two prefixes left on one name: the one whose network the live pool holds keeps it, else the first.
    The check of c also stops a pool of ours from moving onto addresses another pool holds, and a pool
    this pass writes counts as holding its network."""
    live_by_name = {pool["metadata"]["name"]: pool for pool in live}
    placed = _place(pools, live_by_name, owner, prefix_id_label)
    result = Resolution()
    kept: list[tuple[int, DesiredPool]] = []
    for name, candidates in placed.items():
        held = [candidate for candidate in candidates if holds_exactly(live_by_name.get(name), candidate[1].network)]
        winner = (held or candidates)[0]
        kept.append(winner)
        for _, loser in candidates:
            if loser is winner[1]:
                continue
            # The same prefix selected twice (under two names) already has its pool: that is no name clash.
            same_prefix = loser.prefix_id == winner[1].prefix_id
            result.problems.append(
                _in_other_pool(loser, name) if same_prefix else _collision(winner[1], loser, held=bool(held))
            )
    holders = AddressHolders(live_by_name)
    for _, desired in sorted(kept, key=lambda candidate: candidate[0]):
        current = live_by_name.get(desired.name)
        if not is_ignored(current) and not holds_exactly(current, desired.network):
            # The write would put the network into this pool: our own pool of that name is rewritten, any
            # other pool that holds some of its addresses stays as it is, and so the prefix gets none.
            ours = current is not None and owner.owns(current)
            other = holders.holder(desired.network, besides=desired.name if ours else None)
            if other is not None:
                result.problems.append(_in_other_pool(desired, other, own_pool=desired.name if ours else ""))
                continue
            holders.add(desired.name, desired.network)
        result.pools.append(desired)
    return result


def _place(
    pools: Sequence[DesiredPool], live_by_name: Mapping[str, Mapping[str, Any]], owner: Owner, prefix_id_label: str
) -> dict[str, list[tuple[int, DesiredPool]]]:
    """Rules a, b and d: the name each desired pool goes to, with its place in NetBox's order."""
    ours_by_prefix: dict[int | None, list[str]] = defaultdict(list)
    originals_by_network: dict[Network, list[str]] = defaultdict(list)
    for name, pool in live_by_name.items():
        if owner.owns(pool):
            ours_by_prefix[label_int(pool, prefix_id_label)].append(name)
        elif unowned(pool) and not is_ignored(pool) and (network := sole_network(pool)) is not None:
            originals_by_network[network].append(name)
    placed: dict[str, list[tuple[int, DesiredPool]]] = defaultdict(list)
    for position, desired in enumerate(pools):
        ours = ours_by_prefix.get(desired.prefix_id)
        originals = originals_by_network.get(desired.network)
        if ours:
            name, adopt = _preferred(ours, desired.name), False
        elif originals:
            name, adopt = _preferred(originals, desired.name), True
        else:
            name, adopt = desired.name, False
        body = {**desired.body, "metadata": {**desired.body["metadata"], "name": name}}
        body = _in_live_order(body, live_by_name.get(name))
        placed[name].append((position, replace(desired, name=name, body=body, adopt=adopt)))
    return placed


def _in_other_pool(desired: DesiredPool, other: str, own_pool: str = "") -> PrefixProblem:
    return PrefixProblem(
        prefix=desired.prefix,
        prefix_id=desired.prefix_id,
        pool=own_pool,
        reason="PrefixInOtherPool",
        message=f"GlobalInClusterIPPool {other} already holds addresses of {desired.prefix}: a second pool would "
        "hand them out twice, so none is written",
    )


def _collision(winner: DesiredPool, loser: DesiredPool, *, held: bool) -> PrefixProblem:
    if loser.name_override:
        kept = f"{winner.prefix}, which the pool holds" if held else f"the first prefix, {winner.prefix}"
        message = f"nameOverride {loser.name!r} names one pool: it keeps {kept}"
    else:
        kept = "which it holds" if held else "the first in NetBox's order"
        message = f"pool {loser.name!r} goes to {winner.prefix}, {kept}"
    return PrefixProblem(
        prefix=loser.prefix, prefix_id=loser.prefix_id, pool=loser.name, reason="NameCollision", message=message
    )
