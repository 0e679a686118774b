"""The overview in process: its "Credits used" is what billing's ledger debited in the
range (requests, SMS, any debit), the figure the credits page lists, not usage's count
of request costs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from .fakes import FakeBackends, console, sign_in


def debit(amount: int, age: timedelta, *, requests: int = 0, reason: str = "") -> dict[str, Any]:
    """A ledger entry as billing lists it, `age` before now."""
    return {
        "id": str(uuid.uuid4()),
        "kind": "debit" if amount < 0 else "top_up",
        "amount": amount,
        "balance_after": 0,
        "reason": reason,
        "request_count": requests,
        "created_at": (datetime.now(UTC) - age).isoformat(),
    }


async def test_credits_used_counts_every_debit_of_the_range_sms_included() -> None:
    fake = FakeBackends()  # usage says its requests cost 1,200 credits
    fake.ledger += [
        debit(-999, timedelta(days=3), requests=999),  # before the last 24 hours
        debit(1000, timedelta(hours=3)),  # a top-up is no use of credits
        debit(-5, timedelta(hours=2), reason="SMS 0193aa: 1 segment(s) x 5 (+41)"),
        debit(-40, timedelta(hours=1), requests=40),
    ]
    async with console(fake) as client:
        await sign_in(client)
        day = await client.get(f"/orgs/{fake.org_id}")
        week = await client.get(f"/orgs/{fake.org_id}", params={"range": "7d"})
        credits = await client.get(f"/orgs/{fake.org_id}/credits")
    assert 'data-testid="stat-credits">45<' in day.text
    assert 'data-testid="stat-credits">1,044<' in week.text
    assert "SMS 0193aa" in credits.text  # the charge the credits page lists too


async def test_credits_used_is_billing_sum_however_many_entries() -> None:
    fake = FakeBackends()
    fake.ledger += [debit(-3, timedelta(seconds=10 + i), requests=3) for i in range(6000)]
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}")
    assert 'data-testid="stat-credits">18,000<' in page.text


async def test_credits_used_says_billing_is_down_and_the_traffic_stays() -> None:
    fake = FakeBackends(down={"billing"})
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}")
    card = page.text.split('data-testid="credits-used"', 1)[1].split("</div>\n</section>", 1)[0]
    assert "Billing is unavailable right now" in card
    assert 'data-testid="stat-requests">1,234<' in page.text
