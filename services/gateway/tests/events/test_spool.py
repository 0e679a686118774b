"""The on-disk event spool: order, bound, crash tail, traceparent, exclusive use."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tollgate.gateway.events.spool import Spool, SpoolLocked

TRACE = b"00-" + b"ab" * 16 + b"-" + b"cd" * 8 + b"-01"


def test_segments_drain_in_acceptance_order_and_the_cap_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    assert spool.append(10, [(b"org", b'{"id":"1"}', TRACE), (None, b'{"id":"2"}', None)]) == 0
    _path, refused = spool.write_doubtful(5, [(b"org", b'{"id":"0"}', TRACE)])
    assert refused == 0
    spool.close_segment()
    records = [r for path in spool.segments() for r in Spool.read(path)]
    assert records == [
        (b"org", b'{"id":"0"}', TRACE),
        (b"org", b'{"id":"1"}', TRACE),
        (None, b'{"id":"2"}', None),
    ]
    assert spool.append(20, [(b"k", b"x" * (2 * 1024 * 1024), TRACE)]) == 1
    spool.close()


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001.seg").write_bytes(b'k\t{"id":"1"}\t' + TRACE + b'\nk\t{"id":')
    assert Spool.read(tmp_path / "00000000000000000001.seg") == [(b"k", b'{"id":"1"}', TRACE)]


def test_a_spool_written_before_traceparents_were_kept_still_drains(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001.seg").write_bytes(b'k\t{"id":"1"}\n\t{"id":"2"}\n')
    assert Spool.read(tmp_path / "00000000000000000001.seg") == [
        (b"k", b'{"id":"1"}', None),
        (None, b'{"id":"2"}', None),
    ]


def test_two_gateways_cannot_share_a_spool(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path, max_bytes=1 << 20)
    first.close()


def test_a_starting_gateway_waits_for_a_process_taking_its_spool_over(tmp_path: Path) -> None:
    # A running worker holds a stopped worker's spool while it moves the segments out;
    # the slot's restarted worker waits for it instead of failing to start.
    adopter = Spool(tmp_path, max_bytes=1 << 20)
    threading.Timer(0.3, adopter.close).start()
    started = time.monotonic()
    restarted = Spool(tmp_path, max_bytes=1 << 20, wait_s=5)
    assert 0.25 < time.monotonic() - started < 5
    restarted.close()
