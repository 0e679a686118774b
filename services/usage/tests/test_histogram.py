"""The latency histogram keeps every percentile within 1 % and merges losslessly."""

from __future__ import annotations

import random

from tollgate.usage import histogram

from .factories import long_tail_latency


def exact(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[histogram.rank_of(q, len(ordered)) - 1]


def test_every_value_lands_in_a_bucket_within_one_percent() -> None:
    for value in [*range(0, 5000), *range(5000, 10_000_000, 9973)]:
        index = histogram.bucket_of(value)
        low, high = histogram.bucket_bounds(index)
        assert low <= value <= high
        assert abs(histogram.bucket_value(index) - value) <= 0.01 * max(value, 1)


def test_buckets_are_contiguous_and_ordered() -> None:
    previous_high = -1
    for index in range(0, 2000):
        low, high = histogram.bucket_bounds(index)
        assert low == previous_high + 1
        previous_high = high


def test_percentiles_of_merged_histograms_match_exact_values() -> None:
    rng = random.Random(7)
    series = [[long_tail_latency(rng) for _ in range(rng.randint(1, 3000))] for _ in range(40)]
    parts = []
    for values in series:
        part: histogram.Histogram = {}
        for value in values:
            histogram.record(part, value)
        parts.append(part)
    merged = histogram.merge(parts)
    everything = [value for values in series for value in values]
    estimates = histogram.percentiles(merged)
    for q in histogram.PERCENTILES:
        truth = exact(everything, q)
        estimate = estimates[q]
        assert estimate is not None
        assert abs(estimate - truth) <= 0.01 * truth, (q, estimate, truth)


def test_empty_histogram_has_no_percentiles() -> None:
    assert histogram.percentile({}, 0.5) is None
    assert histogram.percentiles({}) == dict.fromkeys(sorted(histogram.PERCENTILES))


def test_json_round_trip() -> None:
    hist = {0: 3, 130: 7, 1500: 1}
    assert histogram.from_json(histogram.to_json(hist)) == hist
