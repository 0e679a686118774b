"""The gateway's SERVER spans: parent from the client, context sent on, safe attributes."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tollgate.contracts.events.gateway import RejectionReason
from tollgate.gateway.proxy.tracing import RequestSpans, traceparent_of

CLIENT_TRACE = "ab" * 16
CLIENT_SPAN = "cd" * 8


def recorder() -> tuple[RequestSpans, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return RequestSpans(provider), exporter


def one_request(
    spans: RequestSpans,
    headers: dict[str, str],
    *,
    method: str = "GET",
    status: int | None = 200,
    slug: str | None = "shop",
    reason: RejectionReason | None = None,
) -> tuple[str, str | None]:
    span = spans.start(
        headers,
        method=method,
        path="/shop/items/7",
        scheme="http",
        client_ip="203.0.113.9",
        request_id="req-1",
    )
    sent = traceparent_of(span)
    spans.finish(
        span,
        method=method,
        api_slug=slug,
        api_id="api-1" if slug else None,
        org_id="org-1" if slug else None,
        key_id="key-1" if slug else None,
        status=status,
        reason=reason,
    )
    return sent


def only(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_the_span_continues_the_client_trace_and_is_what_the_upstream_gets() -> None:
    spans, exporter = recorder()
    traceparent, tracestate = one_request(
        spans,
        {
            "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
            "tracestate": "vendor=x",
        },
    )
    span = only(exporter)
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET shop"
    assert span.parent is not None
    assert f"{span.parent.trace_id:032x}" == CLIENT_TRACE
    assert f"{span.parent.span_id:016x}" == CLIENT_SPAN
    assert traceparent == f"00-{CLIENT_TRACE}-{span.context.span_id:016x}-01"
    assert tracestate == "vendor=x"
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/shop/items/7",
        "url.scheme": "http",
        "client.address": "203.0.113.9",
        "tollgate.request_id": "req-1",
        "tollgate.api_id": "api-1",
        "tollgate.org_id": "org-1",
        "tollgate.key_id": "key-1",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_without_a_client_trace_the_gateway_starts_one() -> None:
    spans, exporter = recorder()
    traceparent, tracestate = one_request(spans, {"traceparent": "garbage"})
    span = only(exporter)
    assert span.parent is None
    assert traceparent.split("-")[1:3] == [
        f"{span.context.trace_id:032x}",
        f"{span.context.span_id:016x}",
    ]
    assert tracestate is None


def test_a_refusal_carries_its_reason_and_an_unknown_api_a_fixed_name() -> None:
    spans, exporter = recorder()
    one_request(spans, {}, status=404, slug=None, reason=RejectionReason.UNKNOWN_API)
    span = only(exporter)
    assert span.name == "gateway"
    assert span.attributes is not None
    assert span.attributes["tollgate.rejection_reason"] == "unknown_api"
    assert span.attributes["http.response.status_code"] == 404
    assert "tollgate.key_id" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


def test_an_upstream_failure_is_an_error_and_odd_methods_do_not_name_spans() -> None:
    spans, exporter = recorder()
    one_request(spans, {}, method="BREW", status=502)
    span = only(exporter)
    assert span.name == "HTTP shop"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "BREW"
    assert span.attributes["error.type"] == "502"


def test_an_unsampled_client_trace_is_continued_without_recording() -> None:
    spans, exporter = recorder()
    traceparent, _ = one_request(spans, {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"})
    assert exporter.get_finished_spans() == ()
    _version, trace_id, span_id, flags = traceparent.split("-")
    assert trace_id == CLIENT_TRACE
    assert span_id != CLIENT_SPAN
    assert flags == "00"
