"""Decoding Kafka message values into events: `decode` (any registered type, picked by
the CloudEvents `type`) and `decode_as` (one known type, the fast path).

Apart from `envelope` because `decode` dispatches on the topic registry
(`topics.EVENT_TYPES`), which imports every event module, which imports `envelope`.
Neither path creates classes or validators per message.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Union, cast

from pydantic import Field, TypeAdapter, ValidationError

from tollgate.contracts.envelope import CloudEvent, D, EventData, envelope_model
from tollgate.contracts.topics import EVENT_TYPES

__all__ = ["UnknownEventType", "decode", "decode_as"]


class UnknownEventType(ValueError):
    """`decode` met a CloudEvents `type` that no registered event model declares."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type: {event_type!r}")
        self.event_type = event_type


@functools.cache
def _any_event_adapter() -> TypeAdapter[Any]:
    """One validator for every registered envelope, dispatching on `type` in Rust."""
    members = tuple(envelope_model(model) for model in EVENT_TYPES.values())
    union: Any = Union[members]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


def decode(raw: bytes | str) -> CloudEvent[EventData]:
    """Parse and validate any registered event; `data` is an instance of its model.

    Raises `UnknownEventType` when no model declares the event's `type`, and pydantic's
    `ValidationError` when the envelope or the payload is invalid.
    """
    try:
        event = _any_event_adapter().validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if len(errors) == 1 and errors[0]["type"] == "union_tag_invalid":
            raise UnknownEventType(str(errors[0]["ctx"]["tag"])) from None
        raise
    return cast("CloudEvent[EventData]", event)


def decode_as(raw: bytes | str, model: type[D]) -> CloudEvent[D]:
    """Parse and validate an event known to be of `model`'s type (the fast path).

    Raises pydantic's `ValidationError` when the event's `type` is not
    `model.event_type` or when the envelope or payload is invalid.
    """
    return envelope_model(model).model_validate_json(raw)
