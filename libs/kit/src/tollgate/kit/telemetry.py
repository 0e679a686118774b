"""OpenTelemetry: traces exported over OTLP/HTTP when an endpoint is configured.

W3C `traceparent` travels in HTTP headers and as a Kafka header; these helpers are
the one way to read and write it. With no endpoint configured the no-op tracer is
used, so instrumentation costs next to nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_configured = False


def configure_tracing(service: str, otlp_endpoint: str | None) -> None:
    """Install a tracer provider exporting to `otlp_endpoint` (no-op when None)."""
    global _configured
    if _configured or not otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # A collector's base URL (http://otel:4318) is as good as the full traces URL.
    if not otlp_endpoint.rstrip("/").endswith("/v1/traces"):
        otlp_endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": f"tollgate-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    _configured = True


def shutdown_tracing() -> None:
    """Flush spans before exit."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def context_from_headers(headers: Mapping[str, str]) -> Context:
    """The trace context carried by incoming HTTP headers (lower-case names)."""
    return propagate.extract(headers)


def current_traceparent() -> str | None:
    """`traceparent` of the active span, if any."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def kafka_headers(extra: Iterable[tuple[str, bytes]] = ()) -> list[tuple[str, bytes]]:
    """Kafka record headers carrying the active trace context."""
    headers = list(extra)
    traceparent = current_traceparent()
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers
