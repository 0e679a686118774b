"""Ledger rules of SMS charges: `SmsCharged` debits, `SmsRefunded` credits back.

Each charge and each refund is applied at most once: its id is claimed in
`debited_requests` (the ledger's one table of consumed ids, purged with the request
ids) in the same transaction as the ledger entry and the new balance. A refund is
applied even when it arrives before its charge (separate partitions cannot reorder
one org's events, but a replay could): the balance ends the same. The account's
`sms_charged` moves with its balance, so each `BalanceState` tells the notifier which
of its charges that balance includes. Uses the ledger's
and the balances' functions; writes nothing of its own. Never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.balances import service as balances
from tollgate.billing.config import Settings
from tollgate.billing.ledger import repository as ledger
from tollgate.contracts.events.notifier import SmsCharged, SmsRefunded
from tollgate.contracts.ids import uuid7

SMS_ACTOR = "notifier:sms"


@dataclass(frozen=True)
class SmsOutcome:
    """What one batch of SMS events did."""

    charged: int
    """Charges debited now."""
    refunded: int
    """Refunds credited now."""
    credits: int
    """Net credits taken (debits minus refunds)."""
    redelivered: int
    """Events skipped because they were applied before."""


async def apply_sms_events(
    session: AsyncSession,
    events: Sequence[SmsCharged | SmsRefunded],
    settings: Settings,
) -> SmsOutcome:
    """Debit each new charge and credit each new refund to its org, once per id."""
    by_id: dict[uuid.UUID, SmsCharged | SmsRefunded] = {}
    for event in events:
        if event.amount <= 0:
            continue  # a free message leaves no trace, like a free request
        by_id[event.charge_id if isinstance(event, SmsCharged) else event.refund_id] = event
    fresh = await ledger.claim_requests(session, list(by_id))
    redelivered = len(by_id) - len(fresh)
    if not fresh:
        return SmsOutcome(0, 0, 0, redelivered)
    applied = [by_id[i] for i in sorted(fresh)]
    accounts = await balances.lock_accounts(session, {e.org_id for e in applied}, settings)
    entries = []
    charged = refunded = credits = 0
    for event in applied:
        account = accounts[event.org_id]
        if isinstance(event, SmsCharged):
            amount = -event.amount
            charged += 1
            kind, key = "debit", f"sms-charge:{event.charge_id}"
            reason = (
                f"SMS {event.message_id}: {event.segments} segment(s) x "
                f"{event.price_per_segment} ({event.destination_prefix})"
            )
        else:
            amount = event.amount
            refunded += 1
            kind, key = "refund", f"sms-refund:{event.refund_id}"
            reason = f"SMS {event.message_id} failed ({event.reason})"
        account.balance += amount
        account.sms_charged -= amount
        credits -= amount
        entries.append(
            {
                "id": uuid7(),
                "org_id": event.org_id,
                "kind": kind,
                "amount": amount,
                "balance_after": account.balance,
                "actor": SMS_ACTOR,
                "reason": reason[:500],
                "idempotency_key": key,
                "api_id": None,
                "request_count": 0,
            }
        )
    await ledger.insert_entries(session, entries)
    # A refund can unblock an org: its balance is announced at once, like a top-up.
    await balances.settle(session, accounts.values(), settings, publish=refunded > 0)
    return SmsOutcome(charged, refunded, credits, redelivered)
