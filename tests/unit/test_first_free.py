"""The address the demo gives its IPAddress: the one the in-cluster provider hands out first."""

import pytest

from argora_dev.kubeobjects import first_free


def test_skips_the_excluded_block_and_the_gateway() -> None:
    spec = {
        "addresses": ["10.20.1.0/24"],
        "prefix": 24,
        "gateway": "10.20.1.16",
        "excludedAddresses": ["10.20.1.0/28"],
    }
    assert first_free(spec) == ("10.20.1.17", 24)


def test_never_the_network_address() -> None:
    assert first_free({"addresses": ["10.20.2.0/24"], "prefix": 24, "gateway": "10.20.2.1"}) == ("10.20.2.2", 24)


def test_ranges_and_single_addresses() -> None:
    spec = {
        "addresses": ["10.21.0.5-10.21.0.9"],
        "prefix": 26,
        "excludedAddresses": ["10.21.0.5", "10.21.0.6-10.21.0.7"],
    }
    assert first_free(spec) == ("10.21.0.8", 26)


def test_a_full_pool_has_none() -> None:
    with pytest.raises(ValueError, match="no address"):
        first_free(
            {"addresses": ["10.22.0.0/30"], "prefix": 30, "gateway": "10.22.0.1", "excludedAddresses": ["10.22.0.2"]}
        )
