"""Events the billing service publishes.

- `tollgate.billing.balances.v1` (compacted, key `org_id`): `BalanceState`, an org's
  current balance and whether it may still spend. The gateway replays it at start-up
  and rejects prepaid orgs whose status is `exhausted` with 402.
- `tollgate.billing.events.v1` (delete, key `org_id`): notable balance changes (low,
  exhausted, topped up) and subscription trouble (payment failed, plan suspended),
  consumed by the notifier for email and webhooks.
- `tollgate.billing.plans.v1` (compacted, key `org_id`): `PlanState`, the org's plan
  (included requests per period, what happens past them, plan-wide rate limits) and
  whether it is suspended. The gateway replays it and enforces it per request.

Amounts are integer credits; what a credit is worth is the operator's business.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from pydantic import Field

from tollgate.contracts.envelope import CREDITS_MAX, EventData, UtcDatetime
from tollgate.contracts.events.accounts import Limits


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
    sms_charged: int | None = Field(
        None,
        description=(
            "Credits of the org's SMS charges this balance includes, less the SMS refunds "
            "it includes, over the org's life: the notifier subtracts it from its own "
            "running total to know which of its charges billing has not applied yet. "
            "Null from billing versions that did not count it."
        ),
    )


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


class PastQuota(StrEnum):
    """What the gateway does with a request past the plan's included requests."""

    REJECT_402 = "reject_402"
    REJECT_429 = "reject_429"
    OVERAGE = "overage"


class PlanStatus(StrEnum):
    """Whether an org's plan lets it call APIs: `suspended` is refused with 402."""

    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    SUSPENDED = "suspended"


class PlanState(EventData):
    """An org's current plan (rate card) and its standing.

    Sent by billing (outbox) when an org is put on a plan, changes plan, starts a new
    period, or is suspended or reinstated, and when an operator edits the plan.
    Kafka key: `org_id` on a compacted topic; a tombstone means the org has no plan (no
    quota, no plan limits).
    """

    event_type = "tollgate.billing.plan.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation.")
    plan_id: UUID = Field(description="The plan the org is on.")
    plan_name: str = Field(max_length=100, description="The plan's display name.")
    status: PlanStatus = Field(description="active, trialing, past_due (in grace) or suspended.")
    included_requests: int | None = Field(
        None, ge=0, description="Requests included per period; null: unlimited."
    )
    past_quota: PastQuota = Field(
        description="Past the included requests: refuse with 402 or 429, or serve and charge "
        "`overage_price` per call."
    )
    overage_price: int = Field(
        0, ge=0, le=CREDITS_MAX, description="Credits per call past the quota (overage)."
    )
    rate_limits: Limits = Field(
        default_factory=Limits, description="Limits over every key of the org together."
    )
    period_start: UtcDatetime = Field(description="Start of the current quota period.")
    period_end: UtcDatetime = Field(description="End (exclusive) of the current quota period.")
    trial_ends_at: UtcDatetime | None = Field(None, description="End of the trial, if any.")
    version: int = Field(
        ge=0, description="Increases with every change for this org; drop stale versions."
    )
    as_of: UtcDatetime = Field(description="When the org's plan had this state.")


class PlanPaymentFailed(EventData):
    """A subscription invoice for an org's plan could not be paid.

    Sent by billing (outbox) when the payment provider reports a failed invoice; the
    org keeps its plan until `grace_until`, then it is suspended (402 at the gateway)
    unless the invoice is paid. Kafka key: `org_id`.
    """

    event_type = "tollgate.billing.plan.payment_failed.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation.")
    plan_id: UUID = Field(description="The plan the invoice is for.")
    plan_name: str = Field(max_length=100, description="The plan's display name.")
    invoice_id: str = Field(max_length=255, description="The payment provider's invoice id.")
    grace_until: UtcDatetime = Field(description="When the org is suspended if still unpaid.")
    occurred_at: UtcDatetime = Field(description="When the failure was reported.")


class PlanSuspended(EventData):
    """An org's plan was suspended: every call is refused with 402 until it is paid.

    Sent by billing (outbox) when an unpaid invoice's grace period ends or the
    subscription ends unpaid. Kafka key: `org_id`.
    """

    event_type = "tollgate.billing.plan.suspended.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation.")
    plan_id: UUID = Field(description="The suspended plan.")
    plan_name: str = Field(max_length=100, description="The plan's display name.")
    reason: str = Field(max_length=200, description="Why, in plain words.")
    occurred_at: UtcDatetime = Field(description="When the org was suspended.")


class AutoTopUpFailed(EventData):
    """An org's automatic top-up could not be charged: no credits were added.

    Sent by billing (outbox) when the off-session charge to the org's saved payment
    method is declined, needs the customer (authentication), fails after its retries,
    or would exceed the org's monthly spend cap. Kafka key: `org_id`.
    """

    event_type = "tollgate.billing.auto_top_up.failed.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation.")
    charge_id: UUID = Field(description="The top-up attempt (also its purchase id).")
    amount: int = Field(ge=0, description="What was to be charged, in minor currency units.")
    currency: str = Field(max_length=3, description="ISO 4217, lower case.")
    reason: str = Field(
        max_length=64,
        description="card_declined, authentication_required, monthly_cap_reached or "
        "provider_unavailable (new reasons may be added).",
    )
    balance: int = Field(description="The org's balance in credits when it failed.")
    occurred_at: UtcDatetime = Field(description="When the attempt ended.")
