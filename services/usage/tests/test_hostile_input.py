"""Usage takes no request bodies, but the kit's JSON nesting limit guards it too: a
deeply nested body is a 4xx problem before any routing or parsing, never a 500."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tollgate.kit.testing.tokens import TokenMint
from tollgate.usage.app import create_app
from tollgate.usage.config import Settings


async def test_deeply_nested_json_is_refused_before_routing(
    database_factory: Callable[[str], str],
) -> None:
    mint = TokenMint()
    app = create_app(Settings(database_url=database_factory("usage")), consume=False)
    app.state.jwt_verifier = mint.verifier()
    nested = b"[" * 100_000 + b"]" * 100_000
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://usage") as client:
        reply = await client.post(
            "/v1/usage/summary",
            content=nested,
            headers={**mint.headers(admin=True), "Content-Type": "application/json"},
        )
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert "nested" in reply.json()["detail"]
