"""Parent-based ratio sampling of the gateway's spans, decided before the SDK."""

from __future__ import annotations

import pytest

from tollgate.gateway.proxy.headers import child_traceparent
from tollgate.gateway.proxy.tracing import RequestSpans

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def test_the_clients_sampled_flag_decides_for_its_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    spans = RequestSpans(ratio=0.0)
    assert spans.sampled(SAMPLED)
    assert not spans.sampled(UNSAMPLED)
    assert not spans.sampled(None)
    assert not spans.sampled("garbage")


def test_new_traces_are_sampled_at_the_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    spans = RequestSpans(ratio=0.1)
    hits = sum(spans.sampled(None) for _ in range(20_000))
    assert 1_500 < hits < 2_500
    assert all(RequestSpans(ratio=1.0).sampled(None) for _ in range(100))


def test_an_operators_sampler_setting_leaves_the_decision_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    assert RequestSpans(ratio=0.0).sampled(UNSAMPLED)


def test_an_unsampled_new_trace_says_so_upstream() -> None:
    assert child_traceparent(None, "00").endswith("-00")
    assert child_traceparent(UNSAMPLED, "01").endswith("-00")  # the client's flags go on
    assert child_traceparent(SAMPLED, "00").endswith("-01")
