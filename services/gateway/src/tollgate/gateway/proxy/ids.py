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
    __slots__ = ("counter", "ms", "prefix", "seed", "tail")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        raw = int.from_bytes(os.urandom(10), "big")
        self.seed = raw & 0xFFFF_FFFF
        self.counter = (raw >> 32) & ((1 << 41) - 1)
        self.tail = f"{self.seed:08x}"
        self.ms = -1  # the millisecond `prefix` is for
        self.prefix = ""


_minter = _Minter()
os.register_at_fork(after_in_child=_minter.reseed)


def request_id() -> str:
    """A new UUIDv7 in its canonical text form: the millisecond's text is made once per
    millisecond, the seed's once per process, so an id costs one format of the counter."""
    m = _minter
    counter = m.counter = (m.counter + 1) & _MASK_42
    ms = time.time_ns() // 1_000_000
    if ms != m.ms:
        m.ms = ms
        h = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
        m.prefix = f"{h[:8]}-{h[8:]}-7"  # then the version nibble
    low = counter & 0x3FFF_FFFF
    # counter's top 12 bits; the variant (0b10) and the low 30 bits; the seed.
    return f"{m.prefix}{counter >> 30:03x}-{0x8000 | low >> 16:04x}-{low & 0xFFFF:04x}{m.tail}"
