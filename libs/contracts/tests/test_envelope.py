from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from libs.contracts.tests.samples import NOW, ORG_ID, every_event, key_upserted, request_completed
from tollgate.contracts import (
    CONTENT_TYPE,
    EVENT_TYPES,
    ApiUpserted,
    CreditsLow,
    EventData,
    KeyUpserted,
    RequestCompleted,
    RequestRejected,
    UnknownEventType,
    decode,
    decode_as,
    encode,
    envelope_model,
    new_event,
    topic_for,
)
from tollgate.contracts.envelope import CREDITS_MAX, SMS_SEGMENTS_MAX
from tollgate.contracts.events.notifier import SmsCharged


def _event_json(event: EventData, **envelope: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(encode(new_event(event, source="tollgate/test")))
    document.update(envelope)
    return document


def test_samples_cover_every_event_type() -> None:
    assert {type(event).event_type for event in every_event()} == set(EVENT_TYPES)


@pytest.mark.parametrize("data", every_event(), ids=lambda data: type(data).event_type)
def test_every_event_round_trips_through_decode(data: EventData) -> None:
    event = new_event(data, source="tollgate/test/1", subject="subject-1")

    decoded = decode(encode(event))

    assert decoded == event
    assert type(decoded.data) is type(data)
    assert decoded.data == data
    assert decoded.type == type(data).event_type


@pytest.mark.parametrize("data", every_event(), ids=lambda data: type(data).event_type)
def test_every_event_round_trips_through_decode_as(data: EventData) -> None:
    event = new_event(data, source="tollgate/test/1")
    assert decode_as(encode(event), type(data)) == event


@pytest.mark.parametrize("data", every_event(), ids=lambda data: type(data).event_type)
def test_kafka_key_is_the_topic_key_field(data: EventData) -> None:
    value = getattr(data, data.key_field)
    assert data.kafka_key() == (None if value is None else str(value))
    assert data.key_field in topic_for(type(data)).key


def test_encoded_event_is_compact_cloudevents_json() -> None:
    data = request_completed()
    raw = encode(new_event(data, source="tollgate/gateway/gw-1", time=NOW))
    document = json.loads(raw)
    assert raw == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    assert document["specversion"] == "1.0"
    assert document["type"] == "tollgate.gateway.request.completed.v1"
    assert document["datacontenttype"] == "application/json"
    assert document["time"] == "2025-03-14T09:26:53.589000Z"
    assert document["data"]["cost"] == 3
    assert "subject" not in document  # absent rather than null when not set
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_request_events_use_the_request_id_as_event_id() -> None:
    data = request_completed()
    assert new_event(data, source="tollgate/gateway/gw-1").id == str(data.request_id)
    with pytest.raises(ValueError, match="request_id"):
        new_event(data, source="tollgate/gateway/gw-1", id="something-else")


def test_other_events_get_a_fresh_uuid7_id_and_current_time() -> None:
    before = datetime.now(UTC)
    event = new_event(key_upserted(), source="tollgate/accounts/1")
    other = new_event(key_upserted(), source="tollgate/accounts/1")
    assert event.id != other.id
    assert event.id < other.id  # UUIDv7 strings sort by creation
    assert before <= event.time <= datetime.now(UTC)


def test_decode_rejects_an_unknown_type() -> None:
    document = _event_json(request_completed(), type="tollgate.gateway.request.teleported.v1")
    with pytest.raises(UnknownEventType) as raised:
        decode(json.dumps(document))
    assert raised.value.event_type == "tollgate.gateway.request.teleported.v1"
    assert isinstance(raised.value, ValueError)


def test_decode_rejects_a_missing_required_field() -> None:
    document = _event_json(request_completed())
    del document["data"]["cost"]
    with pytest.raises(ValidationError, match="cost"):
        decode(json.dumps(document))


def test_decode_rejects_a_missing_type() -> None:
    document = _event_json(request_completed())
    del document["type"]
    with pytest.raises(ValidationError):
        decode(json.dumps(document))


def test_unknown_fields_are_tolerated_for_forward_compatibility() -> None:
    document = _event_json(request_completed(), partitionkey="ext-attribute")
    document["data"]["cache_status"] = "hit"  # a field a newer v1 producer might add
    decoded = decode(json.dumps(document).encode())
    assert isinstance(decoded.data, RequestCompleted)
    assert decoded.data.cost == 3


def test_api_routes_published_before_route_deprecation_still_decode() -> None:
    # Additive v1 change: an APIs-topic record written before routes carried
    # `deprecated`, `deprecated_at` and `sunset_at` replays as a route without them.
    sample = next(e for e in every_event() if isinstance(e, ApiUpserted))
    assert any(route.deprecated for route in sample.routes)
    document = _event_json(sample)
    for route in document["data"]["routes"]:
        for name in ("deprecated", "deprecated_at", "sunset_at"):
            route.pop(name, None)
    decoded = decode_as(json.dumps(document).encode(), ApiUpserted).data
    assert [(r.deprecated, r.deprecated_at, r.sunset_at) for r in decoded.routes] == [
        (False, None, None),
        (False, None, None),
    ]
    route_schema = ApiUpserted.model_json_schema()["$defs"]["RouteSpec"]
    assert not {"deprecated", "deprecated_at", "sunset_at"} & set(route_schema["required"])


def test_decode_as_rejects_another_type() -> None:
    raw = encode(new_event(request_completed(), source="tollgate/gateway/gw-1"))
    with pytest.raises(ValidationError, match=r"request\.rejected"):
        decode_as(raw, RequestRejected)


def test_naive_datetimes_are_rejected_and_offsets_normalised_to_utc() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        request_completed(time=datetime(2025, 3, 14, 9, 0))
    zurich = timezone(timedelta(hours=1))
    data = request_completed(time=datetime(2025, 3, 14, 10, 0, tzinfo=zurich))
    assert data.time == datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    assert data.time.utcoffset() == timedelta(0)


def test_models_are_frozen() -> None:
    data = CreditsLow(org_id=ORG_ID, balance=5, threshold=10, occurred_at=NOW)
    with pytest.raises(ValidationError, match="frozen"):
        data.balance = 7  # type: ignore[misc]


def test_path_with_query_string_is_refused() -> None:
    with pytest.raises(ValidationError, match="path"):
        request_completed(path="/pets?api_key=tg_live_secret")


def test_ip_allowlist_is_validated_and_canonicalised() -> None:
    assert key_upserted(ip_allowlist=["10.1.2.3/8", "2001:DB8::1"]).ip_allowlist == [
        "10.0.0.0/8",
        "2001:db8::1/128",
    ]
    with pytest.raises(ValidationError, match="ip_allowlist"):
        key_upserted(ip_allowlist=["not-a-network"])


def test_envelope_classes_are_built_once_per_type() -> None:
    # Sanity for the fast path (no timing): decoding reuses the cached envelope classes.
    assert envelope_model(KeyUpserted) is envelope_model(KeyUpserted)
    raws = [encode(new_event(key_upserted(version=n), source="s")) for n in range(200)]
    decoded = [decode(raw) for raw in raws] + [decode_as(raw, KeyUpserted) for raw in raws]
    assert {type(event) for event in decoded} == {envelope_model(KeyUpserted)}


def test_charges_past_what_consumers_can_add_up_are_refused() -> None:
    """One charge is at most CREDITS_MAX credits (an SMS: per segment, 255 segments), so
    no contract-valid event can overflow a 64-bit balance or total downstream."""
    request = request_completed().model_dump()
    assert RequestCompleted.model_validate({**request, "cost": CREDITS_MAX}).cost == CREDITS_MAX
    with pytest.raises(ValidationError):
        RequestCompleted.model_validate({**request, "cost": CREDITS_MAX + 1})
    charge = next(e for e in every_event() if isinstance(e, SmsCharged)).model_dump()
    for field, value in (
        ("price_per_segment", CREDITS_MAX + 1),
        ("segments", SMS_SEGMENTS_MAX + 1),
        ("amount", SMS_SEGMENTS_MAX * CREDITS_MAX + 1),
    ):
        with pytest.raises(ValidationError):
            SmsCharged.model_validate({**charge, field: value})
