"""`[outbound_networking] block_networks`: which addresses are blocked, as Spin decides (pure)."""

from __future__ import annotations

import pytest

from runtime.capabilities.support.blocked_networks import (
    BlockedNetworks,
    DestinationProhibited,
    checked_addresses,
    checked_host,
    parse_network,
)


def test_cidrs_are_truncated_and_need_a_prefix_length() -> None:
    assert str(parse_network("8.8.8.8/16")) == "8.8.0.0/16"
    assert str(parse_network("2001:db8::1/32")) == "2001:db8::/32"
    assert parse_network("10.0.0.1") is None  # Spin's from_str_truncate wants "/len"
    assert parse_network("10.0.0.0/33") is None
    assert parse_network("private") is None


def test_networks_block_their_addresses_and_mapped_ipv6_forms() -> None:
    blocked = BlockedNetworks.parse(["123.123.0.0/16", "2001::/96"])
    for address in ("123.123.123.123", "2001::1000", "::ffff:123.123.123.123", "::123.123.1.1"):
        assert blocked.is_blocked(address), address
    for address in ("123.100.100.100", "2002::1000", "127.0.0.1", "::1"):
        assert not blocked.is_blocked(address), address
    assert not BlockedNetworks() and blocked


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "10.10.10.10", "100.64.1.1", "127.0.0.1", "169.254.0.1", "172.16.5.4", "192.0.0.1",
     "192.168.1.1", "198.18.0.1", "203.0.113.9", "240.0.0.1", "255.255.255.255", "::1",
     "::ffff:10.10.10.10", "fc00::f00d", "fe80::1"],
)
def test_private_blocks_what_is_not_globally_routable(address: str) -> None:
    assert BlockedNetworks.parse(["private"]).is_blocked(address)


@pytest.mark.parametrize("address", ["123.123.123.123", "2600::beef", "192.0.0.9", "8.8.8.8"])
def test_private_leaves_global_addresses(address: str) -> None:
    assert not BlockedNetworks.parse(["private"]).is_blocked(address)


def test_blocked_addresses_are_dropped_and_none_left_is_prohibited() -> None:
    blocked = BlockedNetworks.parse(["127.0.0.2/32"])
    assert blocked.allowed("h", ["127.0.0.2", "127.0.0.1"]) == ["127.0.0.1"]
    with pytest.raises(DestinationProhibited, match="prohibited by runtime config: h"):
        blocked.allowed("h", ["127.0.0.2"])


def test_checked_after_dns_resolution() -> None:
    # "localhost" resolves to loopback addresses: the check is on those, not on the name.
    blocked = BlockedNetworks.parse(["127.0.0.0/8", "::1/128"])
    with pytest.raises(DestinationProhibited):
        checked_addresses("localhost", 80, blocked)
    assert checked_addresses("127.0.0.1", 80, BlockedNetworks.parse(["10.0.0.0/8"])) == ["127.0.0.1"]


def test_database_clients_connect_to_the_checked_address() -> None:
    assert checked_host("localhost", 6379, False, BlockedNetworks()) == "localhost"  # nothing blocked: as given
    only_v6 = BlockedNetworks.parse(["::1/128"])
    assert checked_host("localhost", 6379, False, only_v6) == "127.0.0.1"
    assert checked_host("localhost", 6379, True, only_v6) == "localhost"  # TLS verifies the name
    with pytest.raises(DestinationProhibited):
        checked_host("127.0.0.1", 6379, True, BlockedNetworks.parse(["private"]))
