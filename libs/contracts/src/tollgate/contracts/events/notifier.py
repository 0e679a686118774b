"""Events the notifier publishes on `tollgate.notifier.sms.v1` (key `org_id`).

Inbound SMS arrive at the notifier's provider webhook, are verified, deduplicated on
the provider's message id and routed to an org (by assigned number, then conversation
history, then business keyword) or to the admin inbox; each routed message is
published once so other systems can react to it.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from pydantic import Field

from tollgate.contracts.envelope import EventData, UtcDatetime


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
