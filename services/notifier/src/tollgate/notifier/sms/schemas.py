"""Request and response bodies of the SMS API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from tollgate.kit.requests import (
    JSON_INTEGER,
    NUL_FREE,
    RequestModel,
    StrictCredits,
    StrictFlag,
)
from tollgate.notifier.foreign_text import storable
from tollgate.notifier.models import SmsKeywordRule, SmsMessage, SmsNumber


class InboundPayload(BaseModel):
    """An inbound SMS as a provider reports it: the JSON body of the generic webhook,
    and Twilio's form fields mapped onto it. Providers add fields of their own, so
    unknown fields are ignored. A NUL (which PostgreSQL cannot store) in an identifier
    is a 422; in the text it stands for a character the provider could not decode
    (GSM 03.38 `@` is 0x00) and becomes U+FFFD, so the message is kept."""

    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(min_length=1, max_length=128, pattern=NUL_FREE)
    from_: str = Field(alias="from", min_length=1, max_length=32, pattern=NUL_FREE)
    to: str = Field(min_length=1, max_length=32, pattern=NUL_FREE)
    body: str = Field(max_length=1600)

    @field_validator("body")
    @classmethod
    def _replace_nul(cls, body: str) -> str:
        return storable(body)


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


class ReadChange(RequestModel):
    """Mark a message read or unread."""

    read: StrictFlag = True


class NumberIn(RequestModel):
    """Assign a number to an org."""

    number: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164, e.g. +14155550100.")
    org_id: uuid.UUID


class NumberOut(BaseModel):
    """An assigned number."""

    number: str
    org_id: uuid.UUID
    created_at: datetime

    @classmethod
    def of(cls, n: SmsNumber) -> NumberOut:
        return cls(number=n.number, org_id=n.org_id, created_at=n.created_at)


class RuleIn(RequestModel):
    """A business keyword rule."""

    org_id: uuid.UUID
    kind: Literal["first_word", "regex"]
    pattern: str = Field(min_length=1, max_length=255)
    priority: StrictCredits = Field(
        100, ge=0, le=10_000, description="Lower is evaluated first (a JSON integer)."
    )


class RulePatch(RequestModel):
    """Change a keyword rule: only the fields sent change. `priority` reorders it
    (lower is evaluated first; equal priorities in creation order); `kind` and
    `pattern` are checked together, as when the rule was created."""

    # None only marks a field as omitted; the document does not offer null (the handler
    # refuses it with a 422).
    org_id: uuid.UUID | SkipJsonSchema[None] = Field(
        None, description="Route the matches to this org."
    )
    kind: Literal["first_word", "regex"] | SkipJsonSchema[None] = None
    pattern: Annotated[str, Field(min_length=1, max_length=255)] | SkipJsonSchema[None] = None
    priority: Annotated[int, Field(ge=0, le=10_000), JSON_INTEGER] | SkipJsonSchema[None] = Field(
        None, description="Lower is evaluated first (a JSON integer)."
    )


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
