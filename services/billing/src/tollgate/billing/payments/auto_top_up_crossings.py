"""Detecting a threshold crossing where balances are settled, and queueing its charge.

`queue_crossings` runs inside `balances.settle`, in the transaction that changed the
balances and under their accounts' locks: an org whose balance is at or below its auto
top-up threshold while the settings are `armed` gets one queued charge (and a pending
purchase, its receipt) and is disarmed; a balance above the threshold arms it again.
So each crossing charges at most once, without any timer looking at every org. The
charge is clamped to what is left of the monthly cap; nothing left → no charge and an
`AutoTopUpFailed` notice. Nothing here commits, calls the provider or imports the
ledger (the ledger settles through here).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.config import Settings
from tollgate.billing.payments import auto_top_up_repository as repository
from tollgate.billing.payments import repository as purchases
from tollgate.contracts.events.billing import AutoTopUpFailed
from tollgate.contracts.ids import uuid7
from tollgate.kit.outbox import emit

PACK_ID = "auto-top-up"
"""The `pack_id` of an auto top-up's purchase (receipt)."""


def month_start(now: datetime) -> datetime:
    """Start of the UTC calendar month the monthly cap counts in."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def price_of(credits: int, settings: Settings) -> int:
    """Minor units to charge for `credits` (rounded up to a whole unit)."""
    return -(-credits // settings.auto_top_up_credits_per_unit)


async def queue_crossings(
    session: AsyncSession,
    balances: Mapping[uuid.UUID, int],
    settings: Settings,
    *,
    charge: bool = True,
) -> list[uuid.UUID]:
    """Queue one charge for each org whose new balance crossed its threshold; returns
    the charge ids queued (see the module docstring). An org with a charge still open
    (queued or processing) gets no second one. `charge=False` (credits a refund or a
    dispute took back): a crossing disarms the settings and charges nothing."""
    if not balances:
        return []
    queued = []
    now = datetime.now(UTC)
    for row in await repository.lock_enabled(session, list(balances)):
        balance = balances[row.org_id]
        if balance > row.threshold:
            if not row.armed:
                await repository.set_armed(session, row.org_id, True)
            continue
        if not row.armed or row.payment_method_id is None:
            continue
        await repository.set_armed(session, row.org_id, False)
        if not charge or await repository.has_open_charge(session, row.org_id):
            # No card charge for this crossing: the credits were taken back by a refund
            # or a dispute of a payment (charging the card again would undo the refund,
            # or charge a contested card), or a charge of this crossing is still on its
            # way (queued, or a bank debit processing) and saving the settings re-armed
            # them meanwhile: that charge is the refill. Disarmed like a crossing that
            # charged: a refill above the threshold re-arms.
            continue
        charge_id = uuid7()
        room = row.monthly_cap - await repository.spent_since(session, row.org_id, month_start(now))
        amount = min(price_of(row.target - balance, settings), room)
        if amount <= 0:
            await repository.insert_charge(
                session,
                {
                    "id": charge_id,
                    "org_id": row.org_id,
                    "status": "failed",
                    "amount": 0,
                    "currency": row.currency,
                    "credits": 0,
                    "failure": "monthly_cap_reached",
                    "crossed_at": now,
                    "finished_at": now,
                },
            )
            notice = AutoTopUpFailed(
                org_id=row.org_id,
                charge_id=charge_id,
                amount=0,
                currency=row.currency,
                reason="monthly_cap_reached",
                balance=balance,
                occurred_at=now,
            )
            await emit(session, notice, subject=notice.kafka_key())
            continue
        credits = amount * settings.auto_top_up_credits_per_unit
        await repository.insert_charge(
            session,
            {
                "id": charge_id,
                "org_id": row.org_id,
                "status": "queued",
                "amount": amount,
                "currency": row.currency,
                "credits": credits,
                "crossed_at": now,
                "run_after": now,
            },
        )
        await purchases.insert_purchase(
            session,
            {
                "id": charge_id,
                "org_id": row.org_id,
                "provider": settings.payment_provider,
                "pack_id": PACK_ID,
                "credits": credits,
                "amount": amount,
                "currency": row.currency,
                "status": "pending",
            },
        )
        queued.append(charge_id)
    return queued
