"""Tables of the notifier service (its own database; migrations in `migrations/`).

Three durable queues live here: `webhook_deliveries`, `email_messages` and the
unrouted rows of `sms_messages`. Workers claim due rows with `FOR UPDATE SKIP
LOCKED` and lease them (`leased_until`) so a crashed worker's rows come back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tollgate.kit.outbox import outbox_table


class Base(DeclarativeBase):
    """Declarative base of the notifier tables."""


class ReceivedEvent(Base):
    """Every domain event the notifier has taken in, once (its id is the key), so a
    Kafka redelivery never notifies twice."""

    __tablename__ = "received_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))
    source_topic: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (Index("ix_received_events_received_at", "received_at"),)


class WebhookEndpoint(Base):
    """An org's webhook receiver. Secrets are sealed at rest (tollgate.kit.sealing).
    A deleted one keeps its row (`deleted_at`, disabled) until retention removes it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(255)))
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(String(64))
    secret_sealed: Mapped[str] = mapped_column(Text)
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookMessage(Base):
    """One event to an org's endpoints; its id is the stable `webhook-id`, its body the
    exact bytes that are signed and sent on every attempt."""

    __tablename__ = "webhook_messages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("org_id", "event_id", name="uq_webhook_messages_event"),
        Index("ix_webhook_messages_created", "created_at"),
    )


class WebhookDelivery(Base):
    """The queue row of one message to one endpoint (state pending/succeeded/failed)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("message_id", "endpoint_id", name="uq_webhook_deliveries_target"),
        Index(
            "ix_webhook_deliveries_due",
            "org_id",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
        Index(
            "ix_webhook_deliveries_finished",
            "finished_at",
            postgresql_where=text("state <> 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery, for the delivery log."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    response_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)


class NotificationContact(Base):
    """Who receives an org's notification emails (credits, usage, webhooks)."""

    __tablename__ = "notification_contacts"

    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    locale: Mapped[str] = mapped_column(String(35))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ContactList(Base):
    """That an org's notification contacts were set, and by whom: `owner` (seeded from
    accounts' `OrgCreated`) or `api` (a PUT). One row per org, written once: the first
    setting is the one that catches the org up on a low/exhausted notice."""

    __tablename__ = "contact_lists"

    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BalanceNotice(Base):
    """The latest credits notice billing sent for an org (low, exhausted or topped up,
    as `status` low/exhausted/ok), with the mail it makes: contacts set after it arrived
    are mailed it once (same dedupe key as the notice's own mails)."""

    __tablename__ = "balance_notices"

    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EmailMessage(Base):
    """A queued email. `context` holds what the template needs; tokens in it stay
    sealed and are unsealed only when the mail is rendered for sending."""

    __tablename__ = "email_messages"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(35))
    to_address: Mapped[str] = mapped_column(String(320))
    org_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_email_messages_due", "next_attempt_at", postgresql_where=text("state = 'pending'")
        ),
        Index(
            "ix_email_messages_finished",
            "finished_at",
            postgresql_where=text("state <> 'pending'"),
        ),
    )


class SmsNumber(Base):
    """A phone number assigned to an org: SMS to it are the org's."""

    __tablename__ = "sms_numbers"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SmsKeywordRule(Base):
    """A business keyword: a first word or a regex that routes an SMS to an org."""

    __tablename__ = "sms_keyword_rules"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(String(16))
    pattern: Mapped[str] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SmsMessage(Base):
    """An inbound SMS, once per provider message id; routed asynchronously."""

    __tablename__ = "sms_messages"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_message_id: Mapped[str] = mapped_column(String(128))
    from_number: Mapped[str] = mapped_column(String(32))
    to_number: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    routed: Mapped[bool] = mapped_column(Boolean, default=False)
    org_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    routed_by: Mapped[str | None] = mapped_column(String(32))
    rule_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    routed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("provider", "provider_message_id", name="uq_sms_provider_message"),
        Index("ix_sms_messages_unrouted", "received_at", postgresql_where=text("NOT routed")),
        Index("ix_sms_messages_routed", "received_at", postgresql_where=text("routed")),
        Index("ix_sms_messages_org", "org_id", "received_at"),
        Index("ix_sms_messages_sender", "from_number", "received_at"),
    )


class SmsPrice(Base):
    """The operator's price of one SMS segment to destinations starting with `prefix`
    (E.164, e.g. `+41`, `+4179`; `+` alone is the fallback); the longest prefix wins."""

    __tablename__ = "sms_prices"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    price_per_segment: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SmsProvider(Base):
    """An SMS provider account: its kind (`twilio`, `http`), non-secret configuration,
    sealed credentials (never returned), throughput limit and preference."""

    __tablename__ = "sms_providers"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    credentials_sealed: Mapped[str] = mapped_column(Text)
    rate_per_second: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    balance_low: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SmsOutbound(Base):
    """An outbound SMS: what the customer sent, what it cost, where it is.

    `status` is the customer-visible state (queued, sent, delivered, undelivered,
    failed); `send_state` is the send queue's (pending, in_flight, done), claimed with
    `FOR UPDATE SKIP LOCKED` and leased like the other queues."""

    __tablename__ = "sms_outbound"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    from_number: Mapped[str] = mapped_column(String(32))
    to_number: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    encoding: Mapped[str] = mapped_column(String(8))
    segments: Mapped[int] = mapped_column(Integer)
    destination_prefix: Mapped[str] = mapped_column(String(16))
    price_per_segment: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    charge_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    client_reference: Mapped[str | None] = mapped_column(String(128))
    status_callback: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    send_state: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    provider: Mapped[str | None] = mapped_column(String(64))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(String(255))
    refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(
            "ix_sms_outbound_due",
            "next_attempt_at",
            postgresql_where=text("send_state <> 'done'"),
        ),
        Index("ix_sms_outbound_org", "org_id", "queued_at"),
        Index("ix_sms_outbound_queued", "queued_at", "id"),
        UniqueConstraint("provider_id", "provider_message_id", name="uq_sms_outbound_provider"),
        Index(
            "uq_sms_outbound_idempotency",
            "org_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )


class SmsOrgCharges(Base):
    """Each org's running total of SMS charges less refunds, over its life: compared
    with the total in billing's `BalanceState`, it tells which charges that balance
    does not include yet. Its row lock serialises the org's credit checks."""

    __tablename__ = "sms_org_charges"

    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    charged: Mapped[int] = mapped_column(BigInteger)


class SmsSenderId(Base):
    """An alphanumeric sender id (`ACME`, 1-11 characters) the operator approved for an
    org: its messages may show it as the sender; nobody can reply to it."""

    __tablename__ = "sms_sender_ids"

    sender_id: Mapped[str] = mapped_column(String(11), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SmsStatusHistory(Base):
    """Each status an outbound SMS reached, with when and the provider's error code."""

    __tablename__ = "sms_status_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sms_outbound.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SmsConversation(Base):
    """An org wrote to `remote_number`: replies from it route to the org until
    `expires_at` (each new outbound message extends it)."""

    __tablename__ = "sms_conversations"

    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    remote_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    local_number: Mapped[str] = mapped_column(String(32))
    last_sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_sms_conversations_remote", "remote_number", "last_sent_at"),)


outbox = outbox_table(Base.metadata)
