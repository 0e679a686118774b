"""A write-ahead journal of request events, so `kill -9` loses no answered request.

The request path hands its event to the publisher before the answer is sent; the
publisher encodes it and copies it here into a shared memory map of the journal file
(no syscall, no fsync): from then on it is in the kernel's page cache and survives
the death of the process (not of the machine). Each file's blocks are allocated when
it is opened (`posix_fallocate`), so a full disk is an error at that point, never a
`SIGBUS` on the request path. Events settle (acknowledged by Kafka, or written to the
spool) in the order they were queued, so one watermark says which are safe: after
each settled batch a `S<sequence>` line is appended. Event lines are
`<sequence><TAB><key><TAB><value><TAB><traceparent>`. Files are `<first
sequence>.wal` in the spool directory, rotated once `ROTATE_BYTES` are written
(trimmed to what was written); a closed file is deleted once the watermark passes
its last event.

After a crash, `recover` returns the events past the last watermark: queued, in
flight, or acknowledged a moment before the crash. The publisher spools them as
*doubtful* (checked against the topic from the last persisted acknowledged offsets,
which precede all of them, before they are sent), so nothing is lost or doubled.
The unwritten rest of the crashed process's file is zeros, read like a torn tail.

Cost on the request path: one copy into the map per event (see the README).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

from tollgate.gateway.events.spool import Record, line_of

ROTATE_BYTES = 4 * 1024 * 1024


class Journal:
    """Append-only journal files with a settled watermark."""

    def __init__(self, directory: Path, first_seq: int) -> None:
        self.directory = directory
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._pos = 0  # bytes written to the open file
        self._closed: list[tuple[int, Path]] = []  # (last sequence, path) of rotated files
        self._open(first_seq)

    def _open(self, seq: int) -> None:
        self._path = self.directory / f"{seq:020d}.wal"
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._pos = 0
        # Twice the rotation size: the line that crosses `ROTATE_BYTES` always fits.
        self._map = self._mapped(2 * ROTATE_BYTES)

    def _mapped(self, size: int) -> mmap.mmap:
        os.posix_fallocate(self._fd, 0, size)
        return mmap.mmap(self._fd, size)

    def _put(self, data: bytes) -> None:
        assert self._map is not None
        end = self._pos + len(data)
        if end > len(self._map):  # one line larger than `ROTATE_BYTES`
            self._map.close()
            self._map = self._mapped(end)
        self._map[self._pos : end] = data
        self._pos = end

    def _close_file(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.ftruncate(self._fd, self._pos)
            os.close(self._fd)
            self._fd = -1

    def append(self, seq: int, record: Record) -> None:
        """Journal one event (before its answer is sent)."""
        self._put(b"%d\t" % seq + line_of(record))
        if self._pos >= ROTATE_BYTES:
            self._close_file()
            self._closed.append((seq, self._path))
            self._open(seq + 1)

    def settled(self, upto: int) -> None:
        """Every event up to sequence `upto` is acknowledged or spooled."""
        self._put(b"S%d\n" % upto)
        while self._closed and self._closed[0][0] <= upto:
            _last, path = self._closed.pop(0)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self, *, remove: bool) -> None:
        """Close (and with `remove`, delete every journal file: all is safe elsewhere)."""
        self._close_file()
        if remove:
            for path in self.directory.glob("*.wal"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    @staticmethod
    def recover(directory: Path) -> tuple[list[Path], list[Record]]:
        """The journal files a previous process left, and their unsettled events."""
        paths = sorted(directory.glob("*.wal"))
        watermark = -1
        events: list[tuple[int, Record]] = []
        for path in paths:
            with open(path, "rb") as handle:
                for line in handle:
                    if not line.endswith(b"\n"):
                        break  # torn tail: that answer was never sent
                    if line.startswith(b"S"):
                        watermark = max(watermark, int(line[1:]))
                        continue
                    seq, _, rest = line[:-1].partition(b"\t")
                    key, _, rest = rest.partition(b"\t")
                    value, _, traceparent = rest.partition(b"\t")
                    events.append((int(seq), (key or None, value, traceparent or None)))
        return paths, [record for seq, record in events if seq > watermark]
