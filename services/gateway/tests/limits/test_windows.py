"""The sliding-window limiter, on a controlled clock."""

from __future__ import annotations

from tollgate.gateway.limits.windows import LocalCounters


def admitted(
    counters: LocalCounters, buckets: list[tuple[str, int, int]], at: float, n: int
) -> int:
    return sum(counters.check(buckets, at).allowed for _ in range(n))


def test_burst_across_a_boundary_never_exceeds_the_limit_in_any_window() -> None:
    counters = LocalCounters()
    buckets = [("k:a:60", 100, 60)]
    times: list[float] = []
    # Hammer from 50 s into one minute to 50 s into the next, every 0.25 s.
    t = 1_000_020.0
    while t < 1_000_020.0 + 120:
        for _ in range(20):
            if counters.check(buckets, t).allowed:
                times.append(t)
        t += 0.25
    worst = max(sum(1 for x in times if start <= x < start + 60) for start in times)
    assert worst <= 100


def test_rejected_requests_consume_nothing() -> None:
    counters = LocalCounters()
    small, large = ("k:a:1", 2, 1), ("a:b:60", 1000, 60)
    now = 5_000.0
    assert admitted(counters, [small, large], now, 50) == 2
    # The API window saw only the two admitted requests.
    verdict = counters.check([large], now)
    assert verdict.allowed
    assert verdict.remaining == 1000 - 3


def test_retry_after_is_enough_and_headers_describe_the_tightest_window() -> None:
    counters = LocalCounters()
    buckets = [("k:a:1", 5, 1), ("k:a:60", 100, 60)]
    now = 7_000.3
    assert admitted(counters, buckets, now, 5) == 5
    refused = counters.check(buckets, now)
    assert not refused.allowed
    assert refused.limit == 5
    assert refused.remaining == 0
    assert refused.policy == '"key-second";q=5;w=1, "key-minute";q=100;w=60'
    assert counters.check(buckets, now + refused.retry_after_s).allowed
    headers = dict(refused.headers())
    assert headers["RateLimit-Limit"] == headers["X-RateLimit-Limit"] == "5"


def test_finished_windows_are_swept() -> None:
    counters = LocalCounters()
    counters.check([("k:a:1", 5, 1)], 100.0)
    assert counters.sweep(105.0) == 1
    assert len(counters) == 0
