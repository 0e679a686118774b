"""Events the notifier publishes on `tollgate.notifier.sms.v1` (key `org_id`).

Outbound SMS (sent by customers through the gateway) are priced (`SmsCharged`, which
billing debits, and `SmsRefunded` when one fails for good) and report each status
they reach (`SmsStatusChanged`). Inbound SMS arrive at the notifier's provider
webhook, are verified, deduplicated on the provider's message id and routed to an
org (by assigned number, then conversation history, then business keyword) or to the
admin inbox; each routed message is published once so other systems can react to it.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from pydantic import Field

from tollgate.contracts.envelope import CREDITS_MAX, SMS_SEGMENTS_MAX, EventData, UtcDatetime


class SmsRoute(StrEnum):
    """Which routing rule assigned an inbound SMS."""

    ASSIGNED_NUMBER = "assigned_number"
    CONVERSATION = "conversation"
    KEYWORD = "keyword"
    ADMIN_INBOX = "admin_inbox"


class SmsReceived(EventData):
    """An inbound SMS was received and routed.

    Sent by the notifier once per provider message (deduplicated on
    `provider_message_id`). Kafka key: `org_id`; null for the admin inbox.
    """

    event_type = "tollgate.notifier.sms.received.v1"
    key_field = "org_id"

    message_id: UUID = Field(description="Tollgate's id for the message.")
    provider: str = Field(description="SMS provider that delivered it, e.g. `twilio`.")
    provider_message_id: str = Field(description="The provider's message id.")
    org_id: UUID | None = Field(None, description="Org it was routed to; null = admin inbox.")
    from_number: str = Field(description="Sender's number (E.164).")
    to_number: str = Field(description="Number it was sent to (E.164).")
    body: str = Field(description="Message text.")
    routed_by: SmsRoute = Field(description="Routing rule that assigned the message.")
    received_at: UtcDatetime = Field(description="When the provider delivered it to Tollgate.")


class SmsStatus(StrEnum):
    """Where an outbound SMS is: queued → sent → delivered / undelivered, or failed."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class SmsStatusChanged(EventData):
    """An outbound SMS changed status (accepted, handed to the provider, delivery report).

    Sent by the notifier once per status an SMS reaches, and delivered to the org's
    webhook endpoints subscribed to it. Kafka key: `org_id`.
    """

    event_type = "tollgate.notifier.sms.status.v1"
    key_field = "org_id"

    message_id: UUID = Field(description="Tollgate's id for the outbound message.")
    org_id: UUID = Field(description="Org that sent the message.")
    key_id: UUID | None = Field(None, description="API key the message was sent with.")
    client_reference: str | None = Field(
        None, description="The reference the client gave when sending, if any."
    )
    from_number: str = Field(description="Sender: an E.164 number or an alphanumeric id.")
    to_number: str = Field(description="Recipient (E.164).")
    segments: int = Field(ge=1, description="Billed SMS segments.")
    status: SmsStatus = Field(description="The status reached.")
    provider: str | None = Field(None, description="Provider name, once one took it.")
    provider_message_id: str | None = Field(None, description="The provider's message id.")
    error_code: str | None = Field(None, description="Provider error code of a failure.")
    error_message: str | None = Field(None, description="Short failure description.")
    changed_at: UtcDatetime = Field(description="When the status was reached.")


class SmsCharged(EventData):
    """An outbound SMS was priced and must be debited from the org's credits.

    Sent by the notifier (outbox) in the transaction that accepted the message;
    billing debits it once per `charge_id`. Kafka key: `org_id`.
    """

    event_type = "tollgate.notifier.sms.charged.v1"
    key_field = "org_id"

    charge_id: UUID = Field(description="Idempotency id of the debit.")
    message_id: UUID = Field(description="The outbound message charged.")
    org_id: UUID = Field(description="Org debited.")
    key_id: UUID | None = Field(None, description="API key the message was sent with.")
    destination_prefix: str = Field(description="Price table prefix that matched the recipient.")
    segments: int = Field(ge=1, le=SMS_SEGMENTS_MAX, description="SMS segments.")
    price_per_segment: int = Field(ge=0, le=CREDITS_MAX, description="Credits per segment.")
    amount: int = Field(
        ge=0,
        le=SMS_SEGMENTS_MAX * CREDITS_MAX,
        description="Credits to debit: segments * price_per_segment.",
    )
    charged_at: UtcDatetime = Field(description="When the message was accepted.")


class SmsRefunded(EventData):
    """A charged SMS failed permanently; its credits go back to the org.

    Sent by the notifier (outbox) at most once per message; billing credits it once
    per `refund_id`. Kafka key: `org_id`.
    """

    event_type = "tollgate.notifier.sms.refunded.v1"
    key_field = "org_id"

    refund_id: UUID = Field(description="Idempotency id of the refund.")
    charge_id: UUID = Field(description="The charge being refunded.")
    message_id: UUID = Field(description="The outbound message.")
    org_id: UUID = Field(description="Org credited.")
    amount: int = Field(ge=0, le=SMS_SEGMENTS_MAX * CREDITS_MAX, description="Credits given back.")
    reason: str = Field(description="Why, e.g. the provider's error code.")
    refunded_at: UtcDatetime = Field(description="When the message was failed.")
