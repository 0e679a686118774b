"""Ledger rules: charging request events, adding and adjusting credits.

Every movement is a ledger entry written in the same transaction as the account's new
balance, under the account's row lock, so `balance_after` of an org's last entry always
equals its balance. Debits are idempotent per request id (`debited_requests`): a batch
that Kafka redelivers, or an event the gateway published twice, is charged once.
Nothing here commits; the transport owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.balances import service as balances
from tollgate.billing.config import Settings
from tollgate.billing.ledger import repository
from tollgate.billing.models import LedgerEntry
from tollgate.billing.plans import service as plans
from tollgate.contracts.events.billing import CreditsToppedUp
from tollgate.contracts.events.gateway import RequestCompleted
from tollgate.contracts.ids import uuid7
from tollgate.kit.outbox import emit
from tollgate.kit.problems import Unprocessable

GATEWAY_ACTOR = "gateway"
MAX_BALANCE = 10**15
"""Credits; keeps every sum far from the 64-bit limit."""

CreditKind = Literal["top_up", "adjustment", "refund", "expiry"]


def credit_key(org_id: uuid.UUID, key: str) -> str:
    """The ledger key of a top-up or adjustment made with `key` (an `Idempotency-Key`,
    or the `top-up` command's `--key`): one entry per org and key."""
    return f"credit:{org_id}:{key}"


@dataclass(frozen=True)
class DebitOutcome:
    """What one batch of request events did."""

    debited: int
    """Events charged now."""
    credits: int
    """Credits taken, summed over orgs."""
    redelivered: int
    """Priced events skipped because they had been charged before."""


async def debit_for_requests(
    session: AsyncSession, events: Sequence[RequestCompleted], settings: Settings
) -> DebitOutcome:
    """Charge each request's `cost` to its org, once per request id.

    Events already charged are skipped; the rest are summed per org and API into one
    debit entry each. Unknown orgs get an account with the defaults (balance 0).
    Free requests (cost 0) leave no trace, except for orgs on an overage plan: their
    requests in the current period are counted, and those past the plan's included
    requests are charged `overage_price` each (one more debit entry per org).
    """
    meters = await plans.overage_meters(session, [event.org_id for event in events])
    # Requests of orgs on an overage plan count even when free: past the quota they cost.
    priced = {
        event.request_id: event for event in events if event.cost > 0 or event.org_id in meters
    }
    fresh = await repository.claim_requests(session, list(priced))
    redelivered = sum(1 for e in events if e.cost > 0 or e.org_id in meters) - len(fresh)
    if not fresh:
        return DebitOutcome(debited=0, credits=0, redelivered=redelivered)

    charges: dict[uuid.UUID, dict[uuid.UUID, list[int]]] = {}
    moments: dict[uuid.UUID, list[datetime]] = {}
    for request_id in fresh:
        event = priced[request_id]
        if event.org_id in meters:
            moments.setdefault(event.org_id, []).append(event.time)
        if event.cost <= 0:
            continue
        per_api = charges.setdefault(event.org_id, {})
        total = per_api.setdefault(event.api_id, [0, 0])
        total[0] += event.cost
        total[1] += 1
    overage = {
        org_id: calls
        for org_id, at in moments.items()
        if (calls := meters[org_id].count(at)) > 0 and meters[org_id].price > 0
    }
    await session.flush()  # the meters' counts
    if not charges and not overage:
        return DebitOutcome(debited=len(fresh), credits=0, redelivered=redelivered)

    accounts = await balances.lock_accounts(session, {*charges, *overage}, settings)
    batch = uuid7()
    entries = []
    credits = 0
    for org_id in sorted(overage):
        account = accounts[org_id]
        amount = overage[org_id] * meters[org_id].price
        account.balance -= amount
        credits += amount
        entries.append(
            {
                "id": uuid7(),
                "org_id": org_id,
                "kind": "debit",
                "amount": -amount,
                "balance_after": account.balance,
                "actor": GATEWAY_ACTOR,
                "reason": f"{overage[org_id]} call(s) past the plan's included requests",
                "idempotency_key": f"overage:{batch}:{org_id}",
                "api_id": None,
                "request_count": overage[org_id],
            }
        )
    for org_id in sorted(charges):
        account = accounts[org_id]
        for api_id, (amount, count) in sorted(charges[org_id].items()):
            account.balance -= amount
            credits += amount
            entries.append(
                {
                    "id": uuid7(),
                    "org_id": org_id,
                    "kind": "debit",
                    "amount": -amount,
                    "balance_after": account.balance,
                    "actor": GATEWAY_ACTOR,
                    "reason": f"{count} request(s)",
                    "idempotency_key": f"debit:{batch}:{org_id}:{api_id}",
                    "api_id": api_id,
                    "request_count": count,
                }
            )
    await repository.insert_entries(session, entries)
    await balances.settle(session, accounts.values(), settings, publish=False)
    return DebitOutcome(debited=len(fresh), credits=credits, redelivered=redelivered)


async def add_credits(
    session: AsyncSession,
    org_id: uuid.UUID,
    settings: Settings,
    *,
    kind: CreditKind,
    amount: int,
    actor: str,
    reason: str,
    idempotency_key: str,
    auto_top_up: bool = True,
) -> LedgerEntry:
    """Top up or adjust an org's balance by a signed `amount`.

    A top-up also enqueues `CreditsToppedUp`; every such change publishes the new
    `BalanceState` at once so a blocked org is served again without waiting.
    `auto_top_up=False`: a balance this leaves at or below the org's auto top-up
    threshold charges no card (credits a refund or dispute took back).
    """
    account = (await balances.lock_accounts(session, [org_id], settings))[org_id]
    new_balance = account.balance + amount
    if abs(new_balance) > MAX_BALANCE:
        raise Unprocessable(
            "balance-out-of-range",
            f"The balance would leave the supported range of ±{MAX_BALANCE} credits.",
        )
    account.balance = new_balance
    entry = await repository.insert_entry(
        session,
        {
            "id": uuid7(),
            "org_id": org_id,
            "kind": kind,
            "amount": amount,
            "balance_after": new_balance,
            "actor": actor,
            "reason": reason,
            "idempotency_key": idempotency_key,
            "api_id": None,
            "request_count": 0,
        },
    )
    if kind == "top_up":
        topped_up = CreditsToppedUp(
            org_id=org_id,
            amount=amount,
            balance=new_balance,
            ledger_entry_id=entry.id,
            occurred_at=entry.created_at,
        )
        await emit(session, topped_up, subject=str(org_id))
    await balances.settle(session, [account], settings, publish=True, auto_top_up=auto_top_up)
    return entry


async def transactions(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    kinds: Sequence[str] | None,
    api_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    before_seq: int | None,
    limit: int,
) -> Sequence[LedgerEntry]:
    """A page of an org's entries, newest first (`before_seq` continues a listing)."""
    return await repository.list_entries(
        session,
        org_id,
        kinds=kinds,
        api_id=api_id,
        since=since,
        until=until,
        before_seq=before_seq,
        limit=limit,
    )


async def forget_old_request_ids(session: AsyncSession, settings: Settings) -> int:
    """Drop debited-request ids older than the dedup retention."""
    cutoff = datetime.now(UTC) - timedelta(hours=settings.dedup_retention_hours)
    return await repository.forget_debited_before(session, cutoff)
