"""Request and response bodies of the outbound SMS API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from tollgate.contracts.envelope import CREDITS_MAX
from tollgate.kit.requests import (
    JSON_INTEGER,
    NUL_FREE,
    RequestModel,
    StrictCredits,
    StrictFlag,
)
from tollgate.notifier.models import (
    SmsOutbound,
    SmsPrice,
    SmsProvider,
    SmsSenderId,
    SmsStatusHistory,
)
from tollgate.notifier.outbound.service import SENDER_ID_PATTERN


class SendIn(RequestModel):
    """A message to send: `from` is a number assigned to the caller's org."""

    to: str = Field(min_length=1, max_length=32, description="Recipient, E.164.")
    from_: str = Field(
        alias="from",
        min_length=1,
        max_length=32,
        description="Sender: your org's number (E.164), or an alphanumeric sender id the "
        "operator approved for your org (replies to it are impossible).",
    )
    text: str = Field(min_length=1, max_length=1600, description="Message text.")
    client_reference: str | None = Field(
        None, max_length=128, pattern=NUL_FREE, description="Your own id, echoed in reports."
    )
    status_callback: StrictFlag = Field(
        True,
        description="Send each status change to your webhook endpoints subscribed to "
        "`tollgate.notifier.sms.status.v1`.",
    )


class StatusOut(BaseModel):
    """One step of a message's status timeline."""

    status: str
    error_code: str | None
    at: datetime

    @classmethod
    def of(cls, h: SmsStatusHistory) -> StatusOut:
        return cls(status=h.status, error_code=h.error_code, at=h.at)


class MessageOut(BaseModel):
    """An outbound SMS as its sender sees it."""

    id: uuid.UUID
    org_id: uuid.UUID
    key_id: uuid.UUID | None
    to: str
    from_: str = Field(serialization_alias="from")
    text: str
    encoding: Literal["gsm7", "ucs2"]
    segments: int
    price_per_segment: int
    price: int = Field(description="Credits charged: segments * price_per_segment.")
    refunded: bool
    client_reference: str | None
    status: str
    provider_message_id: str | None
    error_code: str | None
    error_message: str | None
    queued_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    timeline: list[StatusOut] | None = None

    @classmethod
    def of(cls, m: SmsOutbound, timeline: list[SmsStatusHistory] | None = None) -> MessageOut:
        return cls(
            id=m.id,
            org_id=m.org_id,
            key_id=m.key_id,
            to=m.to_number,
            from_=m.from_number,
            text=m.body,
            encoding=m.encoding,
            segments=m.segments,
            price_per_segment=m.price_per_segment,
            price=m.amount,
            refunded=m.refunded,
            client_reference=m.client_reference,
            status=m.status,
            provider_message_id=m.provider_message_id,
            error_code=m.error_code,
            error_message=m.error_message,
            queued_at=m.queued_at,
            sent_at=m.sent_at,
            delivered_at=m.delivered_at,
            failed_at=m.failed_at,
            timeline=[StatusOut.of(h) for h in timeline] if timeline is not None else None,
        )


class PriceIn(RequestModel):
    """The price of one segment to numbers starting with `prefix`."""

    prefix: str = Field(
        min_length=1,
        max_length=16,
        pattern=r"^\+[0-9]{0,15}$",
        description="`+` and up to 15 digits.",
    )
    price_per_segment: StrictCredits = Field(
        ge=0, le=CREDITS_MAX, description="Credits per segment."
    )


class PriceOut(BaseModel):
    prefix: str
    price_per_segment: int
    updated_at: datetime

    @classmethod
    def of(cls, p: SmsPrice) -> PriceOut:
        return cls(prefix=p.prefix, price_per_segment=p.price_per_segment, updated_at=p.updated_at)


class SenderIdIn(RequestModel):
    """Approve an alphanumeric sender id for an org."""

    sender_id: str = Field(
        min_length=1,
        max_length=11,
        pattern=SENDER_ID_PATTERN,
        description="1-11 letters, digits, spaces, `.`, `&`, `-`; at least one letter.",
    )
    org_id: uuid.UUID


class SenderIdOut(BaseModel):
    """An approved sender id."""

    sender_id: str
    org_id: uuid.UUID
    created_at: datetime

    @classmethod
    def of(cls, s: SmsSenderId) -> SenderIdOut:
        return cls(sender_id=s.sender_id, org_id=s.org_id, created_at=s.created_at)


Text = Annotated[str, Field(max_length=255)]
OurField = Literal["to", "from", "text", "reference", "message_id", "callback_url"]


class StatusMapping(RequestModel):
    """One provider status and the Tollgate status it means."""

    theirs: str = Field(min_length=1, max_length=64)
    ours: Literal["queued", "sent", "delivered", "undelivered", "failed"]


class ConstantField(RequestModel):
    """A field every send carries as is (e.g. an account or route id)."""

    name: str = Field(min_length=1, max_length=64)
    value: str = Field(max_length=255)


class ProviderConfig(RequestModel):
    """Non-secret configuration. Twilio: `account_sid`, optional `base_url`. http: the
    `url_template` (`{to}`, `{from}`, `{message_id}` placeholders), `method`,
    `auth_header`, `fields` (ours → their JSON key, dotted keys nest), `extra`
    constant fields, `response_id_field`, the callback's `callback_id_field`,
    `callback_status_field`, `callback_error_field` and `status_map`. Either:
    `balance_alert_below` (a decimal), and for http `balance_url`, `balance_field`,
    `balance_currency`."""

    base_url: Annotated[str, Field(max_length=255, pattern=r"^https?://")] | None = None
    account_sid: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    url_template: Annotated[str, Field(max_length=1000, pattern=r"^https?://")] | None = None
    method: Literal["POST", "PUT"] = "POST"
    auth_header: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9-]+$")] | None = None
    fields: dict[OurField, Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=dict
    )
    extra: list[ConstantField] = Field(default_factory=list, max_length=20)
    response_id_field: Text | None = None
    callback_id_field: Text | None = None
    callback_status_field: Text | None = None
    callback_error_field: Text | None = None
    status_map: list[StatusMapping] = Field(default_factory=list, max_length=100)
    balance_url: Annotated[str, Field(max_length=1000, pattern=r"^https?://")] | None = None
    balance_field: Text | None = None
    balance_currency: Annotated[str, Field(max_length=8)] | None = None
    balance_alert_below: (
        Annotated[str, Field(max_length=32, pattern=r"^-?[0-9]+(\.[0-9]+)?$")] | None
    ) = None


class ProviderCredentials(RequestModel):
    """Secrets, sealed at once and never shown: Twilio `auth_token`; http `auth_value`
    (the auth header's value) and `callback_secret` (signs delivery reports)."""

    auth_token: Annotated[str, Field(max_length=512)] | None = None
    auth_value: Annotated[str, Field(max_length=2048)] | None = None
    callback_secret: Annotated[str, Field(max_length=512)] | None = None


class ProviderIn(RequestModel):
    """A provider account."""

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["twilio", "http"]
    config: ProviderConfig = Field(default_factory=ProviderConfig)
    credentials: ProviderCredentials = Field(default_factory=ProviderCredentials)
    rate_per_second: StrictCredits = Field(10, ge=1, le=10_000)
    priority: StrictCredits = Field(100, ge=0, le=10_000)
    enabled: StrictFlag = True


class ProviderPatch(RequestModel):
    """Change a provider: only the fields sent change (its kind cannot). `config`, when
    sent, replaces the whole configuration; `credentials` replace only the secrets
    sent (an empty object keeps them all). Checked as a new provider is."""

    # None only marks a field as omitted; the document does not offer null (the handler
    # refuses it with a 422).
    name: Annotated[str, Field(min_length=1, max_length=64)] | SkipJsonSchema[None] = None
    config: ProviderConfig | SkipJsonSchema[None] = None
    credentials: ProviderCredentials | SkipJsonSchema[None] = None
    rate_per_second: Annotated[int, Field(ge=1, le=10_000), JSON_INTEGER] | SkipJsonSchema[None] = (
        None
    )
    priority: Annotated[int, Field(ge=0, le=10_000), JSON_INTEGER] | SkipJsonSchema[None] = None
    enabled: StrictFlag | SkipJsonSchema[None] = None


class ProviderOut(BaseModel):
    """A provider as shown: never its credentials."""

    id: uuid.UUID
    name: str
    kind: str
    config: dict[str, Any]
    rate_per_second: int
    priority: int
    enabled: bool
    created_at: datetime
    balance_low: bool = Field(
        description="The balance watch last saw the balance below `config.balance_alert_below`."
    )
    credentials_set: bool = True

    @classmethod
    def of(cls, p: SmsProvider) -> ProviderOut:
        return cls(
            id=p.id,
            name=p.name,
            kind=p.kind,
            config=p.config,
            rate_per_second=p.rate_per_second,
            priority=p.priority,
            enabled=p.enabled,
            created_at=p.created_at,
            balance_low=bool(p.balance_low),
        )


class TestSendIn(RequestModel):
    """An operator's test message through one provider (not billed, not logged)."""

    to: str = Field(
        min_length=1,
        max_length=16,
        pattern=r"^\+[1-9][0-9]{6,14}$",
        description="Recipient, E.164.",
    )
    from_: str = Field(
        alias="from",
        min_length=1,
        max_length=32,
        description="Sender: an E.164 number or an alphanumeric sender id (any: the "
        "operator tests what the provider allows).",
    )
    text: str = Field(min_length=1, max_length=1600)


class TestSendOut(BaseModel):
    """What the provider answered to a test message."""

    accepted: bool
    provider_message_id: str | None
    error_code: str | None
    error_message: str | None


class BalanceOut(BaseModel):
    """A provider's balance, as it reports it, and whether it is below the alert level."""

    provider_id: uuid.UUID
    balance: str | None
    currency: str | None
    low: bool | None


class UsageOut(BaseModel):
    """One org's outbound SMS in a period."""

    org_id: uuid.UUID
    messages: int
    segments: int
    credits_charged: int
    credits_refunded: int
