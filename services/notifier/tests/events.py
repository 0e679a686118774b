"""Contract events as their producers publish them, for notifier tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tollgate.contracts.envelope import CloudEvent, new_event
from tollgate.contracts.events.billing import CreditsLow, CreditsToppedUp
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
