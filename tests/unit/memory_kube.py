"""A small in-memory stand-in for the Kubernetes API behind `argora_common.kube.Kube`, for the fast tests.

`MemoryKube` overrides the one method every request goes through (`Kube._call`) and answers like an API
server would for any kind: get, list with a label selector, server-side apply (create or deep-merge;
`/status` takes only the status; a field the same field manager applied before and leaves out now is
removed; a uid in the applied metadata must be the object's, else 409), JSON patches of `test` and
`remove` operations (a failed test is 422, as the API server answers), create (with `generateName`;
Events arrive here), delete (with a uid precondition; an object with finalizers only gets a
deletionTimestamp). It records every write, and a test can make the next matching request fail.

What it does not do: schemas, defaulting, fields shared by several managers, admission, resourceVersion
conflicts, paging (the whole list comes in one page).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.kube import EVENT, Kind, Kube

APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"

_PATH = re.compile(
    r"^/(?:apis/(?P<group>[^/]+)/(?P<version>[^/]+)|api/(?P<core>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<subresource>status))?$"
)


class Write(NamedTuple):
    """One write that reached the store: method, resource (plural, `/status` for the subresource), name."""

    method: str
    resource: str
    name: str


@dataclass(frozen=True)
class _Request:
    api: str  # group/version, or the core version
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def resource(self) -> str:
        return self.plural + (f"/{self.subresource}" if self.subresource else "")


@dataclass
class _Failure:
    error: BaseException
    method: str | None
    resource: str | None
    name: str | None

    def matches(self, method: str, request: _Request) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.resource is None or self.resource in {request.plural, request.resource})
            and (self.name is None or self.name == request.name)
        )


def api_error(status: int, message: str = "", reason: str = "") -> ApiException:
    """An ApiException as the REST client raises it, with the API server's JSON body."""
    error = ApiException(status=status, reason=reason or message)
    error.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return error


def deep_merge(into: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Maps merge key by key; anything else (lists too) is replaced."""
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def drop_omitted(live: dict[str, Any], before: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Server-side apply's ownership for one manager: what it applied `before` and not `now` goes."""
    for key, value in before.items():
        if key not in now:
            live.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(now[key], Mapping) and isinstance(live.get(key), dict):
            drop_omitted(live[key], value, now[key])


def _selected(obj: Mapping[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class MemoryKube(Kube):
    def __init__(self, field_manager: str = "argora-test") -> None:
        # Nothing goes over the wire: `_call` below answers everything.
        super().__init__(cast(client.ApiClient, None), field_manager)
        # (api, plural) -> (namespace or "", name) -> object
        self.store: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self.writes: list[Write] = []
        # What each field manager last applied, by (uid, manager, subresource).
        self._applied: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        self._failures: list[_Failure] = []
        self._serial = itertools.count(1)

    # ---- for tests -----------------------------------------------------------------------------

    def add(self, kind: Kind, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Put an object in place as if someone else had created it; not counted as a write."""
        manifest = {"apiVersion": kind.api_version, "kind": kind.kind, **copy.deepcopy(dict(obj))}
        return self._insert(self._table(kind.api_version, kind.plural), manifest)

    def stored(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The stored object itself, for a test to change as another client would; not counted as a write."""
        return self._table(kind.api_version, kind.plural)[namespace or "", name]

    def objects(self, kind: Kind, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        """The stored objects of a kind by name (copies)."""
        return {
            name: copy.deepcopy(obj)
            for (ns, name), obj in self._table(kind.api_version, kind.plural).items()
            if namespace is None or ns == namespace
        }

    def events(self, namespace: str | None = None) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the Events posted, oldest first."""
        stored = sorted(self.objects(EVENT, namespace).values(), key=lambda e: int(e["metadata"]["resourceVersion"]))
        return [(event["type"], event["reason"], event["message"]) for event in stored]

    def fail_next(
        self, error: BaseException, *, method: str | None = None, resource: str | None = None, name: str | None = None
    ) -> None:
        """The next request matching every given criterion raises `error` instead of being served."""
        self._failures.append(_Failure(error, method, resource, name))

    # ---- the API server ------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: object | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,  # answers come at once here
    ) -> dict[str, Any]:
        match = _PATH.match(path)
        if match is None:
            raise api_error(404, f"no such path {path}")
        api = match["core"] or f"{match['group']}/{match['version']}"
        request = _Request(api, match["plural"], match["namespace"], match["name"], match["subresource"])
        for failure in self._failures:
            if failure.matches(method, request):
                self._failures.remove(failure)
                raise failure.error
        params = dict(query)
        table = self._table(request.api, request.plural)
        if method == "GET" and request.name is None:
            items = [
                copy.deepcopy(obj)
                for (namespace, _), obj in sorted(table.items())
                if request.namespace in {None, namespace} and _selected(obj, params.get("labelSelector", ""))
            ]
            return {"items": items, "metadata": {}}
        if method == "GET":
            return copy.deepcopy(self._existing(table, request))
        if method == "PATCH" and content_type == JSON_PATCH:
            return self._json_patch(table, request, cast(list[dict[str, Any]], body))
        if method == "PATCH":
            if content_type != APPLY_PATCH or "fieldManager" not in params:
                raise api_error(415, f"only server-side apply is served, not {content_type}")
            return self._apply(table, request, cast(dict[str, Any], body), params["fieldManager"])
        if method == "POST":
            return self._create(table, request, cast(dict[str, Any], body))
        if method == "DELETE":
            return self._delete(table, request, cast(dict[str, Any], body or {}))
        raise api_error(405, f"{method} is not served")

    def _table(self, api: str, plural: str) -> dict[tuple[str, str], dict[str, Any]]:
        return self.store.setdefault((api, plural), {})

    @staticmethod
    def _key(request: _Request) -> tuple[str, str]:
        assert request.name is not None
        return request.namespace or "", request.name

    def _existing(self, table: Mapping[tuple[str, str], dict[str, Any]], request: _Request) -> dict[str, Any]:
        obj = table.get(self._key(request))
        if obj is None:
            raise api_error(404, f'{request.plural} "{request.name}" not found', "Not Found")
        return obj

    def _insert(self, table: dict[tuple[str, str], dict[str, Any]], obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj.setdefault("metadata", {})
        serial = next(self._serial)
        metadata.setdefault("uid", f"uid-{serial}")
        metadata["resourceVersion"] = str(serial)
        metadata.setdefault("generation", 1)
        metadata.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
        table[metadata.get("namespace") or "", metadata["name"]] = obj
        return copy.deepcopy(obj)

    def _record(self, method: str, request: _Request, name: str) -> None:
        self.writes.append(Write(method, request.resource, name))

    def _apply(
        self, table: dict[tuple[str, str], dict[str, Any]], request: _Request, body: dict[str, Any], manager: str
    ) -> dict[str, Any]:
        key = self._key(request)
        if body["metadata"]["name"] != request.name:
            raise api_error(400, "the name of the object does not match the name on the URL")
        if request.subresource == "status":
            live = self._existing(table, request)
            patch = {"status": copy.deepcopy(body.get("status") or {})}
        else:
            live = table.get(key) or {}
            patch = {field: copy.deepcopy(value) for field, value in body.items() if field != "status"}
            if request.namespace:
                patch["metadata"] = {**patch["metadata"], "namespace": request.namespace}
        uid = body["metadata"].get("uid")
        if uid is not None and (live.get("metadata") or {}).get("uid") != uid:
            # As the API server does: a uid in an apply is a precondition, also against making the object.
            raise api_error(409, f'{request.plural} "{request.name}": uid mismatch', "Conflict")
        self._record("PATCH", request, key[1])
        if not live:
            created = self._insert(table, copy.deepcopy(patch))
            self._applied[created["metadata"]["uid"], manager, request.subresource] = patch
            return created
        applied = (live["metadata"]["uid"], manager, request.subresource)
        before = copy.deepcopy({field: value for field, value in live.items() if field not in {"metadata", "status"}})
        drop_omitted(live, self._applied.get(applied, {}), patch)
        deep_merge(live, patch)
        self._applied[applied] = patch
        after = {field: value for field, value in live.items() if field not in {"metadata", "status"}}
        live["metadata"]["resourceVersion"] = str(next(self._serial))
        if after != before:
            live["metadata"]["generation"] += 1
        return copy.deepcopy(live)

    def _json_patch(
        self, table: dict[tuple[str, str], dict[str, Any]], request: _Request, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        live = self._existing(table, request)
        patched = copy.deepcopy(live)
        for operation in operations:
            *parents, last = [int(part) if part.isdigit() else part for part in operation["path"].split("/")[1:]]
            container: Any = patched
            for part in parents:
                container = container[part]
            if operation["op"] == "test":
                try:
                    found = container[last]
                except (IndexError, KeyError):
                    found = None
                if found != operation["value"]:
                    raise api_error(422, f"test of {operation['path']} failed", "Invalid")
            elif operation["op"] == "remove":
                del container[last]
            else:
                raise api_error(415, f"JSON patch operation {operation['op']} is not served")
        self._record("PATCH", request, self._key(request)[1])
        metadata = patched["metadata"]
        metadata["resourceVersion"] = str(next(self._serial))
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            del table[self._key(request)]
        else:
            table[self._key(request)] = patched
        return copy.deepcopy(patched)

    def _create(
        self, table: dict[tuple[str, str], dict[str, Any]], request: _Request, body: dict[str, Any]
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        metadata = obj["metadata"]
        if request.namespace:
            metadata["namespace"] = request.namespace
        if "name" not in metadata:
            metadata["name"] = f"{metadata['generateName']}{next(self._serial):05x}"
        if (request.namespace or "", metadata["name"]) in table:
            raise api_error(409, f'{request.plural} "{metadata["name"]}" already exists', "Conflict")
        self._record("POST", request, metadata["name"])
        return self._insert(table, obj)

    def _delete(
        self, table: dict[tuple[str, str], dict[str, Any]], request: _Request, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        obj = self._existing(table, request)
        wanted_uid = (options.get("preconditions") or {}).get("uid")
        if wanted_uid is not None and wanted_uid != obj["metadata"]["uid"]:
            raise api_error(409, f'{request.plural} "{request.name}": precondition failed: uid', "Conflict")
        self._record("DELETE", request, obj["metadata"]["name"])
        if obj["metadata"].get("finalizers"):
            obj["metadata"].setdefault("deletionTimestamp", "2024-01-01T00:00:00Z")
            return copy.deepcopy(obj)
        del table[self._key(request)]
        return {"kind": "Status", "status": "Success"}
