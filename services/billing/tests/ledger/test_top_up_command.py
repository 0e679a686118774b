"""`python -m tollgate.billing top-up`: credits added once per key, keyed as the credits
route keys an Idempotency-Key (what `make up` funds the demo org with)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from tollgate.billing.top_up import top_up
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.tokens import TokenMint

from ..factories import api_client, ledger_total, migrated, settings_for


async def test_a_top_up_by_command_is_made_once_per_key_either_way(
    database_factory: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    org = uuid.uuid4()
    args = ["--org", str(org), "--amount", "500", "--key", "demo"]
    # The command runs its own event loop, as from a shell: in a thread here.
    assert await asyncio.to_thread(top_up, settings, args) == 0
    assert await asyncio.to_thread(top_up, settings, args) == 0
    said = capsys.readouterr().out.splitlines()
    assert [line for line in said if "topped up" in line] == [
        "topped up 500 credits",
        "already topped up",
    ]
    mint = TokenMint()
    async with api_client(settings, mint) as (client, _):
        same_key = await client.post(
            f"/v1/orgs/{org}/credits",
            json={"amount": 500},
            headers={**mint.headers(admin=True), "Idempotency-Key": "demo"},
        )
        balance = await client.get(f"/v1/orgs/{org}/balance", headers=mint.headers(admin=True))
    assert same_key.status_code == 422
    assert same_key.json()["type"].endswith("/idempotency-key-reused")
    assert balance.json()["balance"] == 500
    engine = create_engine(settings.database_url)
    try:
        async with session_maker(engine)() as session:
            assert await ledger_total(session, org) == 500
    finally:
        await engine.dispose()
