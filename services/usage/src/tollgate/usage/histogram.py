"""Mergeable latency histograms with a bounded relative error (≤ 0.79 %).

Latencies are integer milliseconds. Values below 128 ms get one bucket each (exact);
above, every power of two is cut into 64 equal buckets (HDR-style log-linear), so a
bucket [lo, hi] has (hi - lo + 1) / lo ≤ 1/64 and its midpoint is within 1/128 of any
value in it. Bucket indexes are fixed, so histograms from different keys, routes,
minutes or replicas merge by adding counts index by index: percentiles over any merge
are as accurate as over one series. Stored sparse as jsonb `{"<index>": count}`.

Percentiles use the nearest-rank definition (the value at rank ⌈q·n⌉ of the sorted
latencies); the estimate is the midpoint of the bucket holding that rank.
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_EXACT = 128  # values below get their own bucket
_SUB_BUCKETS = 64  # buckets per power of two above
_SUB_BITS = 7  # bit length of _EXACT

Histogram = dict[int, int]
"""Bucket index → count."""

PERCENTILES = (0.5, 0.9, 0.95, 0.99)


def bucket_of(latency_ms: int) -> int:
    """The bucket index of a latency (negative values count as 0)."""
    if latency_ms < _EXACT:
        return max(latency_ms, 0)
    shift = latency_ms.bit_length() - _SUB_BITS
    mantissa = latency_ms >> shift  # 64..127
    return _EXACT + (shift - 1) * _SUB_BUCKETS + (mantissa - _SUB_BUCKETS)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The smallest and largest latency of a bucket (inclusive)."""
    if index < _EXACT:
        return index, index
    shift = (index - _EXACT) // _SUB_BUCKETS + 1
    mantissa = (index - _EXACT) % _SUB_BUCKETS + _SUB_BUCKETS
    return mantissa << shift, ((mantissa + 1) << shift) - 1


def bucket_value(index: int) -> float:
    """The value reported for a bucket: its midpoint."""
    low, high = bucket_bounds(index)
    return (low + high) / 2


def record(histogram: Histogram, latency_ms: int) -> None:
    """Count one latency into `histogram` (in place)."""
    index = bucket_of(latency_ms)
    histogram[index] = histogram.get(index, 0) + 1


def merge(histograms: Iterable[Mapping[int, int]]) -> Histogram:
    """The sum of several histograms."""
    total: Histogram = {}
    for histogram in histograms:
        for index, count in histogram.items():
            total[index] = total.get(index, 0) + count
    return total


def to_json(histogram: Mapping[int, int]) -> dict[str, int]:
    """The jsonb form: string keys."""
    return {str(index): count for index, count in histogram.items()}


def from_json(stored: Mapping[str, int | str]) -> Histogram:
    """Back from the jsonb form."""
    return {int(index): int(count) for index, count in stored.items()}


def rank_of(q: float, total: int) -> int:
    """The nearest rank ⌈q·total⌉ (1-based), computed in integers so that, e.g., the
    p95 of 100 values is rank 95 and never 96 through float rounding."""
    return max(1, -(-round(q * 1_000_000) * total // 1_000_000))


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The nearest-rank `q` quantile (0 < q ≤ 1), or None for an empty histogram."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = rank_of(q, total)
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bucket_value(index)
    raise AssertionError("unreachable: rank ≤ total")


def percentiles(
    histogram: Mapping[int, int], qs: Iterable[float] = PERCENTILES
) -> dict[float, float | None]:
    """Several quantiles at once (one sort)."""
    total = sum(histogram.values())
    wanted = sorted(set(qs))
    result: dict[float, float | None] = dict.fromkeys(wanted)
    if total <= 0:
        return result
    ranks = [(q, rank_of(q, total)) for q in wanted]
    seen = 0
    position = 0
    for index in sorted(histogram):
        seen += histogram[index]
        while position < len(ranks) and seen >= ranks[position][1]:
            result[ranks[position][0]] = bucket_value(index)
            position += 1
        if position == len(ranks):
            break
    return result
