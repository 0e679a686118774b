from __future__ import annotations

import itertools
import time
import uuid

import pytest

from tollgate.contracts import ids, uuid7


def _unix_ms(value: uuid.UUID) -> int:
    return value.int >> 80


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_timestamp_is_now() -> None:
    now_ms = time.time_ns() // 1_000_000
    assert abs(_unix_ms(uuid7()) - now_ms) < 1_000


def test_uuid7_strictly_increases_within_one_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_ms = time.time_ns() // 1_000_000 + 10_000  # later than any id minted so far
    monkeypatch.setattr(ids, "_unix_ms", lambda: frozen_ms)
    values = [uuid7() for _ in range(10_000)]
    assert all(earlier < later for earlier, later in itertools.pairwise(values))
    assert {_unix_ms(value) for value in values} == {frozen_ms}
    assert len({str(value) for value in values}) == len(values)


def test_uuid7_keeps_increasing_when_the_clock_steps_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = uuid7()
    monkeypatch.setattr(ids, "_unix_ms", lambda: _unix_ms(before) - 5_000)
    after = uuid7()
    assert after > before


def test_uuid7_counter_overflow_borrows_the_next_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_ms = time.time_ns() // 1_000_000 + 20_000
    monkeypatch.setattr(ids, "_unix_ms", lambda: frozen_ms)
    first = uuid7()
    monkeypatch.setattr(ids._state, "counter", (1 << 42) - 1)
    second = uuid7()
    assert second > first
    assert _unix_ms(second) == frozen_ms + 1
