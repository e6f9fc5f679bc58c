"""Writes to NetBox: one object at a time, or in bulk, in chunks, several chunks at once.

A bulk request that NetBox refuses is split until only the objects it names (or each object alone) are
left, so that one bad object costs only its own write; deletes can be made conditional on the version
read (If-Match).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from pynetbox.core.query import RequestError

from argora_common.netbox.session import (
    NetBoxConnection,
    NetBoxError,
    NetBoxRejectedError,
    NetBoxUnavailableError,
    NetBoxWriteForbiddenError,
    retryable,
)
from argora_common.netbox_schema import Endpoint

# Objects per bulk PATCH or DELETE. NetBox saves (or deletes) the objects of a list one by one, each with
# its change record, search cache and signals: measured on 2 cores (NetBox 4.7.3, a busy machine) 0.05-0.15 s
# per object whatever the list's length, so longer lists gain nothing, and 50 keep a request far inside
# the 30 s timeout (100 IPs took 15 s, 300 took 45 s) while the per-request overhead is already small.
BULK_WRITE_CHUNK: Final = 50
# Bulk requests in flight at once. NetBox's time goes into each object's save in one worker process, so a
# single request at a time leaves its other workers (and cores) idle; a few at a time, no more, so that
# NetBox keeps workers for everybody else.
BULK_WRITES_IN_FLIGHT: Final = 3


def etag(last_updated: str) -> str:
    """The weak ETag NetBox (>= 4.5) gives an object, from its `last_updated` as the API shows it:
    `W/"<isoformat of the UTC timestamp>"`. The API may render the time as `...Z` or in NetBox's
    TIME_ZONE; the tag is always made from the UTC value the database holds."""
    return f'W/"{datetime.fromisoformat(last_updated).astimezone(UTC).isoformat()}"'


def bulk_chunks[T](items: Sequence[T], size: int = BULK_WRITE_CHUNK) -> Iterator[list[T]]:
    """`items` in lists of at most `size`, in their order."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@dataclass
class Write:
    """One bulk write under way: what it does, the versions its objects must still have (id ->
    `last_updated`), and the ids NetBox confirmed so far (written, or gone for a delete)."""

    method: str
    endpoint: Endpoint[Any]
    versions: Mapping[int, str]
    done: set[int] = field(default_factory=set)

    def if_match(self, items: Sequence[Mapping[str, Any]]) -> str | None:
        """The If-Match header for a request of `items`: NetBox checks every object of a bulk request
        against the whole list. Tags are timestamps to the microsecond: an object changed since the read
        gets a newer one than any of the list (all older than the read)."""
        tags = [etag(self.versions[item["id"]]) for item in items if item["id"] in self.versions]
        return ", ".join(tags) or None


class NetBoxWrites(NetBoxConnection):
    """Writes: create, update and delete one object; update and delete many in bulk."""

    def create(self, endpoint: Endpoint[Any], **fields: Any) -> int:
        """POST one object and return its id. Retried like the rest: NetBox refuses a second copy of
        what must be unique (an IP address), so a retry after a lost answer cannot duplicate it. That
        refusal says nothing against the object, though: after an attempt whose answer was lost (cut off,
        timed out, 5xx) it is NetBoxUnavailableError, so that the pass is retried and its read finds what
        the lost attempt may have made."""
        attempts_failed = 0

        def write() -> int:
            nonlocal attempts_failed
            try:
                created: int = self._resource(endpoint).create(fields).id
            except Exception as error:
                attempts_failed += retryable(error)
                raise
            return created

        try:
            return self._call(endpoint.path, write)
        except NetBoxRejectedError as error:
            if not attempts_failed or error.status_code != 400:
                raise
            raise NetBoxUnavailableError(
                f"{error}; an earlier attempt got no answer and may have made it: NetBox is read again"
            ) from error

    def update(self, endpoint: Endpoint[Any], object_id: int, **fields: Any) -> None:
        """PATCH one object (retried like a read: repeating a PATCH changes nothing more)."""

        def write() -> None:
            self._resource(endpoint).update([{"id": object_id, **fields}])

        self._call(endpoint.path, write)

    def delete(self, endpoint: Endpoint[Any], object_id: int) -> bool:
        """DELETE one object; False when it was already gone."""

        def write() -> bool:
            try:
                self._resource(endpoint).delete([object_id])
            except RequestError as error:
                if error.req.status_code == 404:
                    return False
                raise
            return True

        return self._call(endpoint.path, write)

    def update_many(self, endpoint: Endpoint[Any], changes: Sequence[Mapping[str, Any]]) -> dict[int, str]:
        """PATCH `changes` (each `{"id": ..., <fields>}`) in lists of BULK_WRITE_CHUNK. Returns, by id,
        why NetBox refused the objects it would not take; every other object is written. An object that
        no longer exists is refused too. 403 raises NetBoxWriteForbiddenError, 5xx and timeouts that
        outlast the retries NetBoxUnavailableError (repeating a PATCH changes nothing more)."""
        return self._write_chunks("PATCH", endpoint, list(bulk_chunks(changes)))

    def delete_many(
        self, endpoint: Endpoint[Any], ids: Sequence[int], versions: Mapping[int, str] | None = None
    ) -> dict[int, str]:
        """DELETE the objects `ids` in lists of BULK_WRITE_CHUNK. Returns, by id, why NetBox refused the
        objects it would not delete; an object that is gone already counts as deleted (so does one whose
        first DELETE went through but whose answer was lost). Errors as `update_many`.

        `versions` (id -> `last_updated` as read) makes the deletes conditional: NetBox deletes an object
        only while it is unchanged since that read (If-Match), and refuses it otherwise."""
        unique = list(dict.fromkeys(ids))  # NetBox refuses a list that names an id twice
        return self._write_chunks("DELETE", endpoint, list(bulk_chunks([{"id": i} for i in unique])), versions or {})

    def _write_chunks(
        self,
        method: str,
        endpoint: Endpoint[Any],
        chunks: list[list[Mapping[str, Any]]],
        versions: Mapping[int, str] | None = None,
    ) -> dict[int, str]:
        """The chunks, BULK_WRITES_IN_FLIGHT at a time. The first error (403, NetBox unavailable) stops
        the chunks not yet sent; those under way finish, and the error names what was written
        (`NetBoxError.written`)."""
        write = Write(method, endpoint, versions or {})
        refused: dict[int, str] = {}
        try:
            if len(chunks) <= 1:
                for chunk in chunks:
                    refused |= self._write_chunk(write, chunk)
                return refused
            with ThreadPoolExecutor(max_workers=BULK_WRITES_IN_FLIGHT, thread_name_prefix="netbox-write") as pool:
                futures = [pool.submit(self._write_chunk, write, chunk) for chunk in chunks]
                try:
                    for future in futures:
                        refused |= future.result()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        except NetBoxError as error:
            # Once the chunks under way are done: the pool's exit waits for them.
            error.written = frozenset(write.done)
            raise
        return refused

    def _write_chunk(self, write: Write, items: list[Mapping[str, Any]]) -> dict[int, str]:
        """One bulk request; when NetBox refuses it, the objects it names (or, naming none, each half) go
        again apart from the rest, so one bad object costs only its own write."""
        if len(items) == 1:
            return self._write_one(write, items[0])
        try:
            url = f"{self.api.base_url}/{write.endpoint.path}/"
            self._call(write.endpoint.path, partial(self._send, write.method, url, items, write.if_match(items)))
            write.done.update(item["id"] for item in items)
            return {}
        except NetBoxRejectedError as error:
            named = {item["id"] for item in items} & set(error.object_errors)
            # A 403 naming objects is not the token's: NetBox says so of an object gone while the request
            # ran (a retry overlapping its own first attempt, still deleting); each goes alone, where a
            # gone one answers 404 and a token that may not write 403 again.
            if error.status_code == 403 and not named:
                raise NetBoxWriteForbiddenError(str(error), error.status_code) from error
            if named:
                parts = [[item] for item in items if item["id"] in named]
                parts.append([item for item in items if item["id"] not in named])
            else:
                parts = [items[: len(items) // 2], items[len(items) // 2 :]]
        refused: dict[int, str] = {}
        for part in parts:
            if part:
                refused |= self._write_chunk(write, part)
        return refused

    def _write_one(self, write: Write, item: Mapping[str, Any]) -> dict[int, str]:
        """One object at its own URL, whose 404 says unambiguously that it is gone."""
        object_id: int = item["id"]
        fields = {key: value for key, value in item.items() if key != "id"}
        url = f"{self.api.base_url}/{write.endpoint.path}/{object_id}/"
        body = fields if write.method != "DELETE" else None
        try:
            self._call(write.endpoint.path, partial(self._send, write.method, url, body, write.if_match([item])))
        except NetBoxRejectedError as error:
            if error.status_code == 403:
                raise NetBoxWriteForbiddenError(str(error), error.status_code) from error
            if error.status_code == 404 and write.method == "DELETE":
                write.done.add(object_id)
                return {}
            if error.status_code == 412:
                return {object_id: "changed in NetBox since it was read (HTTP 412); left as it is"}
            return {object_id: str(error)}
        write.done.add(object_id)
        return {}

    def _send(self, method: str, url: str, body: object | None, if_match: str | None = None) -> None:
        # Never `fields=` on a write: NetBox 4.7.3 then answers 200 to a PATCH and writes nothing.
        headers = {"Accept": "application/json", **({"If-Match": if_match} if if_match else {})}
        response = self._session.request(method, url, json=body, headers=headers)
        if not response.ok:
            raise RequestError(response)
