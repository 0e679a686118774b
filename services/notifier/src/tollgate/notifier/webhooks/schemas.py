"""Request and response bodies of the webhook API. Secrets appear only in
`EndpointCreated` and `SecretRotated`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from tollgate.kit.requests import DateTimeText, RequestModel, StrictFlag
from tollgate.notifier.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tollgate.notifier.webhooks.catalog import SUBSCRIBABLE

_EVENT_TYPE_ITEMS: JsonDict = {"items": {"enum": [*sorted(SUBSCRIBABLE)]}}


class EndpointCreate(RequestModel):
    """A new webhook endpoint."""

    url: str = Field(max_length=2048, description="Receiver URL (http or https).")
    description: str = Field("", max_length=500)
    event_types: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Event types to send; empty = all.",
        json_schema_extra=_EVENT_TYPE_ITEMS,
    )
    enabled: StrictFlag = True


class EndpointPatch(RequestModel):
    """A partial update of an endpoint; omitted fields stay as they are (null is not a
    value of any of them)."""

    # None only marks a field as omitted; the document does not offer null (the handler
    # refuses it with a 422).
    # The bounds sit on the str: on the union, pydantic applies them to a null too (500).
    url: Annotated[str, Field(max_length=2048)] | SkipJsonSchema[None] = None
    description: Annotated[str, Field(max_length=500)] | SkipJsonSchema[None] = None
    event_types: (
        Annotated[list[str], Field(max_length=50, json_schema_extra=_EVENT_TYPE_ITEMS)]
        | SkipJsonSchema[None]
    ) = None
    enabled: StrictFlag | SkipJsonSchema[None] = None


class EndpointOut(BaseModel):
    """An endpoint as listed (never its secret)."""

    id: uuid.UUID
    org_id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="While set and in the future, the previous secret also signs."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointOut:
        return cls(
            id=endpoint.id,
            org_id=endpoint.org_id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types),
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            failing_since=endpoint.failing_since,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class EndpointCreated(EndpointOut):
    """A created endpoint with its secret: shown this once."""

    secret: str = Field(description="`whsec_...` signing secret; not retrievable later.")


class SecretRotated(BaseModel):
    """The new secret of a rotated endpoint; the previous one signs for 24 h more."""

    secret: str
    previous_secret_expires_at: datetime


class EventTypeOut(BaseModel):
    """A subscribable event type with an example webhook body."""

    type: str
    description: str = Field(description="What the event means, in English.")
    descriptions: dict[str, str] = Field(
        description="The description in each language of the catalog, by language tag "
        "(`en`, `zh-Hans`)."
    )
    example: dict[str, Any]


class AttemptOut(BaseModel):
    """One attempt in the delivery log."""

    attempted_at: datetime
    succeeded: bool
    response_status: int | None
    duration_ms: int
    response_body: str = Field(description="First 2 KiB of the response body.")
    error: str | None

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptOut:
        return cls(
            attempted_at=attempt.attempted_at,
            succeeded=attempt.succeeded,
            response_status=attempt.response_status,
            duration_ms=attempt.duration_ms,
            response_body=attempt.response_body,
            error=attempt.error,
        )


class DeliveryOut(BaseModel):
    """A message to an endpoint and where it stands."""

    id: int
    message_id: str = Field(description="The `webhook-id` header value.")
    endpoint_id: uuid.UUID
    event_type: str
    state: str = Field(description="pending, succeeded or failed.")
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery, event_type: str) -> DeliveryOut:
        return cls(
            id=delivery.id,
            message_id=delivery.message_id,
            endpoint_id=delivery.endpoint_id,
            event_type=event_type,
            state=delivery.state,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if delivery.state == "pending" else None,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
        )


class DeliveryDetail(DeliveryOut):
    """A delivery with its attempt log."""

    attempt_log: list[AttemptOut]


class RecoverRequest(RequestModel):
    """Re-send every failed delivery created since a time."""

    since: DateTimeText


class RecoverResult(BaseModel):
    """How many deliveries went back in the queue."""

    requeued: int


class TestSent(BaseModel):
    """The queued test delivery."""

    delivery_id: int
    message_id: str
