"""What the upstream and the key's IP allowlist learn of the client: only what the
gateway vouches for.

Behind a trusted proxy every `X-Forwarded-For` field counts, in order: HAProxy adds a
field of its own after the client's instead of extending it, and reading the first
field alone took the client's word for its address (a key allowlisted to one office
was usable from anywhere). Headers only a proxy may send, and the gateway's own in any
spelling of their dashes, never reach the upstream from a client.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event, sealed

KEY = apikeys.generate().raw
OFFICE = "198.51.100.7"
ELSEWHERE = "203.0.113.5"


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(
        lambda upstream: [api_event("open", upstream)],
        [key_event(KEY, ip_allowlist=[f"{OFFICE}/32"])],
        {"trusted_proxies": "127.0.0.1/32"},  # the test client plays the load balancer
    )
    try:
        yield gateway
    finally:
        gateway.close()


def status_of(gw: InProcessGateway, *fields: str) -> int:
    head = ["GET /open/x HTTP/1.1", "Host: gw", f"X-API-Key: {KEY}", *fields]
    answer = gw.raw(("\r\n".join([*head, "Connection: close", "", ""])).encode())
    return int(answer.split(b" ", 2)[1])


def test_a_forwarded_for_field_added_by_the_proxy_is_believed(gw: InProcessGateway) -> None:
    # The client claims the office; the proxy adds the address it really came from.
    seen = len(gw.seen)
    assert status_of(gw, f"X-Forwarded-For: {OFFICE}", f"X-Forwarded-For: {ELSEWHERE}") == 403
    assert len(gw.seen) == seen  # never forwarded


def test_every_forwarded_for_field_reaches_the_upstream(gw: InProcessGateway) -> None:
    assert status_of(gw, f"X-Forwarded-For: {ELSEWHERE}", f"X-Forwarded-For: {OFFICE}") == 200
    assert gw.seen[-1].headers["X-Forwarded-For"] == f"{ELSEWHERE}, {OFFICE}, 127.0.0.1"


@pytest.mark.parametrize(
    "field",
    [
        "Forwarded: for=10.0.0.1;proto=https;host=admin.internal",
        "X-Real-IP: 10.0.0.1",
        "X-Forwarded-Port: 8443",
        "X-Forwarded-Prefix: //evil.example",
        "X-Original-URL: /admin/users",
        "X-Rewrite-URL: /admin/users",
        "X_Forwarded_For: 10.0.0.1",
        "X-Forwarded_Host: evil.example",
        "X_Request_ID: forged",
        "X_Tollgate_Org_Id: forged",
    ],
)
def test_what_only_a_proxy_may_say_is_not_taken_from_a_client(
    gw: InProcessGateway, field: str
) -> None:
    assert status_of(gw, f"X-Forwarded-For: {OFFICE}", field) == 200
    name = field.split(":", 1)[0]
    assert name.lower() not in {n.lower() for n in gw.seen[-1].headers}


@pytest.mark.parametrize("name", ["X-Tenant-Id", "x_tenant_id", "X-Tenant_Id"])
def test_a_client_cannot_send_a_header_the_api_injects_in_any_spelling(name: str) -> None:
    """The API injects `X-Tenant-Id`: a client's copy, dashes spelt as underscores too
    (which CGI and WSGI upstreams read as the same field), never reaches the upstream."""
    gateway = InProcessGateway(
        lambda upstream: [
            api_event("open", upstream, upstream_headers_sealed=sealed({"X-Tenant-Id": "acme"}))
        ],
        [key_event(KEY)],
    )
    try:
        reply = gateway.request("GET", "/open/x", {"X-API-Key": KEY, name: "other-tenant"})
        seen = gateway.seen[-1].headers
    finally:
        gateway.close()
    assert reply.status == 200
    assert [(n, v) for n, v in seen.items() if n.lower().replace("_", "-") == "x-tenant-id"] == [
        ("X-Tenant-Id", "acme")
    ]
