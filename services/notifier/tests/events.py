"""Contract events as their producers publish them, for notifier tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.contracts.envelope import CloudEvent, new_event
from tollgate.contracts.events.billing import (
    CreditsLow,
    CreditsToppedUp,
    PlanPaymentFailed,
    PlanSuspended,
)
from tollgate.contracts.ids import uuid7


def topped_up(org_id: uuid.UUID, amount: int = 100) -> CloudEvent[Any]:
    """A credits-topped-up event of billing."""
    return new_event(
        CreditsToppedUp(
            org_id=org_id,
            amount=amount,
            balance=amount,
            ledger_entry_id=uuid7(),
            occurred_at=datetime.now(UTC),
        ),
        source="tollgate/billing/test",
        subject=str(org_id),
    )


def credits_low(org_id: uuid.UUID, balance: int = 90) -> CloudEvent[Any]:
    """A credits-low event of billing."""
    return new_event(
        CreditsLow(org_id=org_id, balance=balance, threshold=100, occurred_at=datetime.now(UTC)),
        source="tollgate/billing/test",
        subject=str(org_id),
    )


def plan_payment_failed(
    org_id: uuid.UUID, plan_name: str = "Pro", invoice_id: str = "in_test_0001"
) -> CloudEvent[Any]:
    """A plan-payment-failed event of billing: grace of three days."""
    now = datetime.now(UTC)
    return new_event(
        PlanPaymentFailed(
            org_id=org_id,
            plan_id=uuid7(),
            plan_name=plan_name,
            invoice_id=invoice_id,
            grace_until=now + timedelta(days=3),
            occurred_at=now,
        ),
        source="tollgate/billing/test",
        subject=str(org_id),
    )


def plan_suspended(
    org_id: uuid.UUID,
    plan_name: str = "Pro",
    reason: str = "invoice unpaid after the grace period",
) -> CloudEvent[Any]:
    """A plan-suspended event of billing."""
    return new_event(
        PlanSuspended(
            org_id=org_id,
            plan_id=uuid7(),
            plan_name=plan_name,
            reason=reason,
            occurred_at=datetime.now(UTC),
        ),
        source="tollgate/billing/test",
        subject=str(org_id),
    )
