"""SSRF checks of upstream URLs, including the spellings that try to sneak past them."""

from __future__ import annotations

import pytest

from tollgate.accounts.apis.upstreams import validate_upstream
from tollgate.kit.problems import Problem

LOOPBACK_AND_PRIVATE = [
    "http://127.0.0.1/",
    "http://localhost:8080",
    "http://api.localhost",
    "http://2130706433/",  # decimal 127.0.0.1
    "http://0177.0.0.1/",  # octal
    "http://0x7f.0.0.1/",  # hex
    "http://127.1/",  # short form
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://10.1.2.3/",
    "http://012.1.2.3/",  # octal 10.1.2.3
    "http://167772161/",  # decimal 10.0.0.1
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://3232235777/",  # decimal 192.168.1.1
    "http://100.64.0.1/",
    "http://[fd12:3456::1]/",
]
ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data",
    "http://2852039166/",  # decimal 169.254.169.254
    "http://0251.0376.0251.0376/",  # octal 169.254.169.254
    "http://0xa9fea9fe/",  # hex 169.254.169.254
    "http://169.254.1.1/",
    "http://[fe80::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
]
MALFORMED = [
    "ftp://example.com/",
    "file:///etc/passwd",
    "http://user:pass@example.com/",
    "http://example.com/?x=1",
    "http:///nohost",
    "http://exa mple.com/",
    "http://example.com:99999/",
    "gopher://127.0.0.1/",
]


@pytest.mark.parametrize("url", LOOPBACK_AND_PRIVATE + ALWAYS_REFUSED + MALFORMED)
async def test_refused_by_default(url: str) -> None:
    with pytest.raises(Problem) as caught:
        await validate_upstream(url, allow_private=False, resolve=False)
    assert caught.value.status == 422


@pytest.mark.parametrize("url", LOOPBACK_AND_PRIVATE)
async def test_private_allowed_when_the_operator_says_so(url: str) -> None:
    assert await validate_upstream(url, allow_private=True, resolve=False)


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
async def test_metadata_and_link_local_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(Problem):
        await validate_upstream(url, allow_private=True, resolve=False)


async def test_public_urls_are_normalised() -> None:
    assert (
        await validate_upstream("https://API.Example.com/v1/", allow_private=False, resolve=False)
        == "https://api.example.com/v1"
    )
    assert (
        await validate_upstream("http://93.184.215.14:8443", allow_private=False, resolve=False)
        == "http://93.184.215.14:8443"
    )


async def test_host_names_resolving_to_loopback_are_refused() -> None:
    # `localhost.` resolves through the system resolver (no network needed).
    with pytest.raises(Problem):
        await validate_upstream("http://localhost./", allow_private=False, resolve=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:a9fe:a9fe::]/",  # 6to4 carrying 169.254.169.254
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 carrying the metadata address
        "http://[::169.254.169.254]/",  # IPv4-compatible
        "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, client 169.254.169.254
    ],
)
async def test_ipv6_forms_carrying_a_metadata_address_are_refused(url: str) -> None:
    with pytest.raises(Problem):
        await validate_upstream(url, allow_private=True, resolve=False)
