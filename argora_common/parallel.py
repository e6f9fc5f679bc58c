"""Independent work side by side, bounded: the NetBox reads of a pass (id chunks, independent lists) and
the Kubernetes writes of its devices."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait


def in_parallel[T, R](work: Callable[[T], R], items: Iterable[T], limit: int, *, name: str = "argora") -> list[R]:
    """`work` of every item, at most `limit` at once, the results in the items' order. The first failure
    stops items not started yet; those under way finish, then it is raised, as a loop would have."""
    todo = list(items)
    if limit <= 1 or len(todo) <= 1:
        return [work(item) for item in todo]
    with ThreadPoolExecutor(max_workers=min(limit, len(todo)), thread_name_prefix=name) as pool:
        futures = [pool.submit(work, item) for item in todo]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
    # Items start in order, so every one before the first failure ran: its result or exception comes first.
    return [future.result() for future in futures]
