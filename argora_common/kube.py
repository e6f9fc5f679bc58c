"""Kubernetes helpers: where each kind lives, labels and annotations, server-side apply under one field manager."""

from __future__ import annotations

import base64
import threading
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.apiserver import THROTTLE_ATTEMPTS, Throttle, load_api_client, retry_after
from argora_common.crds import GROUP, VERSION, CustomResource
from argora_common.metrics import KUBE_THROTTLED, KUBE_WRITES
from argora_common.names import is_object_name, name_label_value
from argora_common.peering import LEASE

ARGORA_DOMAIN: Final = GROUP
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
OWNER_NAMESPACE_LABEL: Final = f"{ARGORA_DOMAIN}/owner-namespace"
OWNER_NAME_LABEL: Final = f"{ARGORA_DOMAIN}/owner-name"
IGNORE_ANNOTATION: Final = f"{ARGORA_DOMAIN}/ignore"
# Set (to any new value) to ask for a pass now rather than at the next resync.
SYNC_ANNOTATION: Final = f"{ARGORA_DOMAIN}/sync-requested"


@dataclass(frozen=True)
class Kind:
    """Where a resource lives in the API: enough to list, apply and delete it with the plain REST client."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path; a namespace or name that is no object name is refused (ValueError), never sent."""
        for segment in (namespace, name):
            if segment and not is_object_name(segment):
                raise ValueError(f"{segment!r} is not a Kubernetes object name")
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{urllib.parse.quote(name, safe='')}" if name else base


def argora_kind(resource: CustomResource) -> Kind:
    """Where one of Argora's own resources lives in the API."""
    return Kind(GROUP, VERSION, resource.kind, resource.plural, namespaced=True)


def b64(text: str) -> str:
    """A Secret's data value."""
    return base64.b64encode(text.encode()).decode()


SECRET: Final = Kind("", "v1", "Secret", "secrets", namespaced=True)
EVENT: Final = Kind("", "v1", "Event", "events", namespaced=True)


@dataclass(frozen=True)
class Owner:
    """The resource whose objects these are, recorded in labels: an owner reference would not do
    (cluster-scoped objects cannot point at a namespaced owner, and garbage collection would delete
    hosts that must only go on purpose)."""

    namespace: str
    name: str
    manager: str  # the controller's field manager, e.g. argora-ironcore

    def labels(self) -> dict[str, str]:
        # A namespace's name is a DNS label, which always fits; a resource's name may be 253 characters.
        return {
            OWNER_NAMESPACE_LABEL: self.namespace,
            OWNER_NAME_LABEL: name_label_value(self.name),
            MANAGED_BY_LABEL: self.manager,
        }

    def selector(self) -> str:
        return ",".join(f"{key}={value}" for key, value in self.labels().items())

    def owns(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(labels.get(key) == value for key, value in self.labels().items())


class ObjectIndex(Protocol):
    """The objects of one kind as a watch keeps them (argora_common.watch), told of our own writes."""

    def current(self, wanted: Collection[str], namespace: str | None = None) -> dict[str, dict[str, Any]]: ...

    def record(self, obj: Mapping[str, Any]) -> None: ...

    def deleted(self, namespace: str | None, name: str, answer: Mapping[str, Any]) -> None: ...


class WriteOutcome(StrEnum):
    CREATED = "create"
    UPDATED = "update"
    UNCHANGED = "unchanged"


_MUTATING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Kube:
    """A thin typed layer over the REST client for any kind, including CRDs we have no models for.

    At most `writes_in_flight` writes are sent at once, whichever threads send them."""

    def __init__(self, api: client.ApiClient, field_manager: str, writes_in_flight: int = 1) -> None:
        self.api = api
        self.field_manager = field_manager
        self.writes_in_flight = writes_in_flight
        self._writes = threading.BoundedSemaphore(writes_in_flight)
        self._throttle = Throttle()
        # Watch indexes by kind: passes read the live objects from them, our writes' answers update them.
        self.indexes: dict[Kind, ObjectIndex] = {}

    @classmethod
    def connect(cls, field_manager: str, writes_in_flight: int = 1) -> Kube:
        """A Kube for this process's API server (load_api_client) with room for the writes in flight."""
        return cls(load_api_client(writes_in_flight), field_manager, writes_in_flight)

    @property
    def controller(self) -> str:
        """The controller's short name (`ironcore` for field manager `argora-ironcore`), for metrics."""
        return self.field_manager.removeprefix("argora-")

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: object | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        attempt = 1
        while True:
            self._throttle.wait()
            try:
                if method in _MUTATING:
                    with self._writes:
                        LEASE.fence()  # a replica whose Lease ran out exits instead of writing
                        answer = self._send(method, path, query, body, content_type, timeout)
                    KUBE_WRITES.labels(controller=self.controller, method=method).inc()
                    return answer
                return self._send(method, path, query, body, content_type, timeout)
            except ApiException as error:
                if error.status != 429 or attempt == THROTTLE_ATTEMPTS:
                    raise
                KUBE_THROTTLED.labels(controller=self.controller).inc()
                self._throttle.back_off(retry_after(error, attempt))
                attempt += 1

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: object | None,
        content_type: str,
        timeout: float | None,
    ) -> dict[str, Any]:
        response = self.api.call_api(
            path,
            method,
            query_params=list(query),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            response_type="object",
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
        return dict(response or {})

    def served_version(self, group: str, wanted: Sequence[str]) -> str:
        """The first of `wanted` that the API server serves for `group`."""
        try:
            served = {entry["version"] for entry in self._call("GET", f"/apis/{group}").get("versions", [])}
        except ApiException as error:
            if error.status != 404:
                raise
            served = set()
        for version in wanted:
            if version in served:
                return version
        raise RuntimeError(f"the API server serves none of {', '.join(wanted)} of {group}: are its CRDs installed?")

    def get(
        self, kind: Kind, name: str, namespace: str | None = None, *, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when there is none; `timeout` (seconds) bounds the connect and the answer."""
        try:
            return self._call("GET", kind.path(namespace, name), timeout=timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list_versioned(
        self,
        kind: Kind,
        namespace: str | None = None,
        label_selector: str | None = None,
        keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every page of a list, each item passed through `keep` as it comes, and the list's resource
        version (where a watch continues)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        items: list[dict[str, Any]] = []
        continue_token: str | None = None
        while True:
            page_query = [*query, ("limit", "500")]
            if continue_token:
                page_query.append(("continue", continue_token))
            try:
                page = self._call("GET", kind.path(namespace), query=page_query)
            except ApiException as error:
                if error.status != 410 or not continue_token:
                    raise
                # The continue token expired (the API server compacts etcd past the list's version every
                # five minutes): the pages so far are of a version that is gone. As client-go's pager
                # does, list everything again, in one unpaged request.
                page = self._call("GET", kind.path(namespace), query=query)
                items = []
            items.extend(keep(item) if keep else item for item in page.get("items") or [])
            metadata = page.get("metadata") or {}
            continue_token = metadata.get("continue")
            if not continue_token:
                return items, str(metadata.get("resourceVersion", ""))

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None) -> list[dict[str, Any]]:
        return self.list_versioned(kind, namespace, label_selector)[0]

    def live(self, kind: Kind, wanted: Collection[str], namespace: str | None = None) -> dict[str, dict[str, Any]]:
        """The objects a pass converges, by name: from the kind's watch index when there is one (see
        `ObjectIndex.current`), else every object of the kind (in `namespace`) from a list."""
        index = self.indexes.get(kind)
        if index is not None:
            return index.current(wanted, namespace)
        return {obj["metadata"]["name"]: obj for obj in self.list(kind, namespace)}

    def apply(
        self, kind: Kind, body: Mapping[str, Any], *, subresource: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Server-side apply `body` (the fields we own, nothing else) and return the object; `timeout` as
        for `get`."""
        metadata = body["metadata"]
        path = kind.path(metadata.get("namespace"), metadata["name"])
        if subresource:
            path += f"/{subresource}"
        manifest = {"apiVersion": kind.api_version, "kind": kind.kind, **body}
        applied = self._call(
            "PATCH",
            path,
            query=[("fieldManager", self.field_manager), ("force", "true")],
            body=manifest,
            content_type="application/apply-patch+yaml",
            timeout=timeout,
        )
        if kind in self.indexes and not subresource:
            self.indexes[kind].record(applied)
        return applied

    def annotate(
        self, kind: Kind, name: str, namespace: str | None, annotations: Mapping[str, str | None], uid: str = ""
    ) -> bool:
        """Merge `annotations` into the object's (a merge patch: no field ownership taken; None removes
        one, also one another field manager wrote); False when the object does not exist, or is no longer
        the object `uid` names."""
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if uid:
            metadata["uid"] = uid
        try:
            self._call(
                "PATCH",
                kind.path(namespace, name),
                query=[("fieldManager", self.field_manager)],
                body={"metadata": metadata},
                content_type="application/merge-patch+json",
            )
        except ApiException as error:
            # A uid that is not the object's is refused as an attempt to change it (422).
            if error.status == 404 or (uid and error.status == 422):
                return False
            raise
        return True

    def remove_finalizer(self, kind: Kind, obj: Mapping[str, Any], finalizer: str) -> bool:
        """Take `finalizer` off the very object `obj` was, leaving any other finalizer; False when the object
        is gone, or its finalizers changed since `obj` was read (the next read sees them). A JSON patch
        that tests the uid and the finalizer's place first: nothing else is read or replaced."""
        metadata = obj["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        if finalizer not in finalizers:
            return True
        place = f"/metadata/finalizers/{finalizers.index(finalizer)}"
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": metadata["uid"]},
            {"op": "test", "path": place, "value": finalizer},
            {"op": "remove", "path": place},
        ]
        try:
            self._call(
                "PATCH",
                kind.path(metadata.get("namespace"), metadata["name"]),
                body=patch,
                content_type="application/json-patch+json",
            )
        except ApiException as error:
            # 404: gone; 409/422: a test failed, the object is not as it was read.
            if error.status in (404, 409, 422):
                return False
            raise
        return True

    def create(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        manifest = {"apiVersion": kind.api_version, "kind": kind.kind, **body}
        return self._call("POST", kind.path(body["metadata"].get("namespace")), body=manifest)

    def apply_if_changed(self, kind: Kind, desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> WriteOutcome:
        """Apply `desired` unless `live` already has every field of it: unchanged objects cost nothing. A
        change names `live`'s uid: an object someone made anew under the name since `live` was read (a
        watch index a moment behind) is refused (422: the uid cannot change), never taken over by the forced
        apply."""
        if live is not None and is_subset(desired, live):
            return WriteOutcome.UNCHANGED
        if live is not None and "uid" not in desired["metadata"]:
            desired = {**desired, "metadata": {**desired["metadata"], "uid": live["metadata"]["uid"]}}
        self.apply(kind, desired)
        return WriteOutcome.CREATED if live is None else WriteOutcome.UPDATED

    def delete(self, kind: Kind, name: str, namespace: str | None = None, *, uid: str = "") -> bool:
        """Delete; False when it was already gone. With `uid`, only that very object: one someone made anew
        under the name since it was read is left (and counts as gone: ours is)."""
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}} if uid else None
        try:
            answer = self._call("DELETE", kind.path(namespace, name), body=options)
        except ApiException as error:
            if uid and error.status == 409:
                return False
            if error.status == 404:
                if kind in self.indexes:
                    self.indexes[kind].deleted(namespace, name, {})
                return False
            raise
        if kind in self.indexes:
            self.indexes[kind].deleted(namespace, name, answer)
        return True


def is_ignored(obj: Mapping[str, Any] | None) -> bool:
    """A person took this object over: `argora.cloud.sap/ignore: "true"`."""
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(IGNORE_ANNOTATION, "")).lower() == "true"


def label_int(obj: Mapping[str, Any], key: str) -> int | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(key)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def is_subset(desired: object, live: object) -> bool:
    """True when every field of `desired` has the same value in `live`: applying would change nothing."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and is_subset(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(want, have) for want, have in zip(desired, live, strict=True))
        )
    return desired == live
