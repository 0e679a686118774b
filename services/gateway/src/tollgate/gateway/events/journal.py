"""A write-ahead journal of request events, so `kill -9` loses no answered request.

The request path hands its event to the publisher before the answer is sent; the
publisher encodes it and copies it here into a shared memory map of the journal file
(no syscall, no fsync): from then on it is in the kernel's page cache and survives
the death of the process (not of the machine). Each file's blocks are allocated when
it is opened (`posix_fallocate`), so a full disk is an error at that point, never a
`SIGBUS` on the request path: a rotation that fails keeps the current file (it has
room for as much again) and is tried at the next event; an event the disk refuses
is an `OSError` for the publisher, which still queues it. Events settle (acknowledged
by Kafka, or written to the spool) in the order they were queued, so one watermark
says which are safe: after each settled batch a `S<sequence>` line is appended. Event lines are
`<sequence><TAB><key><TAB><value><TAB><traceparent>`. Files are `<first
sequence>.wal` in the spool directory, rotated once `ROTATE_BYTES` are written
(trimmed to what was written); a closed file is deleted once the watermark passes
its last event.

After a crash, `recover` returns the events past the last watermark: queued, in
flight, or acknowledged a moment before the crash. The publisher spools them as
*doubtful* (checked against the topic before they are sent, see `publisher`), so
nothing is lost or doubled. A process that holds no lock on its directory any more
(killed, its slot not restarted) has its journal recovered by a running one.
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
        self._map: mmap.mmap | None = None
        self._closed: list[tuple[int, Path]] = []  # (last sequence, path) of rotated files
        self._path, self._fd, self._map = self._open(first_seq)
        self._pos = 0  # bytes written to the open file

    def _open(self, seq: int) -> tuple[Path, int, mmap.mmap]:
        """A new journal file, its blocks allocated; a full disk raises `OSError` and
        leaves nothing behind."""
        path = self.directory / f"{seq:020d}.wal"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            # Twice the rotation size: the line that crosses `ROTATE_BYTES` always fits.
            return path, fd, _mapped(fd, 2 * ROTATE_BYTES)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise

    def _put(self, data: bytes) -> None:
        assert self._map is not None
        end = self._pos + len(data)
        if end > len(self._map):  # a line longer than the room left
            bigger = _mapped(self._fd, end)  # a full disk raises here, the old map kept
            self._map.close()
            self._map = bigger
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
        """Journal one event (before its answer is sent); `OSError` when the disk
        refuses it (the journal stays usable)."""
        self._put(b"%d\t" % seq + line_of(record))
        if self._pos >= ROTATE_BYTES:
            try:
                opened = self._open(seq + 1)
            except OSError:
                return  # the current file goes on (room for as much again); next time
            self._close_file()
            self._closed.append((seq, self._path))
            self._path, self._fd, self._map = opened
            self._pos = 0

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


def _mapped(fd: int, size: int) -> mmap.mmap:
    os.posix_fallocate(fd, 0, size)
    return mmap.mmap(fd, size)
