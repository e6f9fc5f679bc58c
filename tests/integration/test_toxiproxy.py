"""The fault proxy of the fault suite between the NetBox access layer and the real NetBox: reads pass
through it unchanged, and its toxics become the failures a controller has to survive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from argora_common.netbox import NetBox, NetBoxUnavailableError
from argora_common.netbox_schema import SITES
from argora_common.settings import Settings
from argora_dev.netbox import NetBoxServer
from argora_dev.toxiproxy import Proxy, Toxiproxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxiproxy]:
    server = Toxiproxy(Path(tmp_path_factory.mktemp("toxiproxy"))).start()
    yield server
    server.stop()


@pytest.fixture
def netbox_proxy(toxiproxy: Toxiproxy, netbox: NetBoxServer, prefix: str) -> Proxy:
    return toxiproxy.proxy(prefix, urlsplit(netbox.url).netloc)


def client_through(proxy: Proxy, token: str) -> NetBox:
    settings = Settings(
        netbox_url=proxy.url(), netbox_token=SecretStr(token), netbox_retries=2, netbox_timeout_seconds=2
    )
    return NetBox(settings, backoff_max_seconds=0.2)


def site_ids(client: NetBox) -> set[int]:
    return {site.id for site in client.select(SITES)}


def test_reads_pass_through_and_each_fault_fails_them_cleanly_until_it_ends(
    netbox: NetBoxServer, netbox_proxy: Proxy
) -> None:
    direct = NetBox(Settings(netbox_url=netbox.url, netbox_token=SecretStr(netbox.readonly_v2_token)))
    client = client_through(netbox_proxy, netbox.readonly_v2_token)
    expected = site_ids(direct)
    assert site_ids(client) == expected
    faults = {
        "reset": ("reset_peer", {"timeout": 0}, r"ConnectionError"),  # the connection is reset at once
        "hang": ("timeout", {"timeout": 0}, r"(ReadTimeout|ConnectionError)"),  # no answer, never closed
    }
    for name, (kind, attributes, error) in faults.items():
        netbox_proxy.add_toxic(name, kind, attributes)
        with pytest.raises(NetBoxUnavailableError, match=rf"no answer after 2 attempts \({error}"):
            client.select(SITES)
        netbox_proxy.remove_toxic(name)
        assert site_ids(client) == expected
    netbox_proxy.set_enabled(False)
    with pytest.raises(NetBoxUnavailableError, match=r"no answer after 2 attempts \(ConnectionError"):
        client.select(SITES)
    netbox_proxy.set_enabled(True)
    assert site_ids(client) == expected
