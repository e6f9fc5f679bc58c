"""Apply a plan: NetBox first (create each address or adopt the original operator's, make it primary, do
the releases the original operator's finalizer asks for and take the finalizer off, delete released
addresses after reading them again, deletes within the cap), then the annotations of each IPAddress. A dry
run writes nothing to NetBox, leaves the finalizers, and says on each IPAddress what it would write.

One address whose write NetBox refuses is reported and the others go on; a token that may not write
stops the pass at its first write (every further write would be refused the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kubernetes.client.exceptions import ApiException

from argora_common.kube import Kind, Kube, WriteOutcome
from argora_common.metrics import OBJECTS_WRITTEN
from argora_common.netbox import NetBox, NetBoxRejectedError, NetBoxWriteForbiddenError
from argora_common.netbox_schema import DEVICES, IP_ADDRESSES, TAGS, IPAddress
from argora_common.status import post_event
from ipaddress_controller.chain import Key
from ipaddress_controller.desired import (
    ANNOTATIONS,
    ORIGINAL_FINALIZER,
    SYNC_STATUS_ANNOTATION,
    AddressPlan,
    Handover,
    Plan,
    State,
    annotation_writers,
    description,
)


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # the original operator's addresses, tagged as ours
    primaries: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)  # releases beyond the cap
    kept: list[str] = field(default_factory=list)  # released, but moved since we created them
    handed_over: list[str] = field(default_factory=list)  # IPAddresses the original's finalizer came off
    failed: int = 0
    annotated: int = 0


class Applier:
    def __init__(
        self,
        netbox: NetBox,
        kube: Kube,
        ip_address: Kind,
        tag_slug: str,
        tag_id: int | None,
        *,
        dry_run: bool,
        max_deletes: int,
    ) -> None:
        self.netbox = netbox
        self.kube = kube
        self.ip_address = ip_address
        self.tag_slug = tag_slug
        self.dry_run = dry_run
        self.tag_id = tag_id
        self.deletes_left = max_deletes
        self.result = ApplyResult()

    def apply(
        self, plan: Plan, live: Mapping[Key, Mapping[str, Any]], going: Mapping[Key, Mapping[str, Any]]
    ) -> ApplyResult:
        """`live`: the IPAddresses planned, as read; `going`: those with the original's finalizer, as read."""
        for item in plan.addresses:
            if item.state is State.SYNCED:
                self._guarded(item, partial(self._write_address, item))
        for handover in plan.handovers:
            self._hand_over(handover, going.get(handover.key))
        self._release(plan)
        for item in plan.addresses:
            self._annotate(item, live.get(item.key))
        return self.result

    def _guarded(self, item: AddressPlan, write: Callable[[], None]) -> None:
        try:
            write()
        except NetBoxRejectedError as error:
            if error.status_code == 403:
                raise NetBoxWriteForbiddenError(str(error), error.status_code) from error
            item.state, item.reason, item.message = State.CONFLICT, "Rejected", str(error)
            self.result.failed += 1

    def _count(self, kind: str, action: str) -> None:
        if not self.dry_run:
            OBJECTS_WRITTEN.labels(controller=self.kube.controller, kind=kind, action=action).inc()

    def _write_address(self, item: AddressPlan) -> None:
        assert item.device is not None and item.interface is not None
        address_id = item.existing.id if item.existing else None
        if item.create is not None:
            if not self.dry_run:
                address_id = self.netbox.create(IP_ADDRESSES, **item.create, tags=[self._tag()])
            self.result.created.append(item.address)
            self._count("IPAddress", "create")
        elif item.adopt and item.existing is not None:
            # Tagged, it is released like the addresses we created; a description of ours (the original
            # wrote none) says where it was, and one someone wrote is kept.
            fields: dict[str, Any] = {"tags": [*(tag.id for tag in item.existing.tags), self._tag()]}
            if not item.existing.description:
                fields["description"] = description(item.key, item.interface.id)
            if not self.dry_run:
                self.netbox.update(IP_ADDRESSES, item.existing.id, **fields)
            self.result.adopted.append(item.address)
            self._count("IPAddress", "update")
        if item.make_primary:
            field_name = "primary_ip6" if ":" in item.address else "primary_ip4"
            if not self.dry_run:
                self.netbox.update(DEVICES, item.device.id, **{field_name: address_id})
            self.result.primaries.append(f"{item.device.name}: {item.address}")
            self._count("Device", "update")
        item.message = self._what_was_done(item)

    def _what_was_done(self, item: AddressPlan) -> str:
        """What NetBox records, the same on every pass (a changed message would rewrite the annotation);
        a dry run says what it would write."""
        assert item.interface is not None and item.device is not None
        message = f"{item.address} on {item.device.name} {item.interface.name}"
        message += ", primary IP" if item.primary else ""
        if not self.dry_run:
            return message
        writes = [
            *(["create the address"] if item.create else []),
            *(["tag it as argora-ipaddress's"] if item.adopt else []),
            *(["make it primary"] if item.make_primary else []),
        ]
        return f"dry run, would {' and '.join(writes)}: {message}" if writes else message

    def _tag(self) -> int:
        """Our tag's id (the read found it), making the tag on first use."""
        if self.tag_id is None:
            self.tag_id = self.netbox.create(TAGS, name=self.tag_slug, slug=self.tag_slug)
        return self.tag_id

    def _take_delete(self) -> bool:
        """One delete of the pass's cap, when there is one left."""
        if self.deletes_left <= 0:
            return False
        self.deletes_left -= 1
        return True

    def _hand_over(self, handover: Handover, going: Mapping[str, Any] | None) -> None:
        """The release the original's finalizer stands for, then the finalizer comes off. Beyond the cap,
        and in a dry run, the finalizer stays: the IPAddress waits for its release instead of losing it."""
        if going is None:
            return
        if handover.delete is not None:
            if not self._take_delete():
                self.result.held_back.append(handover.address)
                return
            if self.dry_run:
                self.result.released.append(handover.address)
                return
            if self._still_where(handover.delete, handover.interface_id):
                self.netbox.delete(IP_ADDRESSES, handover.delete.id)
                self.result.released.append(handover.address)
                self._count("IPAddress", "delete")
            else:
                self.result.kept.append(handover.address)
        if self.dry_run or not self.kube.remove_finalizer(self.ip_address, going, ORIGINAL_FINALIZER):
            return
        self.result.handed_over.append(f"{handover.key[0]}/{handover.key[1]}")
        if handover.note:
            post_event(self.kube, going, "Normal", "ReleasedWithoutDelete", f"NetBox is left as it is: {handover.note}")

    def _release(self, plan: Plan) -> None:
        self.result.kept.extend(release.address.address for release in plan.kept)
        for release in plan.releases:
            if plan.release_hold or not self._take_delete():
                self.result.held_back.append(release.address.address)
                continue
            if self.dry_run or self._still_where(release.address, release.interface_id):
                if not self.dry_run:
                    self.netbox.delete(IP_ADDRESSES, release.address.id)
                self.result.released.append(release.address.address)
                self._count("IPAddress", "delete")
            else:
                self.result.kept.append(release.address.address)

    def _still_where(self, address: IPAddress, interface_id: int | None) -> bool:
        """Read the address again right before deleting it: it must still be that address, on the
        interface it was put on."""
        current = self.netbox.get(IP_ADDRESSES, address.id)
        return (
            current is not None
            and current.address == address.address
            and current.assigned_object_type == "dcim.interface"
            and current.assigned_object_id == interface_id
        )

    def _annotate(self, item: AddressPlan, live: Mapping[str, Any] | None) -> None:
        """Write the IPAddress's annotations when they changed; an Event when its state or reason did."""
        if live is None:
            return
        wanted = item.annotations()
        before = (live.get("metadata") or {}).get("annotations") or {}
        if annotate_exactly(self.kube, self.ip_address, live, wanted) in (WriteOutcome.UNCHANGED, None):
            return
        self.result.annotated += 1
        if before.get(SYNC_STATUS_ANNOTATION) == wanted[SYNC_STATUS_ANNOTATION]:
            return
        event_type = "Normal" if item.state is State.SYNCED else "Warning"
        post_event(self.kube, live, event_type, item.reason or "Recorded", item.message or item.state.value)


def annotate_exactly(
    kube: Kube, kind: Kind, live: Mapping[str, Any], annotations: Mapping[str, str]
) -> WriteOutcome | None:
    """Apply our annotations to the very IPAddress `live` was, when they differ from its own; None when it
    is gone (or was made again) since it was read. A server-side apply makes an object that is missing: an
    IPAddress released in the middle of a pass would come back as an empty one (v1beta1), or the apply be
    refused as invalid and fail the pass (v1beta2). Its uid in the apply is a precondition instead.

    Those of our annotations the IPAddress has and `annotations` leaves out go: the apply drops the ones
    only we wrote, a merge patch those another field manager wrote too (the original operator's `conflicted`
    on an address now in sync)."""
    metadata = live["metadata"]
    have = metadata.get("annotations") or {}
    written_by_others: dict[str, str | None] = {
        name: None
        for name in ANNOTATIONS
        if name in have and name not in annotations and annotation_writers(live, name) - {(kube.field_manager, "Apply")}
    }
    if written_by_others and not kube.annotate(
        kind, metadata["name"], metadata["namespace"], written_by_others, uid=metadata["uid"]
    ):
        return None
    body = {
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "annotations": dict(annotations),
        }
    }
    try:
        outcome = kube.apply_if_changed(kind, body, live)
    except ApiException as error:
        # 404/409: gone; 422: made anew under the name (its uid is not the one we name).
        if error.status in (404, 409, 422):
            return None
        raise
    return WriteOutcome.UPDATED if written_by_others else outcome
