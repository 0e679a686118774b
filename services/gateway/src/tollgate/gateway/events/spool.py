"""A bounded on-disk spool of encoded request events, drained in order.

Used only while Kafka cannot take events. Events are appended to segment files
`<first sequence>.seg` (or `.doubt.seg` for a batch that may already have reached
the broker, see `publisher`), one `key<TAB>value<TAB>traceparent` line per event:
the Kafka key, the record value (compact JSON, never a newline or a tab) and its
`traceparent` header. Lines of spools written before the traceparent was kept
(`key<TAB>value`) still read, without one. Segment names sort in the order the
events were accepted, so draining oldest-first preserves it. The directory is
locked (`flock`) so two replicas never share a spool; a `kill -9` loses nothing
written here (the page cache survives the process). The spool refuses writes past
`max_bytes` and the caller counts those events as dropped.

A spool no process holds (a worker of an older generation, a slot no longer used, a
gateway that ran without workers) is taken over by a running one: `adopt` moves its
segments in, a doubtful one as `.foreign.doubt.seg` (checked without this process's
acknowledged offsets, which say nothing of another process's batches).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

SEGMENT_BYTES = 4 * 1024 * 1024
DOUBTFUL = ".doubt.seg"
FOREIGN_DOUBTFUL = ".foreign.doubt.seg"
Record = tuple[bytes | None, bytes, bytes | None]
"""One request event as produced: Kafka key, value, `traceparent` header."""


class SpoolLocked(RuntimeError):
    """Another gateway process holds this spool directory."""


class Spool:
    """Append-only segments on disk; `segments()` lists them oldest first."""

    def __init__(self, directory: Path, max_bytes: int, *, wait_s: float = 0.0) -> None:
        """Lock `directory`, waiting up to `wait_s` for a process that holds it (one
        taking the spool over holds it for a moment)."""
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(directory / ".lock", "a+")  # noqa: SIM115 - held for the lifetime
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self._lock.close()
                raise SpoolLocked(f"spool {directory} is used by another gateway") from exc
        self._open: IO[bytes] | None = None
        self._open_path: Path | None = None
        self._open_size = 0
        self.size = sum(p.stat().st_size for p in self.segments())

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.seg"))

    @property
    def empty(self) -> bool:
        return self.size == 0 and not self.segments()

    def append(self, first_seq: int, records: Iterable[Record]) -> int:
        """Append to the open segment; returns how many records did not fit."""
        refused = 0
        for record in records:
            line = line_of(record)
            if self.size + len(line) > self.max_bytes:
                refused += 1
                continue
            if self._open is None or self._open_size >= SEGMENT_BYTES:
                self._roll(first_seq)
            assert self._open is not None
            self._open.write(line)
            self._open_size += len(line)
            self.size += len(line)
        if self._open is not None:
            self._open.flush()
        return refused

    def write_doubtful(self, first_seq: int, records: list[Record]) -> tuple[Path | None, int]:
        """A whole segment for a batch the broker may or may not have stored; returns
        its path and how many records did not fit."""
        self.close_segment()
        fitting: list[bytes] = []
        refused = 0
        for record in records:
            line = line_of(record)
            if self.size + len(line) > self.max_bytes:
                refused += 1
                continue
            fitting.append(line)
            self.size += len(line)
        if not fitting:
            return None, refused
        path = self.directory / f"{first_seq:020d}{DOUBTFUL}"
        with open(path, "wb") as handle:
            handle.write(b"".join(fitting))
        return path, refused

    def _roll(self, first_seq: int) -> None:
        self.close_segment()
        self._open_path = self.directory / f"{first_seq:020d}.seg"
        self._open = open(self._open_path, "ab")  # noqa: SIM115 - closed in close_segment
        self._open_size = self._open_path.stat().st_size

    def close_segment(self) -> None:
        """Close the segment being appended to, so it can be drained."""
        if self._open is not None:
            self._open.close()
            self._open = None
            self._open_path = None
            self._open_size = 0

    @staticmethod
    def read(path: Path) -> list[Record]:
        records: list[Record] = []
        with open(path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # torn tail of a crash mid-write: never acknowledged to anyone
                key, _, rest = line[:-1].partition(b"\t")
                value, _, traceparent = rest.partition(b"\t")
                records.append((key or None, value, traceparent or None))
        return records

    def mark_doubtful(self, path: Path) -> None:
        """A segment whose send failed half-way: check the topic before resending it."""
        path.rename(path.with_name(path.name.partition(".")[0] + DOUBTFUL))

    def adopt(self, paths: list[Path]) -> int:
        """Move another spool's segments (its lock held) into this one, keeping their
        order; returns how many moved."""
        self.close_segment()
        for path in paths:
            seq = int(path.name.partition(".")[0])
            suffix = FOREIGN_DOUBTFUL if path.name.endswith(DOUBTFUL) else ".seg"
            while (target := self.directory / f"{seq:020d}{suffix}").exists():
                seq += 1
            size = path.stat().st_size
            path.rename(target)
            self.size += size
        return len(paths)

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.size -= path.stat().st_size
            os.unlink(path)
        self.size = max(self.size, 0)

    def close(self) -> None:
        self.close_segment()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


def line_of(record: Record) -> bytes:
    key, value, traceparent = record
    if traceparent:
        return (key or b"") + b"\t" + value + b"\t" + traceparent + b"\n"
    return (key or b"") + b"\t" + value + b"\n"
