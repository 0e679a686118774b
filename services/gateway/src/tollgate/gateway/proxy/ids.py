"""Request ids: RFC 9562 UUIDv7 strings, minted without a syscall per id.

`tollgate.contracts.ids.uuid7` takes a lock and draws from the OS random source
(a `getrandom` syscall) for every id; the request path mints one per request, so it
has its own cheaper minter: 48 bits of Unix milliseconds, then 74 bits made of a
per-process 32-bit random seed and a 42-bit counter. The counter starts at a random
value (from the same `os.urandom` seed) and is incremented for every id, never
reset, so ids of one process never repeat; a forked worker draws a new seed. Two
processes collide only if they mint in the same millisecond with the same 32-bit
seed and the same counter value. Ids are still version 7, variant RFC, and sort by
millisecond. No I/O after the seed.
"""

from __future__ import annotations

import os
import time

_MASK_42 = (1 << 42) - 1


class _Minter:
    __slots__ = ("counter", "seed")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        raw = int.from_bytes(os.urandom(10), "big")
        self.seed = raw & 0xFFFF_FFFF
        self.counter = (raw >> 32) & ((1 << 41) - 1)


_minter = _Minter()
os.register_at_fork(after_in_child=_minter.reseed)


def request_id() -> str:
    """A new UUIDv7 in its canonical text form."""
    m = _minter
    counter = m.counter = (m.counter + 1) & _MASK_42
    value = (
        (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (counter >> 30) << 64
        | 0b10 << 62
        | (counter & 0x3FFF_FFFF) << 32
        | m.seed
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
