"""Prometheus metrics: the HTTP metrics every service exports and the `/metrics` body.

Services define their own domain counters next to the code that increments them
(e.g. `tollgate_billing_debits_total`), on the default registry.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "tollgate_http_requests_total",
    "HTTP requests answered",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "tollgate_http_request_duration_seconds",
    "HTTP request duration",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def exposition() -> tuple[bytes, str]:
    """The metrics page and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
