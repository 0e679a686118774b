"""Request and response bodies of the email API (never a mail's body or token)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from tollgate.kit.requests import RequestModel
from tollgate.notifier.models import EmailMessage, NotificationContact


class ContactIn(RequestModel):
    """A notification contact."""

    email: str = Field(
        max_length=254,
        pattern=r"^[^@\s\x00]+@[^@\s\x00]+$",
        json_schema_extra={"format": "email"},
        description="An address mail can be delivered to (special-use domains such as "
        "`.test` or `.invalid` are refused with a 422).",
    )
    locale: str = Field("en", min_length=2, max_length=35, description="BCP 47, e.g. `zh-CN`.")


class ContactsIn(RequestModel):
    """An org's complete contact list (replaces the current one)."""

    contacts: list[ContactIn] = Field(max_length=20)


class ContactOut(BaseModel):
    """A stored notification contact."""

    email: str
    locale: str

    @classmethod
    def of(cls, contact: NotificationContact) -> ContactOut:
        return cls(email=contact.email, locale=contact.locale)


class EmailOut(BaseModel):
    """A queued mail as admins see it."""

    id: uuid.UUID
    kind: str
    locale: str
    to: str
    org_id: uuid.UUID | None
    state: str = Field(description="pending, sent or failed.")
    attempts: int
    last_error: str | None
    provider_id: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, message: EmailMessage) -> EmailOut:
        return cls(
            id=message.id,
            kind=message.kind,
            locale=message.locale,
            to=message.to_address,
            org_id=message.org_id,
            state=message.state,
            attempts=message.attempts,
            last_error=message.last_error,
            provider_id=message.provider_id,
            created_at=message.created_at,
            finished_at=message.finished_at,
        )
