from __future__ import annotations

import re
from collections import Counter

import pytest
from pydantic import BaseModel

from tollgate.contracts import ALL_TOPICS, EVENT_TYPES, EventData, RequestCompleted, topic_for

_TYPE_NAME = re.compile(r"^tollgate\.(?P<producer>[a-z]+)\.[a-z_]+(\.[a-z_]+)?\.v[0-9]+$")


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """A model and every model nested in its fields (lists included)."""
    found = [model]
    for field in model.model_fields.values():
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found.extend(_models(candidate))
    return found


def _all_models() -> set[type[BaseModel]]:
    return {nested for model in EVENT_TYPES.values() for nested in _models(model)}


def test_every_event_type_is_on_exactly_one_topic() -> None:
    placements = Counter(model for topic in ALL_TOPICS for model in topic.event_types)
    assert set(placements) == set(EVENT_TYPES.values())
    assert all(count == 1 for count in placements.values())
    assert all(EVENT_TYPES[model.event_type] is model for model in placements)
    assert len(EVENT_TYPES) == len(placements)  # no two models share a type string


def test_every_event_subclass_is_registered() -> None:
    def concrete(cls: type[EventData]) -> set[type[EventData]]:
        found = {sub for sub in cls.__subclasses__() if "event_type" in vars(sub)}
        return found.union(*(concrete(sub) for sub in cls.__subclasses__()))

    assert concrete(EventData) == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_type_names_follow_the_convention(event_type: str) -> None:
    match = _TYPE_NAME.match(event_type)
    assert match, event_type
    topic = topic_for(EVENT_TYPES[event_type])
    assert topic.name.startswith(f"tollgate.{match['producer']}.")
    assert topic.name.endswith(".v1")


def test_topics_are_unique_and_sensibly_configured() -> None:
    assert len({topic.name for topic in ALL_TOPICS}) == len(ALL_TOPICS)
    for topic in ALL_TOPICS:
        assert topic.partitions >= 1
        assert (topic.retention_ms is None) == (topic.cleanup == "compact"), topic.name
        assert topic.description


def test_topic_for_finds_the_topic_or_raises() -> None:
    assert topic_for(RequestCompleted).name == "tollgate.gateway.requests.v1"

    class Unregistered(EventData):
        event_type = "tollgate.test.thing.happened.v1"
        key_field = "org_id"

    with pytest.raises(KeyError, match="Unregistered"):
        topic_for(Unregistered)


def _name(model: type[BaseModel]) -> str:
    return model.__name__


@pytest.mark.parametrize("model", sorted(_all_models(), key=_name), ids=_name)
def test_every_model_and_field_is_documented(model: type[BaseModel]) -> None:
    assert (model.__doc__ or "").strip()
    if issubclass(model, EventData):
        assert "Kafka key" in (model.__doc__ or "")
        assert model.key_field in model.model_fields
    undocumented = [name for name, field in model.model_fields.items() if not field.description]
    assert undocumented == []


_SECRET_WORDS = {"raw", "password", "secret", "secrets", "token", "apikey", "credential"}
_SAFE_SUFFIXES = ("_sealed", "_hash", "_hashes")
# Holds only RetiredSecret items, whose fields (key_hash, expires_at) are checked too.
_REVIEWED_NAMES = {"retired_secrets"}


def test_no_event_field_is_named_like_a_plaintext_secret() -> None:
    offenders = [
        f"{model.__name__}.{name}"
        for model in _all_models()
        for name in model.model_fields
        if _SECRET_WORDS & set(name.split("_"))
        and not name.endswith(_SAFE_SUFFIXES)
        and name not in _REVIEWED_NAMES
    ]
    assert offenders == []
