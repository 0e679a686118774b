"""Request ids are RFC 9562 version 7 UUIDs: unique, ordered by millisecond, and
carrying the time they were minted."""

from __future__ import annotations

import time
import uuid

from tollgate.gateway.proxy import ids


def layout(ms: int, counter: int, seed: int) -> str:
    """The id for these parts, from the RFC's bit layout."""
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (counter >> 30) << 64
        | 0b10 << 62
        | (counter & 0x3FFF_FFFF) << 32
        | seed
    )
    return str(uuid.UUID(int=value))


def test_ids_are_version_7_unique_and_carry_their_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    minted = [ids.request_id() for _ in range(50_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(minted)) == len(minted)
    for text in minted[::997]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical form
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after
    assert [text[:13] for text in minted] == sorted(text[:13] for text in minted)


def test_an_id_is_its_parts_in_the_rfc_layout() -> None:
    minter = ids._minter
    for counter in (0, 1, 0x3FFF_FFFF, 0x4000_0000, (1 << 42) - 2, 0x2AB_CDEF_1234):
        minter.counter = counter
        seed = minter.seed
        before = time.time_ns() // 1_000_000
        text = ids.request_id()
        ms = uuid.UUID(text).int >> 80
        assert before <= ms
        assert text == layout(ms, (counter + 1) & ((1 << 42) - 1), seed)
