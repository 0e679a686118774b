"""Server spans of the request path, used only when `otlp_endpoint` is configured.

One SERVER span per request the gate answers (proxied or refused). Its parent is
the client's `traceparent`/`tracestate`; its own context is the `traceparent` sent
upstream and carried by the request event, so the upstream's spans and any event
consumer's hang under the gateway's span instead of under a span id nobody
exported. The name stays low-cardinality: `GET <api slug>`, or `gateway` when no
API matched.

Attributes are set one by one from what the gate decided, never copied from
headers or the query: the raw key, `Authorization`, the query string and upstream
credentials can never reach a span. With tracing off the gate never calls here
(it keeps `headers.child_traceparent`), so the default hot path does not touch the
OpenTelemetry SDK.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tollgate.contracts.events.gateway import RejectionReason
from tollgate.gateway.proxy.headers import TRACEPARENT
from tollgate.kit.telemetry import context_from_headers

# Semantic conventions: other methods are reported as `_OTHER` and named `HTTP`, so a
# client inventing methods cannot inflate span names or attribute values.
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


class RequestSpans:
    """Starts and ends the gateway's SERVER spans (one instance per gate)."""

    def __init__(self, provider: trace.TracerProvider | None = None, ratio: float = 1.0) -> None:
        self._tracer = trace.get_tracer("tollgate.gateway", tracer_provider=provider)
        # An operator's OTEL_TRACES_SAMPLER is the SDK's to apply: every request then
        # goes through the SDK, as before sampling became the gateway's default.
        self.ratio = 1.0 if os.environ.get("OTEL_TRACES_SAMPLER") else ratio

    def sampled(self, incoming: str | None) -> bool:
        """Parent-based ratio sampling, decided before the SDK is touched: the client's
        sampled flag when it sent a valid `traceparent`, else `ratio` of new traces. An
        unsampled request takes the gate's SDK-free path (its `traceparent` carries
        the unsampled flag), which is what makes a low ratio cheap."""
        if self.ratio >= 1.0:
            return True
        if incoming:
            match = TRACEPARENT.match(incoming.strip())
            if match and match.group(1) != "0" * 32:
                return bool(int(match.group(2), 16) & 1)
        return random.random() < self.ratio

    def start(
        self,
        headers: Mapping[str, str],
        *,
        method: str,
        path: str,
        scheme: str,
        client_ip: str,
        request_id: str,
    ) -> Span:
        """A span child of the incoming trace context (`path` without the query)."""
        known = method in _KNOWN_METHODS
        attributes = {
            "http.request.method": method if known else "_OTHER",
            "url.path": path,
            "url.scheme": scheme,
            "client.address": client_ip,
            "tollgate.request_id": request_id,
        }
        if not known:
            attributes["http.request.method_original"] = method
        return self._tracer.start_span(
            "gateway",
            context=context_from_headers(headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )

    @staticmethod
    def finish(
        span: Span,
        *,
        method: str,
        api_slug: str | None,
        api_id: str | None,
        org_id: str | None,
        key_id: str | None,
        status: int | None,
        reason: RejectionReason | None,
        error: BaseException | None = None,
    ) -> None:
        """Name the span after the API, record the outcome and end it."""
        if span.is_recording():
            if api_slug is not None:
                span.update_name(f"{method if method in _KNOWN_METHODS else 'HTTP'} {api_slug}")
            outcome: dict[str, str | int] = {}
            if api_id is not None:
                outcome["tollgate.api_id"] = api_id
            if org_id is not None:
                outcome["tollgate.org_id"] = org_id
            if key_id is not None:
                outcome["tollgate.key_id"] = key_id
            if reason is not None:
                outcome["tollgate.rejection_reason"] = reason.value
            if status is not None:
                outcome["http.response.status_code"] = status
            if error is not None:
                # The type only: an exception's message may quote a URL with its query.
                outcome["error.type"] = type(error).__qualname__
            elif status is not None and status >= 500:
                outcome["error.type"] = str(status)
            span.set_attributes(outcome)
            if "error.type" in outcome:
                span.set_status(Status(StatusCode.ERROR))
        span.end()


def traceparent_of(span: Span) -> tuple[str, str | None]:
    """The W3C `traceparent` (and `tracestate`, if any) naming `span` as the parent."""
    ctx = span.get_span_context()
    # The same text the W3C propagator writes; built here so the upstream and the
    # event always get `traceparent`, whatever OTEL_PROPAGATORS says.
    traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    return traceparent, (ctx.trace_state.to_header() or None) if ctx.trace_state else None
