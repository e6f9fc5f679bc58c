"""The objects a controller writes, known from a watch instead of a list on every pass.

A `WatchIndex` lists one kind once (our objects only, by the managed-by label) and then follows its
watch, as client-go's informers do. A pass asks it for the current objects and sends no list. The
index is trusted only while it is complete: from the end of its first list until its watch fails, and
again once the resumed watch delivers an event; after a watch gap the API server can no longer replay
(410 Gone) it lists anew. While it cannot be
trusted (at start, after a restart, during an API-server outage) a pass lists, as it always did.

kopf's watch cannot serve here: its per-object handlers say neither when the first listing is complete
nor when a re-listing after 410 left out objects deleted meanwhile. The other way round, the index's
events serve what a kopf watch of the same objects would (`QueuedEvents`: repairs of edited objects),
so each object is watched once, and kopf keeps no per-object worker or body for 20,000 of them.

Our own writes go into the index from their answers at once (`record`, `deleted`), so a pass right
after another sees what that one wrote even before the watch delivers it. Resource versions decide
which of an answer and a watch event is newer: the API server's are etcd revisions, numbers that grow.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from argora_common.kube import MANAGED_BY_LABEL, Kind, Kube
from argora_common.metrics import INDEX_FALLBACKS
from argora_common.workqueue import WorkQueue

log = logging.getLogger("argora.watch")

type ObjectKey = tuple[str | None, str]  # (namespace, name)
# Told each watch event (ADDED, MODIFIED, DELETED) of an object, trimmed, once the index holds it.
type Listener = Callable[[str, dict[str, Any]], None]

# The API server ends a watch after this long; the index then resumes it from the last version.
WATCH_SECONDS: Final = 300
RETRY_SECONDS: Final = 2.0


class WatchGoneError(Exception):
    """The API server no longer has the versions since the last event (410 Gone): list anew."""


def trimmed(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a pass compares of an object: not its status or managedFields, which are most of its size."""
    kept = {key: value for key, value in obj.items() if key != "status"}
    kept["metadata"] = {key: value for key, value in (obj.get("metadata") or {}).items() if key != "managedFields"}
    return kept


def _version(obj: Mapping[str, Any]) -> int | None:
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def _key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj["metadata"]
    return metadata.get("namespace"), metadata["name"]


def _older(new: Mapping[str, Any], known: int | None) -> bool:
    version = _version(new)
    return version is not None and known is not None and version < known


class WatchIndex:
    """One kind's objects managed by `manager`, cluster-wide or in one namespace, kept by list + watch."""

    def __init__(
        self, kube: Kube, kind: Kind, manager: str, namespace: str | None = None, listener: Listener | None = None
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.namespace = namespace
        self.listener = listener
        self.selector = f"{MANAGED_BY_LABEL}={manager}"
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        # Objects we deleted, by the version of the deletion, until the watch says so too (bounded by the
        # deletes under way: an earlier event of the object must not bring it back meanwhile).
        self._deleted: dict[ObjectKey, int | None] = {}
        self._lock = threading.Lock()
        self._trusted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def trusted(self) -> bool:
        return self._trusted

    def start(self) -> None:
        where = self.namespace or "cluster"
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.kind.plural}-{where}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop using the index at once. Closing a watch that another thread reads blocks for a minute:
        the thread (a daemon) instead ends with its next event or when the API server ends the watch."""
        self._stop.set()
        self._trusted = False

    def objects(self, namespace: str | None = None) -> dict[str, dict[str, Any]] | None:
        """Our objects (in `namespace`, when given) by name, or None while the index is incomplete."""
        with self._lock:
            if not self._trusted:
                return None
            return {name: obj for (where, name), obj in self._objects.items() if namespace in (None, where)}

    def record(self, obj: Mapping[str, Any]) -> None:
        """An object as our write's answer returned it (ours only: it must carry our label)."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        key = _key(obj)
        with self._lock:
            if f"{MANAGED_BY_LABEL}={labels.get(MANAGED_BY_LABEL)}" != self.selector:
                self._objects.pop(key, None)
                return
            self._put(key, obj, fresh=True)

    def deleted(self, namespace: str | None, name: str, answer: Mapping[str, Any]) -> None:
        """Our delete went through: the object is gone, or goes once its finalizers are done."""
        key = (namespace, name)
        with self._lock:
            if answer.get("kind") == self.kind.kind and (answer.get("metadata") or {}).get("finalizers"):
                self._put(key, answer, fresh=True)
                return
            known = self._objects.pop(key, None)
            self._deleted[key] = _version(answer) if answer.get("kind") == self.kind.kind else None
            if self._deleted[key] is None and known is not None:
                self._deleted[key] = _version(known)

    def _put(self, key: ObjectKey, obj: Mapping[str, Any], *, fresh: bool) -> None:
        """`fresh`: our write's answer or a watch ADDED, newer than any delete of the same name before it."""
        known = self._objects.get(key)
        if known is not None and _older(obj, _version(known)):
            return
        if key in self._deleted:
            gone_at = self._deleted[key]
            # Without the deletion's version only a new object may come back; a late MODIFIED may not.
            version = _version(obj)
            if (gone_at is None and not fresh) or (gone_at is not None and version is not None and version <= gone_at):
                return
            del self._deleted[key]
        self._objects[key] = trimmed(obj)

    # ---- list and watch --------------------------------------------------------------------------

    def _run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._watch(version)
            except WatchGoneError:
                if self._stop.is_set():
                    return
                log.debug("%s: watch gap, listing anew", self.kind.plural)
                self._trusted, version = False, None
            except Exception as error:
                if self._stop.is_set():
                    return
                # While the watch is down nobody can tell what changed meanwhile: passes list again.
                self._trusted = False
                log.debug("%s: watch interrupted (%s), resuming", self.kind.plural, error)
                self._stop.wait(RETRY_SECONDS)

    def _list(self) -> str:
        listed, version = self.kube.list_versioned(self.kind, self.namespace, self.selector, keep=trimmed)
        with self._lock:
            self._objects = {_key(item): item for item in listed}
            self._deleted = {}
            self._trusted = not self._stop.is_set()
        return version

    def _watch(self, version: str) -> str:
        """Follow the watch from `version` until it ends; the version to resume from.

        A list just made the index complete, and a watch the server ended on time leaves it so. After an
        interruption (an API server restart, a cut connection) it is not trusted until the resumed watch
        shows that the server still has every version since: its first event or bookmark. Had it lost
        them, that first event is the 410 that makes the index list anew, and no pass reads the stale
        objects meanwhile."""
        query = [
            ("labelSelector", self.selector),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        response = self.kube.api.call_api(
            self.kind.path(self.namespace),
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=(10, WATCH_SECONDS + 30),
        )
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    break
                if line:
                    version = self._apply(json.loads(line)) or version
                    self._trusted = not self._stop.is_set()
        finally:
            response.release_conn()
        return version

    def _apply(self, event: Mapping[str, Any]) -> str | None:
        """Apply one watch event; the resource version to resume from."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchGoneError(obj.get("message", ""))
            raise ApiException(status=obj.get("code"), reason=obj.get("message"))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            return str(version) if version else None
        key = _key(obj)
        with self._lock:
            if kind == "DELETED":
                known = self._objects.get(key)
                if known is None or not _older(obj, _version(known)):
                    self._objects.pop(key, None)
                self._deleted.pop(key, None)
            else:
                self._put(key, obj, fresh=kind == "ADDED")
        if self.listener is not None and kind in ("ADDED", "MODIFIED", "DELETED"):
            self.listener(str(kind), trimmed(obj))
        return str(version) if version else None


@dataclass(frozen=True)
class WatchedObject:
    """A work-queue key: an object of one of the indexed kinds whose watch events wait to be handled."""

    kind: str
    namespace: str | None
    name: str


class QueuedEvents:
    """Hands watch events to `handle` from the controller's work queue, so that the watch never waits for
    a handler (a repair waits for a pass under way). Only the latest event of each object waits: however
    many events come, the queue holds at most one per object."""

    def __init__(self, queue: WorkQueue, handle: Callable[[Kind, str, dict[str, Any]], None]) -> None:
        self.queue = queue
        self.handle = handle
        self._latest: dict[WatchedObject, tuple[Kind, str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        queue.route(WatchedObject, self.run)

    def listener(self, kind: Kind) -> Listener:
        def submit(event_type: str, obj: dict[str, Any]) -> None:
            key = WatchedObject(kind.kind, *_key(obj))
            with self._lock:
                self._latest[key] = (kind, event_type, obj)
            self.queue.add(key)

        return submit

    def run(self, key: WatchedObject) -> None:
        with self._lock:
            latest = self._latest.pop(key, None)
        if latest is None:
            return
        kind, event_type, obj = latest
        try:
            self.handle(kind, event_type, obj)
        except Exception as error:
            # The next event of the object, or the next pass, tries again.
            log.warning("%s %s: %s event not handled: %s", kind.kind, key.name, event_type, error)


class Indexes:
    """A controller's WatchIndex of one kind: cluster-wide, or one per namespace it is limited to."""

    def __init__(
        self, kube: Kube, kind: Kind, manager: str, namespaces: Sequence[str] = (), listener: Listener | None = None
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.manager = manager
        scopes: list[str | None] = list(namespaces) if kind.namespaced and namespaces else [None]
        self._by_scope = {scope: WatchIndex(kube, kind, manager, scope, listener) for scope in scopes}
        kube.indexes[kind] = self

    @property
    def trusted(self) -> bool:
        return all(index.trusted for index in self._by_scope.values())

    def start(self) -> None:
        for index in self._by_scope.values():
            index.start()

    def stop(self) -> None:
        for index in self._by_scope.values():
            index.stop()

    def _index(self, namespace: str | None) -> WatchIndex | None:
        return self._by_scope.get(namespace if namespace in self._by_scope else None)

    def record(self, obj: Mapping[str, Any]) -> None:
        index = self._index(obj["metadata"].get("namespace"))
        if index is not None:
            index.record(obj)

    def deleted(self, namespace: str | None, name: str, answer: Mapping[str, Any]) -> None:
        index = self._index(namespace)
        if index is not None:
            index.deleted(namespace, name, answer)

    def current(self, wanted: Collection[str], namespace: str | None = None) -> dict[str, dict[str, Any]]:
        """The live objects a pass needs, by name: ours from the index, and, only when some `wanted` name is
        not ours, the others' objects (to adopt the original operator's, or refuse a name someone else
        holds) from a list that leaves ours out. Without a trusted index, one list of everything."""
        index = self._index(namespace)
        ours = index.objects(namespace) if index is not None else None
        if ours is None:
            INDEX_FALLBACKS.labels(controller=self.kube.controller, kind=self.kind.kind).inc()
            return {obj["metadata"]["name"]: obj for obj in self.kube.list(self.kind, namespace)}
        if not set(wanted) - ours.keys():
            return ours
        others = self.kube.list(self.kind, namespace, label_selector=f"{MANAGED_BY_LABEL}!={self.manager}")
        return {**{obj["metadata"]["name"]: obj for obj in others}, **ours}
