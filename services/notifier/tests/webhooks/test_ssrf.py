"""SSRF matrix: every internal destination is refused at connect time unless the
operator allowlisted it; a receiver listening there sees nothing."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from tollgate.kit.netpolicy import NetworkPolicy, parse_networks
from tollgate.notifier.webhooks.sender import WebhookSender
from tollgate.notifier.webhooks.signing import new_secret
from tollgate.notifier.webhooks.ssrf import GuardedResolver

from ..factories import receiver


class FakeDns(AbstractResolver):
    """A DNS where chosen names resolve to chosen addresses."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.names[host]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


async def _send(sender: WebhookSender, url: str) -> tuple[bool, int | None, str | None]:
    outcome = await sender.send(
        url=url, message_id="msg_ssrf", timestamp=1, body="{}", secrets=[new_secret()]
    )
    return outcome.succeeded, outcome.status, outcome.error


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://0.0.0.0:{port}/hook",
        "http://2130706433:{port}/hook",  # decimal 127.0.0.1
        "http://0177.0.0.1:{port}/hook",  # octal 127.0.0.1
        "http://0x7f.0.0.1:{port}/hook",  # hex 127.0.0.1
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1:{port}/hook",
        "http://10.255.255.254/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
        "http://[2002:7f00:1::]:{port}/hook",  # 6to4 of 127.0.0.1
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of the metadata address
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
        "http://[::7f00:1]:{port}/hook",  # IPv4-compatible 127.0.0.1
        "http://six-to-four.customer.test:{port}/hook",  # resolves to 2002:a9fe:a9fe::
        "http://internal.customer.test:{port}/hook",  # resolves to 10.1.2.3
        "http://rebind.customer.test:{port}/hook",  # resolves to 127.0.0.1
    ],
)
async def test_internal_destinations_are_blocked_at_connect_time(template: str) -> None:
    async with receiver() as rec:
        dns = FakeDns(
            {
                "internal.customer.test": "10.1.2.3",
                "rebind.customer.test": "127.0.0.1",
                "six-to-four.customer.test": "2002:a9fe:a9fe::",
            }
        )
        inner: AbstractResolver | None = None
        if "customer.test" in template:
            inner = dns
        sender = WebhookSender(timeout_seconds=3, resolver=GuardedResolver(NetworkPolicy(), inner))
        try:
            succeeded, status, error = await _send(sender, template.format(port=rec.port))
        finally:
            await sender.close()
        assert not succeeded
        assert status is None
        assert error is not None
        assert error.startswith("blocked"), error
        # Never which address the name resolves to (before: "resolves to … 10.1.2.3"):
        # customers read the attempt log, and could map internal names with it.
        assert "10.1.2.3" not in error
        assert "127.0.0.1" not in error
        assert rec.captured == []


async def test_allowlisted_loopback_is_reached() -> None:
    # The control for the matrix above: the same receiver, allowlisted, gets the call.
    async with receiver() as rec:
        allowed = NetworkPolicy(allowed=parse_networks("127.0.0.0/8"))
        sender = WebhookSender(timeout_seconds=3, policy=allowed)
        try:
            assert await _send(sender, rec.url) == (True, 204, None)
            assert await _send(sender, f"http://localhost:{rec.port}/hook") == (True, 204, None)
        finally:
            await sender.close()
        assert len(rec.captured) == 2


async def test_redirect_to_an_internal_address_is_not_followed() -> None:
    async with receiver("127.0.0.2") as internal, receiver() as public:

        async def redirect(request: web.Request) -> web.StreamResponse:
            return web.Response(
                status=302, headers={"Location": internal.url.replace("127.0.0.1", "127.0.0.2")}
            )

        public.respond = redirect
        # Only the "public" receiver is allowlisted; the redirect target is not followed.
        sender = WebhookSender(
            timeout_seconds=3, policy=NetworkPolicy(allowed=parse_networks("127.0.0.1/32"))
        )
        try:
            succeeded, status, _ = await _send(sender, public.url)
        finally:
            await sender.close()
    assert (succeeded, status) == (False, 302)
    assert len(public.captured) == 1
    assert internal.captured == []


async def test_only_http_urls_are_sent() -> None:
    sender = WebhookSender(timeout_seconds=3)
    try:
        for url in ("file:///etc/passwd", "ftp://example.com/x", "http:///nohost"):
            succeeded, _, error = await _send(sender, url)
            assert not succeeded
            assert error is not None
    finally:
        await sender.close()
