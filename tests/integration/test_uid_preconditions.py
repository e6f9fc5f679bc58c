"""Writes name the object they were computed from: an object someone deleted and made anew under the same
name since it was read (a watch index a moment behind) is neither deleted nor taken over."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argora_common.kinds import GLOBAL_POOL
from argora_common.kube import Kube
from argora_dev.kubeobjects import Pools

pytestmark = pytest.mark.integration

SPEC = {"addresses": ["10.99.0.0/24"], "prefix": 24, "gateway": "10.99.0.1"}


def remade(pools: Pools, kube: Kube, name: str) -> tuple[dict[str, object], dict[str, object]]:
    """The pool as a pass read it, and the one someone made under its name since."""
    pools.create(name, SPEC)
    read = kube.get(GLOBAL_POOL, name)
    assert read is not None
    kube.delete(GLOBAL_POOL, name)
    pools.create(name, {**SPEC, "gateway": "10.99.0.254"}, labels={"team": "someone-else"})
    now = kube.get(GLOBAL_POOL, name)
    assert now is not None and now["metadata"]["uid"] != read["metadata"]["uid"]
    return read, now


def test_a_delete_takes_only_the_object_it_read(api_client: client.ApiClient, prefix: str) -> None:
    kube, pools = Kube(api_client, "argora-test"), Pools(api_client)
    read, now = remade(pools, kube, f"{prefix}-pool")
    uid = str(read["metadata"]["uid"])  # type: ignore[index]
    assert kube.delete(GLOBAL_POOL, f"{prefix}-pool", uid=uid) is False
    still = kube.get(GLOBAL_POOL, f"{prefix}-pool")
    assert still is not None and still["metadata"]["uid"] == now["metadata"]["uid"]  # type: ignore[index]


def test_a_changed_apply_takes_over_no_object_made_anew(api_client: client.ApiClient, prefix: str) -> None:
    kube, pools = Kube(api_client, "argora-test"), Pools(api_client)
    read, _ = remade(pools, kube, f"{prefix}-pool")
    desired = {"metadata": {"name": f"{prefix}-pool", "labels": {"app.kubernetes.io/managed-by": "argora-test"}}}
    with pytest.raises(ApiException) as refused:
        kube.apply_if_changed(GLOBAL_POOL, desired, read)
    # The API server refuses another object's uid as a change of an immutable field (422).
    assert refused.value.status in (409, 422)
    still = kube.get(GLOBAL_POOL, f"{prefix}-pool")
    assert still is not None and still["metadata"]["labels"] == {"team": "someone-else"}
