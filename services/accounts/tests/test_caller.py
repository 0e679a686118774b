"""The client IP that throttles and the audit log see: the peer address, unless the peer
is a configured trusted proxy, in which case the nearest untrusted `X-Forwarded-For`
hop. A client cannot pick its own address by sending the header."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from .factories import Service, make_admin, running, settings_for, unique_email


def _ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


async def _failed_sign_in_ips(svc: Service, admin_headers: dict[str, str], rid: str) -> list[Any]:
    listed = await svc.http.get(
        "/v1/audit",
        params={"action": "auth.login_failed", "limit": 200},
        headers=admin_headers,
    )
    return [e["ip"] for e in listed.json()["items"] if e["request_id"] == rid]


async def _attempt(
    svc: Service, peer: str, forwarded_for: str | None, rid: str, proxy_secret: str = ""
) -> int:
    headers = {"X-Request-ID": rid}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    if proxy_secret:
        headers["X-Tollgate-Proxy-Secret"] = proxy_secret
    transport = httpx.ASGITransport(app=svc.app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://accounts.test") as http:
        response = await http.post(
            "/v1/auth/token",
            data={"username": unique_email(), "password": "wrong-password"},
            headers=headers,
        )
    return response.status_code


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        peer, spoofed = _ip(), _ip()
        rid = f"rq-spoof-{secrets.token_hex(4)}"
        assert await _attempt(svc, peer, spoofed, rid) == 401
        assert await _failed_sign_in_ips(svc, admin.headers, rid) == [peer]


async def test_behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        trusted_proxies="192.0.2.0/24, 2001:db8::/32",
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        client, spoofed = _ip(), _ip()
        cases = {
            # A trusted proxy appended the address it saw; the client's own claim is
            # to its left and is ignored.
            "one-proxy": ("192.0.2.10", f"{spoofed}, {client}", client),
            "two-proxies": ("192.0.2.10", f"{spoofed}, {client}, 192.0.2.99", client),
            "ipv6-proxy": ("2001:db8::5", client, client),
            # Not from a proxy: the header is the client's own and means nothing.
            "untrusted-peer": (client, spoofed, client),
            # A garbled hop is not an address: the proxy that passed it is the client.
            "garbage-hop": ("192.0.2.10", "not-an-ip", "192.0.2.10"),
            "only-proxies": ("192.0.2.10", "192.0.2.11", "192.0.2.11"),
        }
        for name, (peer, forwarded_for, expected) in cases.items():
            rid = f"rq-{name}-{secrets.token_hex(4)}"
            assert await _attempt(svc, peer, forwarded_for, rid) == 401
            assert await _failed_sign_in_ips(svc, admin.headers, rid) == [expected], name


@pytest.mark.parametrize(
    "trusted",
    [
        pytest.param({"trusted_proxies": "192.0.2.0/24"}, id="proxy-by-address"),
        # The console, wherever it runs, proving itself with its secret.
        pytest.param({"proxy_secrets": "console-secret"}, id="proxy-by-secret"),
    ],
)
async def test_the_per_ip_limit_counts_the_forwarded_client_not_the_proxy(
    accounts_db: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    trusted: dict[str, str],
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        login_max_failures_per_ip=3,
        **trusted,
    )
    proxy = "192.0.2.10" if "trusted_proxies" in trusted else _ip()
    secret = "console-secret" if "proxy_secrets" in trusted else ""
    async with running(settings) as svc:
        attacker, bystander = _ip(), _ip()
        statuses = [
            await _attempt(svc, proxy, attacker, f"rq-a-{i}-{secrets.token_hex(4)}", secret)
            for i in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        # Another client behind the same proxy is not affected.
        assert await _attempt(svc, proxy, bystander, "rq-bystander", secret) == 401


async def test_a_caller_with_a_proxy_secret_is_believed_from_any_address(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The console's address is rarely known in advance (a pod, a compose container):
    it proves itself with one of `proxy_secrets` instead; a wrong or missing secret
    leaves the header ignored, as from any client."""
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        proxy_secrets="new-console-secret, old-console-secret",
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        console, visitor, spoofed = _ip(), _ip(), _ip()
        cases = {
            "newest": ("new-console-secret", f"{spoofed}, {visitor}", visitor),
            "older": ("old-console-secret", visitor, visitor),
            "wrong": ("guessed-secret", visitor, console),
            "prefix": ("new-console", visitor, console),
            "none": ("", visitor, console),
        }
        for name, (secret, forwarded_for, expected) in cases.items():
            rid = f"rq-secret-{name}-{secrets.token_hex(4)}"
            assert await _attempt(svc, console, forwarded_for, rid, secret) == 401
            assert await _failed_sign_in_ips(svc, admin.headers, rid) == [expected], name
