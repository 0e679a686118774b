"""The CloudEvents 1.0 envelope (structured JSON mode) around every Tollgate event.

Every Kafka message value on a Tollgate topic is one JSON object with the CloudEvents
attributes (`specversion`, `id`, `source`, `type`, `time`, `subject`,
`datacontenttype`) and the event payload under `data`; the message is sent with
`content-type: application/cloudevents+json`. W3C `traceparent` travels as a Kafka
header, never inside the event. Tombstones (null values on compacted topics) are not
events and never reach `decode`.

Producers build events with `new_event` and serialise them with `encode`; consumers
parse with `tollgate.contracts.decoding` (`decode`, `decode_as`), which needs the topic
registry and so lives apart from the envelope the event modules import. The envelope
class for each payload model is built once and cached (`envelope_model`).

Payload models derive from `EventData`: frozen, and tolerant of unknown fields so
that consumers keep working when a producer adds an optional field to a `.v1` type.
This module must stay free of I/O and of any dependency but pydantic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
)

from tollgate.contracts.ids import uuid7

CONTENT_TYPE = "application/cloudevents+json"
"""The Kafka `content-type` header value of every Tollgate event."""

_NO_OFFSET = timedelta(0)


def _as_utc(value: datetime) -> datetime:
    return value if value.utcoffset() == _NO_OFFSET else value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""A timezone-aware datetime, normalised to UTC; naive datetimes are rejected."""

CREDITS_MAX = 10**12
"""The most credits one price may be (a call, an overage call, an SMS segment), as
accounts, billing and the notifier accept prices: a consumer adding up millions of
charges stays far inside the 64-bit integers it stores, so no contract-valid event can
overflow a balance or a total and block its partition."""
SMS_SEGMENTS_MAX = 255
"""The most segments one SMS may have (a concatenated SMS numbers its parts in one byte)."""


class ContractModel(BaseModel):
    """Base of every model in the contract: immutable, and unknown fields are ignored so
    that additive `.v1` changes never break an older consumer."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class EventData(ContractModel):
    """Base of every event payload (the CloudEvents `data`).

    Subclasses set `event_type` (the CloudEvents `type`), `key_field` (the payload field
    whose value is the Kafka message key) and, when the envelope id must equal a payload
    id, `id_field`.
    """

    event_type: ClassVar[str]
    key_field: ClassVar[str]
    id_field: ClassVar[str | None] = None

    def kafka_key(self) -> str | None:
        """The Kafka message key for this event (None when the key field is null)."""
        value = getattr(self, self.key_field)
        return None if value is None else str(value)


D = TypeVar("D", bound=EventData)


class CloudEvent(BaseModel, Generic[D]):
    """A CloudEvents 1.0 envelope in structured JSON mode carrying one Tollgate event.

    Sent as the value of every Kafka message on every Tollgate topic; the Kafka key is
    given by the payload (`data.kafka_key()`) and documented on each topic.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = Field("1.0", description="CloudEvents spec version.")
    id: str = Field(
        min_length=1,
        description="Unique event id (a UUIDv7 string); consumers deduplicate on it.",
    )
    source: str = Field(
        min_length=1,
        description="Producing component, e.g. `tollgate/gateway/<instance>`.",
    )
    type: str = Field(
        min_length=1,
        description="Event type, `tollgate.<producer>.<noun>.<verb>.v<N>`; selects `data`.",
    )
    time: UtcDatetime = Field(description="When the occurrence happened (UTC, RFC 3339).")
    subject: str | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="Optional subject of the event within the source (e.g. a key id).",
    )
    datacontenttype: Literal["application/json"] = Field(
        "application/json", description="Media type of `data`; always JSON."
    )
    data: D = Field(description="The event payload; its schema is given by `type`.")


_envelopes: dict[type[EventData], type[CloudEvent[Any]]] = {}


def envelope_model(model: type[D]) -> type[CloudEvent[D]]:
    """The `CloudEvent[model]` class whose `type` is pinned to `model.event_type`.

    Built once per model and cached: decoding validates `type` and `data` in one pass,
    and the exported JSON Schema shows the event type as a constant.
    """
    cached = _envelopes.get(model)
    if cached is None:
        event_type = model.event_type
        base: Any = CloudEvent[model]  # type: ignore[valid-type]
        pinned_type: Any = Literal[event_type]
        cached = _envelopes[model] = create_model(
            f"{model.__name__}Event",
            __base__=base,
            __module__=model.__module__,
            __doc__=f"CloudEvents envelope carrying `{event_type}` ({model.__name__}).",
            type=(
                pinned_type,
                Field(description="Event type; always this value for this envelope."),
            ),
        )
    return cast("type[CloudEvent[D]]", cached)


def new_event(
    data: D,
    *,
    source: str,
    subject: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent[D]:
    """Wrap a payload in its envelope.

    `type` comes from the payload model; `id` defaults to the payload's id field when
    the model declares one (e.g. a request's `request_id`), else to a fresh UUIDv7;
    `time` defaults to now (UTC).
    """
    model = type(data)
    if model.id_field is not None:
        payload_id = str(getattr(data, model.id_field))
        if id is not None and id != payload_id:
            raise ValueError(f"{model.__name__} event id must equal data.{model.id_field}")
        id = payload_id
    return envelope_model(model)(
        id=id if id is not None else str(uuid7()),
        source=source,
        type=model.event_type,
        time=time if time is not None else datetime.now(UTC),
        subject=subject,
        data=data,
    )


def encode(event: CloudEvent[Any]) -> bytes:
    """The event as compact JSON bytes, ready to be a Kafka message value."""
    return event.__pydantic_serializer__.to_json(event)
