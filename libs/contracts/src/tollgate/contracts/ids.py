"""UUIDv7 identifiers (RFC 9562) for event ids and every other id the platform mints.

Python 3.11 has no `uuid.uuid7`, so this module builds one: a 48-bit Unix timestamp in
milliseconds, then a 42-bit counter spread over `rand_a` and the top of `rand_b`
(RFC 9562 §6.2 method 1), then 32 random bits. The counter starts at a random value
in the lower half of its range on every new millisecond and is incremented for each
id minted within the same millisecond, so ids from one process are strictly increasing
(and sort by creation time) even when thousands are minted per millisecond or the wall
clock steps backwards. A counter overflow borrows the next millisecond.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid

_COUNTER_BITS = 42
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62


def _unix_ms() -> int:
    return time.time_ns() // 1_000_000


class _Uuid7State:
    """The last timestamp and counter handed out; guarded by a lock for thread safety."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_ms = -1
        self.counter = 0


_state = _Uuid7State()


def uuid7() -> uuid.UUID:
    """A new RFC 9562 version 7 UUID, strictly greater than the previous one minted here."""
    with _state.lock:
        now_ms = _unix_ms()
        if now_ms > _state.last_ms:
            _state.last_ms = now_ms
            # Lower half only: leaves 2**41 increments of headroom within a millisecond.
            _state.counter = secrets.randbits(_COUNTER_BITS - 1)
        elif _state.counter < _COUNTER_MAX:
            _state.counter += 1
        else:
            _state.last_ms += 1
            _state.counter = secrets.randbits(_COUNTER_BITS - 1)
        ms, counter = _state.last_ms, _state.counter
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | _VERSION_7
        | (counter >> 30) << 64
        | _VARIANT_RFC
        | (counter & 0x3FFF_FFFF) << 32
        | secrets.randbits(32)
    )
    return uuid.UUID(int=value)
