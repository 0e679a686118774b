"""Tables of the billing service (its own database; migrations in `migrations/`).

- `accounts`: one row per org: its current balance, mode, thresholds and the state
  last published to `tollgate.billing.balances.v1`. The balance is the running sum of
  the org's ledger; both change in the same transaction, under this row's lock, and so
  does `sms_charged`, the net of the SMS charges and refunds in that sum.
- `ledger_entries`: the append-only credit ledger (a trigger refuses UPDATE and
  DELETE). Debits are aggregated per org, API and consumer batch.
- `debited_requests`: the id of every request event already charged, so a Kafka
  redelivery or a re-published event never debits twice.
- `idempotency_keys`: the first response to each admin `Idempotency-Key`.
- `plans`: the rate cards operators offer (price, included requests, past-quota
  behaviour, plan-wide limits, trial days).
- `org_plans`: each org's plan, its current period, a downgrade waiting for the
  period end, and the state last published to `tollgate.billing.plans.v1`.
- `purchases`: what customers buy through the payment provider (credit packs), with
  the provider's references and the ledger entry that credited it (the receipts).
- `invoices`: the payment provider's subscription invoices of each org (paid or
  failed), with its references and the hosted invoice page (receipts of paid plans).
- `provider_events`: the id of every payment-provider event already applied, so a
  redelivered or replayed webhook changes nothing.
- `auto_top_ups`: each org's auto top-up settings, its saved payment method, and
  whether the next crossing of its threshold may charge (`armed`).
- `auto_top_up_charges`: the job queue of off-session charges (one per crossing); a
  charge's id is its purchase's id and the provider's idempotency key.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tollgate.contracts.envelope import CREDITS_MAX
from tollgate.kit.outbox import outbox_table


class Base(DeclarativeBase):
    """Declarative base of the billing tables."""


class Account(Base):
    """An org's billing account: current balance, mode and thresholds."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("mode IN ('prepaid', 'postpaid')", name="ck_accounts_mode"),
        CheckConstraint("status IN ('ok', 'low', 'exhausted')", name="ck_accounts_status"),
        CheckConstraint("low_threshold >= 0", name="ck_accounts_low_threshold"),
        CheckConstraint("reserve >= 0", name="ck_accounts_reserve"),
    )

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    low_threshold: Mapped[int] = mapped_column(BigInteger)
    reserve: Mapped[int] = mapped_column(BigInteger)
    balance: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(BigInteger, comment="of the last BalanceState enqueued")
    published_balance: Mapped[int | None] = mapped_column(BigInteger)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sms_charged: Mapped[int] = mapped_column(
        BigInteger,
        server_default=text("0"),
        comment="SMS charges applied less SMS refunds applied, over the org's life",
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


LEDGER_KINDS = ("debit", "top_up", "adjustment", "refund", "expiry")


class LedgerEntry(Base):
    """One credit movement; `amount` is signed (debits and expiries are negative)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'debit' AND amount < 0) OR (kind = 'top_up' AND amount > 0) "
            "OR (kind = 'refund' AND amount > 0) OR (kind = 'expiry' AND amount < 0) "
            "OR (kind = 'adjustment' AND amount <> 0)",
            name="ck_ledger_entries_amount_sign",
        ),
        Index("ix_ledger_entries_org_seq", "org_id", "seq"),
        Index("ix_ledger_entries_org_created", "org_id", "created_at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    org_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(400), unique=True)
    api_id: Mapped[uuid.UUID | None] = mapped_column()
    request_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )


class DebitedRequest(Base):
    """A request event already charged (its envelope id = request id)."""

    __tablename__ = "debited_requests"
    __table_args__ = (
        Index("ix_debited_requests_debited_at", "debited_at", postgresql_using="brin"),
    )

    request_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    debited_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyRecord(Base):
    """The first response to an admin request carrying an `Idempotency-Key`."""

    __tablename__ = "idempotency_keys"

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="the exact response body, replayed byte for byte"
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


PAST_QUOTA = ("reject_402", "reject_429", "overage")
PLAN_STATUSES = ("active", "trialing", "past_due", "suspended")


class Plan(Base):
    """A rate card: what an org on it pays per month and what it may call."""

    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("monthly_price >= 0", name="ck_plans_monthly_price"),
        CheckConstraint(
            "included_requests IS NULL OR included_requests >= 0", name="ck_plans_included"
        ),
        CheckConstraint("overage_price >= 0", name="ck_plans_overage_price"),
        CheckConstraint(f"overage_price <= {CREDITS_MAX}", name="ck_plans_overage_price_max"),
        CheckConstraint("trial_days >= 0", name="ck_plans_trial_days"),
        CheckConstraint(
            "past_quota IN ('reject_402', 'reject_429', 'overage')", name="ck_plans_past_quota"
        ),
        Index("uq_plans_name_live", "name", unique=True, postgresql_where=text("NOT archived")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    monthly_price: Mapped[int] = mapped_column(BigInteger, comment="minor currency units")
    currency: Mapped[str] = mapped_column(String(3))
    included_requests: Mapped[int | None] = mapped_column(BigInteger, comment="null: unlimited")
    past_quota: Mapped[str] = mapped_column(String(16))
    overage_price: Mapped[int] = mapped_column(BigInteger, comment="credits per call past quota")
    rate_limits: Mapped[dict[str, int]] = mapped_column(JSONB)
    trial_days: Mapped[int] = mapped_column(Integer)
    archived: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrgPlan(Base):
    """The plan an org is on, its current period and what comes at the period end."""

    __tablename__ = "org_plans"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'trialing', 'past_due', 'suspended')", name="ck_org_plans_status"
        ),
        CheckConstraint(
            "suspended_by IS NULL OR suspended_by IN ('operator', 'payment')",
            name="ck_org_plans_suspended_by",
        ),
        Index("ix_org_plans_plan", "plan_id"),
        Index("ix_org_plans_period_end", "period_end"),
    )

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id"))
    next_plan_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("plans.id"), comment="a downgrade that takes effect at period_end"
    )
    status: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trial_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    trial_used: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    subscription_id: Mapped[str | None] = mapped_column(
        String(255), unique=True, comment="the payment provider's subscription paying for it"
    )
    customer_id: Mapped[str | None] = mapped_column(String(255))
    grace_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="past_due: suspended at this instant unless paid"
    )
    suspended_by: Mapped[str | None] = mapped_column(
        String(16),
        comment="suspended: by an operator (only an operator reinstates) or for payment",
    )
    subscription_ended_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="the subscription ended (it bills no more; its late events still apply)",
    )
    period_requests: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), comment="overage plans: requests charged this period"
    )
    version: Mapped[int] = mapped_column(BigInteger, comment="of the last PlanState enqueued")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


PURCHASE_STATUSES = ("pending", "processing", "paid", "failed", "expired")


class Purchase(Base):
    """A credit pack bought through a payment provider; `ledger_entry_id` once paid."""

    __tablename__ = "purchases"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'processing', 'paid', 'failed', 'expired')",
            name="ck_purchases_status",
        ),
        CheckConstraint("credits > 0 AND amount >= 0", name="ck_purchases_amounts"),
        CheckConstraint("refunded_credits >= 0", name="ck_purchases_refunded"),
        Index("ix_purchases_org_id", "org_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column()
    provider: Mapped[str] = mapped_column(String(16))
    pack_id: Mapped[str] = mapped_column(String(64))
    credits: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger, comment="minor currency units")
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    ledger_entry_id: Mapped[uuid.UUID | None] = mapped_column()
    refunded_credits: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Invoice(Base):
    """A subscription invoice as the payment provider reported it (`paid` is final)."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint("status IN ('paid', 'payment_failed')", name="ck_invoices_status"),
        CheckConstraint("amount_due >= 0 AND amount_paid >= 0", name="ck_invoices_amounts"),
        UniqueConstraint("provider", "invoice_id", name="uq_invoices_provider_invoice"),
        Index("ix_invoices_org_id", "org_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column()
    provider: Mapped[str] = mapped_column(String(16))
    invoice_id: Mapped[str] = mapped_column(String(255), comment="the provider's invoice id")
    number: Mapped[str | None] = mapped_column(String(64))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    plan_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))
    amount_due: Mapped[int] = mapped_column(BigInteger, comment="minor currency units")
    amount_paid: Mapped[int] = mapped_column(BigInteger, comment="minor currency units")
    currency: Mapped[str] = mapped_column(String(3))
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(2048))
    invoice_pdf: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProviderEvent(Base):
    """A payment-provider event (webhook) already applied."""

    __tablename__ = "provider_events"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class AutoTopUp(Base):
    """An org's auto top-up settings and saved payment method."""

    __tablename__ = "auto_top_ups"
    __table_args__ = (
        CheckConstraint("threshold >= 0 AND target > threshold", name="ck_auto_top_ups_levels"),
        CheckConstraint("monthly_cap >= 0", name="ck_auto_top_ups_cap"),
    )

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    threshold: Mapped[int] = mapped_column(BigInteger, comment="credits")
    target: Mapped[int] = mapped_column(BigInteger, comment="credits")
    monthly_cap: Mapped[int] = mapped_column(BigInteger, comment="minor currency units")
    currency: Mapped[str] = mapped_column(String(3))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[str | None] = mapped_column(String(255))
    armed: Mapped[bool] = mapped_column(
        Boolean, server_default=text("true"), comment="false from a charge until a refill"
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


AUTO_TOP_UP_STATUSES = ("queued", "processing", "succeeded", "failed")


class AutoTopUpCharge(Base):
    """One auto top-up: a job row until the off-session charge succeeded or failed."""

    __tablename__ = "auto_top_up_charges"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'processing', 'succeeded', 'failed')",
            name="ck_auto_top_up_charges_status",
        ),
        Index(
            "ix_auto_top_up_charges_due", "run_after", postgresql_where=text("status = 'queued'")
        ),
        Index("ix_auto_top_up_charges_org", "org_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="= purchases.id")
    org_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger, comment="minor currency units")
    currency: Mapped[str] = mapped_column(String(3))
    credits: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    failure: Mapped[str | None] = mapped_column(String(64))
    crossed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


outbox = outbox_table(Base.metadata)
