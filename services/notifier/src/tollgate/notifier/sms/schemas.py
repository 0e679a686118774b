"""Request and response bodies of the SMS API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tollgate.notifier.models import SmsKeywordRule, SmsMessage, SmsNumber


class GenericInbound(BaseModel):
    """Body of the generic HMAC-signed provider webhook."""

    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(min_length=1, max_length=128)
    from_: str = Field(alias="from", min_length=1, max_length=32)
    to: str = Field(min_length=1, max_length=32)
    body: str = Field(max_length=1600)


class InboundAccepted(BaseModel):
    """Answer to the generic provider: stored (or seen before)."""

    message_id: uuid.UUID
    duplicate: bool


class SmsOut(BaseModel):
    """A routed inbound SMS."""

    id: uuid.UUID
    provider: str
    provider_message_id: str
    from_number: str
    to_number: str
    body: str
    org_id: uuid.UUID | None
    routed_by: str | None
    rule_id: uuid.UUID | None
    received_at: datetime
    read: bool

    @classmethod
    def of(cls, m: SmsMessage) -> SmsOut:
        return cls(
            id=m.id,
            provider=m.provider,
            provider_message_id=m.provider_message_id,
            from_number=m.from_number,
            to_number=m.to_number,
            body=m.body,
            org_id=m.org_id,
            routed_by=m.routed_by,
            rule_id=m.rule_id,
            received_at=m.received_at,
            read=m.read_at is not None,
        )


class ReadChange(BaseModel):
    """Mark a message read or unread."""

    model_config = ConfigDict(extra="forbid")

    read: bool = True


class NumberIn(BaseModel):
    """Assign a number to an org."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(description="E.164, e.g. +14155550100.")
    org_id: uuid.UUID


class NumberOut(BaseModel):
    """An assigned number."""

    number: str
    org_id: uuid.UUID
    created_at: datetime

    @classmethod
    def of(cls, n: SmsNumber) -> NumberOut:
        return cls(number=n.number, org_id=n.org_id, created_at=n.created_at)


class RuleIn(BaseModel):
    """A business keyword rule."""

    model_config = ConfigDict(extra="forbid")

    org_id: uuid.UUID
    kind: Literal["first_word", "regex"]
    pattern: str = Field(min_length=1, max_length=255)
    priority: int = Field(100, ge=0, le=10_000, description="Lower is evaluated first.")


class RuleOut(BaseModel):
    """A stored keyword rule."""

    id: uuid.UUID
    org_id: uuid.UUID
    kind: str
    pattern: str
    priority: int
    created_at: datetime

    @classmethod
    def of(cls, r: SmsKeywordRule) -> RuleOut:
        return cls(
            id=r.id,
            org_id=r.org_id,
            kind=r.kind,
            pattern=r.pattern,
            priority=r.priority,
            created_at=r.created_at,
        )
