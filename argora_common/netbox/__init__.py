"""Access to NetBox for one operator process, over pynetbox.

`session`: the HTTP session, retries and errors; `auth`: the API token; `reads`: paginated, bulk and
id-chunked reads; `writes`: single and bulk writes; `own_writes`: which logged changes are our own.
"""

from __future__ import annotations

from argora_common.netbox.auth import RotatingSecret
from argora_common.netbox.reads import FilterValue, NetBoxReads, id_chunks
from argora_common.netbox.session import (
    NetBoxError,
    NetBoxRejectedError,
    NetBoxUnavailableError,
    NetBoxWriteForbiddenError,
)
from argora_common.netbox.writes import NetBoxWrites

__all__ = [
    "FilterValue",
    "NetBox",
    "NetBoxError",
    "NetBoxRejectedError",
    "NetBoxUnavailableError",
    "NetBoxWriteForbiddenError",
    "RotatingSecret",
    "id_chunks",
]


class NetBox(NetBoxReads, NetBoxWrites):
    """Access to one NetBox for one operator process: bulk reads, and writes one by one or in bulk."""
