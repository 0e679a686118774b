"""The event journal: what a killed process leaves is exactly what was not settled."""

from __future__ import annotations

from pathlib import Path

from tollgate.gateway.events import journal as journal_module
from tollgate.gateway.events.journal import Journal


def record(n: int) -> tuple[bytes, bytes, bytes]:
    return (b"org", b'{"specversion":"1.0","id":"e%d"}' % n, b"00-tp")


def test_only_events_past_the_settled_watermark_are_recovered(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 1)
    for seq in range(1, 11):
        journal.append(seq, record(seq))
    journal.settled(6)
    journal.append(11, record(11))
    # kill -9 here: nothing closed, the page cache holds what was written
    paths, records = Journal.recover(tmp_path)
    assert [r[1] for r in records] == [record(n)[1] for n in (7, 8, 9, 10, 11)]
    assert records[0] == record(7)
    assert len(paths) == 1


def test_a_torn_tail_is_ignored_and_rotated_files_go_once_settled(
    tmp_path: Path, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 40)
    journal = Journal(tmp_path, 1)
    for seq in range(1, 6):
        journal.append(seq, record(seq))
    assert len(list(tmp_path.glob("*.wal"))) == 6  # each line fills a file, and the open one
    journal.settled(3)
    assert len(list(tmp_path.glob("*.wal"))) == 3  # files of 4, 5 and the open one
    with open(sorted(tmp_path.glob("*.wal"))[-1], "ab") as handle:
        handle.write(b"6\torg\t{torn")
    _paths, records = Journal.recover(tmp_path)
    assert [r[1] for r in records] == [record(4)[1], record(5)[1]]
    journal.close(remove=True)
    assert list(tmp_path.glob("*.wal")) == []
