"""Which address is the client: the peer, or behind trusted proxies the nearest
untrusted `X-Forwarded-For` hop; never whatever a client writes in the header."""

from __future__ import annotations

import pytest

from tollgate.kit.clientip import TrustedProxies

PROXIES = TrustedProxies("192.0.2.0/24, 2001:db8::/32")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.7", None, "203.0.113.7"),
        # Not a proxy: a client's own header changes nothing.
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        # One trusted proxy: the hop it appended; what the client claimed is left of it.
        ("192.0.2.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        # Two trusted proxies.
        ("192.0.2.1", "6.6.6.6, 198.51.100.1, 192.0.2.2", "198.51.100.1"),
        ("192.0.2.1", "198.51.100.1,192.0.2.2", "198.51.100.1"),
        # Several headers arrive joined with a comma (RFC 9110 §5.3).
        ("192.0.2.1", "198.51.100.1 , 192.0.2.2", "198.51.100.1"),
        # IPv6, written any way, comes out canonical.
        ("2001:db8::1", "2001:DB8:0:0::0:1:2", "2001:db8::1:2"),
        ("2001:db8::1", "2a00:1450::0001", "2a00:1450::1"),
        ("2001:db8::1", "[2a00:1450::1]", "2a00:1450::1"),
        ("2001:db8::1", "198.51.100.1:4711", "198.51.100.1"),
        # A hop that is not an address ends the chain: the proxy that passed it on is
        # the furthest address known.
        ("192.0.2.1", "198.51.100.1, garbage", "192.0.2.1"),
        ("192.0.2.1", "198.51.100.1, garbage, 192.0.2.9", "192.0.2.9"),
        ("192.0.2.1", "", "192.0.2.1"),
        ("192.0.2.1", " , ", "192.0.2.1"),
        ("192.0.2.1", "é, \x00", "192.0.2.1"),
        # Only proxies: the furthest one.
        ("192.0.2.1", "192.0.2.3, 192.0.2.2", "192.0.2.3"),
        # The IPv4-mapped form of a trusted proxy is that proxy.
        ("::ffff:192.0.2.1", "198.51.100.1", "198.51.100.1"),
    ],
)
def test_client_ip(peer: str, forwarded_for: str | None, expected: str) -> None:
    assert PROXIES.client_ip(peer, forwarded_for) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    nobody = TrustedProxies("")
    assert not nobody
    assert nobody.client_ip("127.0.0.1", "198.51.100.1") == "127.0.0.1"
    assert nobody.client_ip("10.0.0.1", "198.51.100.1") == "10.0.0.1"


def test_a_peer_that_is_not_an_address_is_kept_as_it_is() -> None:
    # ASGI test clients and unix sockets name peers this way; nothing to trust there.
    assert PROXIES.client_ip("testclient", "198.51.100.1") == "testclient"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "nonsense", "10.0.0.1/8/8"])
def test_an_invalid_network_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ValueError, match="trusted proxy"):
        TrustedProxies(f"192.0.2.0/24,{bad}")


def test_bounded_work_on_a_huge_header() -> None:
    hops = ", ".join(["192.0.2.7"] * 50_000)
    assert PROXIES.client_ip("192.0.2.1", f"198.51.100.1, {hops}") == "192.0.2.7"
