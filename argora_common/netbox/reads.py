"""Bulk, typed reads of NetBox.

Every list follows pagination to the end (cursor pagination, stable while NetBox changes underneath),
trims payloads with `fields=`, and sends id filters in chunks that keep the request line under
gunicorn's 4 KB limit. NetBox silently ignores filter names it does not know and then returns the whole
table, so each endpoint (`argora_common.netbox_schema`) accepts only the filter names listed for it; the suite
proves against a real NetBox that every one of them narrows the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final
from urllib.parse import quote

from pydantic import BaseModel
from pynetbox.core.query import Request

from argora_common.netbox.session import NetBoxConnection
from argora_common.netbox_schema import Endpoint
from argora_common.parallel import in_parallel

# Room for the path, the other query parameters and `fields=` inside gunicorn's 4094-byte request line.
ID_FILTER_BUDGET: Final = 2800


type FilterValue = str | int | bool | Sequence[str] | Sequence[int]


def id_chunks[V: (int, str)](ids: Iterable[V], filter_name: str, budget: int = ID_FILTER_BUDGET) -> Iterator[list[V]]:
    """Split ids (or names, addresses) so that `filter_name=<value>&…` of each chunk fits in `budget`
    bytes of query string, URL-encoded."""
    chunk: list[V] = []
    used = 0
    for value in sorted(set(ids)):
        cost = len(filter_name) + len(quote(str(value), safe="")) + 2
        if chunk and used + cost > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(value)
        used += cost
    if chunk:
        yield chunk


class NetBoxReads(NetBoxConnection):
    """Reads: every object of an endpoint that matches filters, all pages, typed; several reads side by side."""

    def select[M: BaseModel](self, endpoint: Endpoint[M], **filters: FilterValue) -> list[M]:
        """Every object of `endpoint` that matches `filters`, all pages, typed."""
        unknown = set(filters) - endpoint.filters
        if unknown:
            raise ValueError(f"{endpoint.path}: filter(s) {sorted(unknown)} are not known to narrow the result")
        query = {**filters, "fields": ",".join(endpoint.fields)}

        def fetch() -> list[M]:
            # Cursor pagination pages by primary key: rows added or removed while we page can neither repeat
            # nor push another row out of the result, unlike offset pages. We require NetBox >= 4.6, which
            # has it; asked for it explicitly, pynetbox does not probe the version first (a probe that failed
            # once, NetBox restarting, would fall back to offset pages for the life of the process).
            request = Request(
                base=f"{self.api.base_url}/{endpoint.path}/",
                http_session=self.api.http_session,
                filters=query,
                limit=self.page_size,
                pagination="cursor",
            )
            return [endpoint.model.model_validate(record) for record in request.get()]

        return self._call(endpoint.path, fetch)

    def list_by_ids[M: BaseModel, V: (int, str)](
        self, endpoint: Endpoint[M], id_filter: str, ids: Iterable[V], **filters: FilterValue
    ) -> list[M]:
        """Like `select`, with `id_filter` set to each chunk of `ids` (or names, addresses), several chunks
        at once (`in_parallel`)."""
        chunks = list(id_chunks(ids, id_filter))
        pages = self.in_parallel(lambda chunk: self.select(endpoint, **{id_filter: chunk}, **filters), chunks)
        return [record for page in pages for record in page]

    def in_parallel[T, R](self, read: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`read` of every item, in order, side by side; the requests they send are bounded by
        ARGORA_NETBOX_READS_IN_FLIGHT however many passes read at once."""
        return in_parallel(read, items, self.reads_in_flight, name="argora-netbox")

    def both[A, B](self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        """Two independent reads side by side (their requests bounded like `in_parallel`'s)."""
        if self.reads_in_flight <= 1:
            return first(), second()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="argora-netbox") as pool:
            later = pool.submit(second)
            try:
                return first(), later.result()
            finally:
                later.cancel()

    def get[M: BaseModel](self, endpoint: Endpoint[M], object_id: int) -> M | None:
        """One object, read again right now (before a delete); None when it no longer exists."""

        def fetch() -> M | None:
            record = self._resource(endpoint).get(object_id)
            return None if record is None else endpoint.model.model_validate(dict(record))

        return self._call(endpoint.path, fetch)
