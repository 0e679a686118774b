"""Monthly statements add up, in JSON and CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from tollgate.billing.ledger import service as ledger
from tollgate.billing.statements.service import month_bounds
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.tokens import TokenMint

from ..factories import api_client, migrated, request_event, settings_for


def test_month_bounds_roll_over_the_year() -> None:
    assert month_bounds("2025-12") == (
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_statement_adds_up(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    mint = TokenMint()
    org = uuid.uuid4()
    maps, search = uuid.uuid4(), uuid.uuid4()
    admin = mint.headers(admin=True)
    viewer = mint.headers(orgs={org: "viewer"})
    async with api_client(settings, mint) as (client, _):
        r = await client.post(
            f"/v1/orgs/{org}/credits",
            json={"amount": 1000},
            headers={**admin, "Idempotency-Key": "t"},
        )
        assert r.status_code == 201
        engine = create_engine(url)
        try:
            async with session_maker(engine)() as session, session.begin():
                events = [request_event(org, cost=3, api_id=maps) for _ in range(10)]
                events += [request_event(org, cost=7, api_id=search) for _ in range(5)]
                await ledger.debit_for_requests(session, events, settings)
        finally:
            await engine.dispose()
        r = await client.post(
            f"/v1/orgs/{org}/adjustments",
            json={"amount": -20, "kind": "expiry", "reason": "promo ended"},
            headers={**admin, "Idempotency-Key": "e"},
        )
        assert r.status_code == 201
        month = datetime.now(UTC).strftime("%Y-%m")
        _, end = month_bounds(month)
        next_month = end.strftime("%Y-%m")
        body = (await client.get(f"/v1/orgs/{org}/statements/{month}", headers=viewer)).json()
        later = (await client.get(f"/v1/orgs/{org}/statements/{next_month}", headers=viewer)).json()
        as_csv = await client.get(
            f"/v1/orgs/{org}/statements/{month}", params={"format": "csv"}, headers=viewer
        )
        bad = await client.get(f"/v1/orgs/{org}/statements/2025-13", headers=viewer)

    assert body["opening_balance"] == 0
    assert body["top_ups"] == 1000
    assert body["expiries"] == -20
    assert body["usage"] == [
        {"api_id": str(search), "requests": 5, "credits": 35},
        {"api_id": str(maps), "requests": 10, "credits": 30},
    ]
    assert body["usage_total"] == 65
    assert body["closing_balance"] == 1000 - 65 - 20
    assert (
        body["opening_balance"]
        + body["top_ups"]
        + body["refunds"]
        + body["adjustments"]
        + body["expiries"]
        - body["usage_total"]
        == body["closing_balance"]
    )
    assert later["opening_balance"] == later["closing_balance"] == body["closing_balance"]
    assert later["usage"] == []
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = {
        row["line"]: row
        for row in csv.DictReader(io.StringIO(as_csv.text))
        if row["line"] != "usage"
    }
    assert int(lines["closing_balance"]["credits"]) == body["closing_balance"]
    assert int(lines["usage_total"]["credits"]) == -65
    assert bad.status_code == 422
