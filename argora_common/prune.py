"""Which owned objects a pass may delete: pure, shared by the controllers that prune.

Guards, in order: objects of devices still selected (even with bad data) are kept; nothing is deleted
when pruning is off or when NetBox selected nothing at all (far more likely a permission or selector
problem than an emptied data centre); and never more than a cap per pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from argora_common.kube import Kind, label_int

# The default cap: 10% of the owned objects, but a small set may still lose a handful in one pass.
DEFAULT_PRUNE_SHARE = 0.10
MIN_PRUNE_CAP = 5


@dataclass(frozen=True)
class OwnedObject:
    kind: Kind
    name: str
    device_id: int | None  # from the object's NetBox device id label
    uid: str = ""  # the object as read: a delete takes only that one

    @classmethod
    def of(cls, kind: Kind, obj: Mapping[str, Any], device_id_label: str) -> OwnedObject:
        return cls(kind, obj["metadata"]["name"], label_int(obj, device_id_label), obj["metadata"].get("uid", ""))

    def __str__(self) -> str:
        return f"{self.kind.kind}/{self.name}"


@dataclass
class PruneDecision:
    delete: list[OwnedObject] = field(default_factory=list)
    held_back: list[OwnedObject] = field(default_factory=list)
    reason: str = ""


def default_cap(owned_count: int) -> int:
    return max(MIN_PRUNE_CAP, math.ceil(DEFAULT_PRUNE_SHARE * owned_count))


def decide_prune(
    owned: Iterable[OwnedObject],
    desired_names: set[str],
    selected_device_ids: set[int],
    named_device_ids: set[int],
    *,
    enabled: bool,
    disabled_reason: str,
    cap: int | None,
) -> PruneDecision:
    """`named_device_ids`: devices that got an object this pass (under a name in `desired_names`)."""
    owned = list(owned)
    stale = []
    for obj in owned:
        if obj.name in desired_names:
            continue
        # A selected device keeps its objects while it has a problem; under a new name (renamed in
        # NetBox) its objects under the old one are stale.
        if obj.device_id in selected_device_ids and obj.device_id not in named_device_ids:
            continue
        stale.append(obj)
    # Pairs (same name) stay together, so a held-back pair stays whole.
    stale.sort(key=lambda obj: (obj.name, obj.kind.kind))
    limit = default_cap(len(owned)) if cap is None else cap
    decision = PruneDecision()
    if not stale:
        return decision
    if not enabled:
        allowed, decision.reason = 0, disabled_reason
    elif not selected_device_ids:
        allowed, decision.reason = 0, "NetBox selected nothing at all; nothing is pruned"
    else:
        allowed = limit
        if len(stale) > limit:
            decision.reason = f"at most {limit} objects are pruned per pass"
    if 0 < allowed < len(stale) and stale[allowed - 1].name == stale[allowed].name:
        # Never split a pair at the cap (a BMC without its BMCSecret, or the reverse, helps nobody): a cap
        # someone set is never exceeded, the default one is counted in whole pairs.
        allowed += 1 if cap is None else -1
    decision.delete, decision.held_back = stale[:allowed], stale[allowed:]
    return decision
