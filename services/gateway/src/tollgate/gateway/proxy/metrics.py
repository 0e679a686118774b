"""The request path's Prometheus metrics, counted in plain Python and read at scrape.

`prometheus_client`'s `Counter.inc` and `Histogram.observe` take a mutex each (the
client is thread-safe); the gateway counts on its event loop thread only, so the
request path adds to a dict and a bucket list here and a registered collector turns
them into the `tollgate_gateway_requests_total` counter and the
`tollgate_gateway_added_latency_seconds` histogram when `/metrics` is read. Same names,
labels and buckets as before. No I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class RequestMetrics(Collector):
    """Requests answered by outcome and status; time spent in the gateway itself."""

    def __init__(self) -> None:
        self.answered: dict[tuple[str, int], int] = {}
        self._latency = [0] * (len(_BUCKETS) + 1)  # per bucket (not cumulative), +Inf last
        self._latency_sum = 0.0

    def count(self, outcome: str, status: int) -> None:
        key = (outcome, status)
        answered = self.answered
        answered[key] = answered.get(key, 0) + 1

    def observe(self, seconds: float) -> None:
        self._latency[bisect_left(_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily(
            "tollgate_gateway_requests", "Requests answered", labels=["outcome", "status"]
        )
        for (outcome, status), value in sorted(self.answered.items()):
            requests.add_metric([outcome, str(status)], value)
        yield requests
        cumulative = []
        total = 0
        for bound, value in zip((*map(repr, _BUCKETS), "+Inf"), self._latency, strict=True):
            total += value
            cumulative.append((bound, total))
        latency = HistogramMetricFamily(
            "tollgate_gateway_added_latency_seconds",
            "Time spent in the gateway itself (total minus waiting for the upstream)",
        )
        latency.add_metric([], cumulative, self._latency_sum)
        yield latency


REQUEST_METRICS = RequestMetrics()
REGISTRY.register(REQUEST_METRICS)
