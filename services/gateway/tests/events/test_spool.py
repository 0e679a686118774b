"""The on-disk event spool: order, bound, crash tail, exclusive use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollgate.gateway.events.spool import Spool, SpoolLocked


def test_segments_drain_in_acceptance_order_and_the_cap_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    assert spool.append(10, [(b"org", b'{"id":"1"}'), (None, b'{"id":"2"}')]) == 0
    _path, refused = spool.write_doubtful(5, [(b"org", b'{"id":"0"}')])
    assert refused == 0
    spool.close_segment()
    records = [r for path in spool.segments() for r in Spool.read(path)]
    assert records == [(b"org", b'{"id":"0"}'), (b"org", b'{"id":"1"}'), (None, b'{"id":"2"}')]
    assert spool.append(20, [(b"k", b"x" * (2 * 1024 * 1024))]) == 1
    spool.close()


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001.seg").write_bytes(b'k\t{"id":"1"}\nk\t{"id":')
    assert Spool.read(tmp_path / "00000000000000000001.seg") == [(b"k", b'{"id":"1"}')]


def test_two_gateways_cannot_share_a_spool(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path, max_bytes=1 << 20)
    first.close()
