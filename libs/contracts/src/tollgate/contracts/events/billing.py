"""Events the billing service publishes.

- `tollgate.billing.balances.v1` (compacted, key `org_id`): `BalanceState`, an org's
  current balance and whether it may still spend. The gateway replays it at start-up
  and rejects prepaid orgs whose status is `exhausted` with 402.
- `tollgate.billing.events.v1` (delete, key `org_id`): notable balance changes (low,
  exhausted, topped up), consumed by the notifier for email and webhooks.

Amounts are integer credits; what a credit is worth is the operator's business.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from pydantic import Field

from tollgate.contracts.envelope import EventData, UtcDatetime


class BalanceMode(StrEnum):
    """How an org pays: prepaid orgs are stopped at zero, postpaid orgs may go negative."""

    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class BalanceStatus(StrEnum):
    """Where a balance stands relative to the org's low threshold and zero."""

    OK = "ok"
    LOW = "low"
    EXHAUSTED = "exhausted"


class BalanceState(EventData):
    """An org's current credit balance and spending status.

    Sent by billing whenever an org's balance, status, mode or threshold changes
    (coalesced per debit batch). Kafka key: `org_id` on a compacted topic.
    """

    event_type = "tollgate.billing.balance.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation.")
    balance: int = Field(description="Current balance in credits; may be negative (postpaid).")
    status: BalanceStatus = Field(description="ok, low (at or below threshold) or exhausted.")
    mode: BalanceMode = Field(description="Prepaid or postpaid.")
    low_threshold: int = Field(ge=0, description="Balance at or below which status is low.")
    version: int = Field(
        ge=0, description="Increases with every change for this org; drop stale versions."
    )
    as_of: UtcDatetime = Field(description="When the balance had this value.")


class CreditsLow(EventData):
    """An org's balance fell to or below its low threshold.

    Sent by billing once per crossing (not again until it has been topped up above the
    threshold). Kafka key: `org_id`.
    """

    event_type = "tollgate.billing.credits.low.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation.")
    balance: int = Field(description="Balance in credits after the crossing.")
    threshold: int = Field(ge=0, description="The org's low-balance threshold in credits.")
    occurred_at: UtcDatetime = Field(description="When the balance crossed the threshold.")


class CreditsExhausted(EventData):
    """An org's balance reached zero or below.

    Sent by billing once per exhaustion; prepaid orgs are rejected with 402 from now on
    until topped up. Kafka key: `org_id`.
    """

    event_type = "tollgate.billing.credits.exhausted.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation.")
    balance: int = Field(
        description="Balance in credits, at or below the org's exhaustion reserve (usually 0)."
    )
    mode: BalanceMode = Field(description="Prepaid (now blocked) or postpaid (not blocked).")
    occurred_at: UtcDatetime = Field(description="When the balance was exhausted.")


class CreditsToppedUp(EventData):
    """Credits were added to an org's balance.

    Sent by billing (outbox) for every top-up ledger entry. Kafka key: `org_id`.
    """

    event_type = "tollgate.billing.credits.topped_up.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation.")
    amount: int = Field(ge=1, description="Credits added.")
    balance: int = Field(description="Balance in credits after the top-up.")
    ledger_entry_id: UUID = Field(description="Ledger entry recording the top-up.")
    occurred_at: UtcDatetime = Field(description="When the credits were added.")
