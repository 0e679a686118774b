"""The one SSRF policy: every spelling of an internal address is judged by what it denotes."""

from __future__ import annotations

import ipaddress

import pytest

from tollgate.kit.netpolicy import (
    DestinationRefused,
    NetworkPolicy,
    classify,
    ip_literal,
    is_legacy_spelling,
    parse_networks,
    resolve_checked,
)

STRICT = NetworkPolicy()
LOCAL = NetworkPolicy(allow_private=True)


@pytest.mark.parametrize(
    ("host", "denotes"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:169.254.169.254]", "::ffff:a9fe:a9fe"),
        ("10.0.0.1.", "10.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_ip_literal_decodes_every_spelling(host: str, denotes: str) -> None:
    assert ip_literal(host) == ipaddress.ip_address(denotes)


def test_names_are_not_literals_and_bad_numbers_are_refused() -> None:
    assert ip_literal("api.example.com") is None
    with pytest.raises(DestinationRefused):
        ip_literal("999999999999")
    assert is_legacy_spelling("0x7f.1")
    assert not is_legacy_spelling("127.0.0.1")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", "public"),
        ("127.0.0.1", "private"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "forbidden"),
        ("fe80::1", "forbidden"),
        ("224.0.0.1", "forbidden"),
        ("0.0.0.0", "forbidden"),
        ("240.0.0.1", "forbidden"),
        # IPv6 forms that carry an IPv4 address are judged by the address they carry
        ("::ffff:127.0.0.1", "private"),
        ("::127.0.0.1", "private"),
        ("2002:a9fe:a9fe::", "forbidden"),  # 6to4 of 169.254.169.254
        ("2002:7f00:1::", "private"),  # 6to4 of 127.0.0.1
        ("2002:0808:0808::", "public"),
        ("64:ff9b::a9fe:a9fe", "forbidden"),  # NAT64 of the metadata address
        ("64:ff9b::7f00:1", "private"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "private"),  # Teredo, client 127.0.0.1
    ],
)
def test_classify(address: str, kind: str) -> None:
    assert classify(ipaddress.ip_address(address)) == kind


def test_policy_private_needs_the_setting_and_forbidden_needs_an_explicit_network() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    metadata = ipaddress.ip_address("169.254.169.254")
    assert STRICT.refusal(loopback) is not None
    assert LOCAL.refusal(loopback) is None
    assert LOCAL.refusal(metadata) is not None
    opened = NetworkPolicy(allowed=parse_networks("169.254.0.0/16, 127.0.0.1"))
    assert opened.refusal(metadata) is None
    assert opened.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert opened.refusal(ipaddress.ip_address("10.0.0.1")) is not None


async def test_resolve_checked_refuses_a_name_with_any_internal_address() -> None:
    with pytest.raises(DestinationRefused):
        await resolve_checked("localhost", 80, STRICT)
    addresses = await resolve_checked("localhost", 80, LOCAL)
    assert all(a.is_loopback for a in addresses)
    with pytest.raises(DestinationRefused):
        await resolve_checked("0x7f.1", 80, STRICT)
    with pytest.raises(DestinationRefused):
        await resolve_checked("does-not-exist.invalid", 80, LOCAL)
