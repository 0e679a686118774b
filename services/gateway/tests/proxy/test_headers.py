"""Header and query rules of the proxy."""

from __future__ import annotations

from tollgate.gateway.proxy.headers import (
    TrustedProxies,
    child_traceparent,
    query_key,
    strip_query_key,
)


def test_api_key_is_removed_from_the_query_and_the_rest_kept_verbatim() -> None:
    query = "a=1&api_key=tg_live_x%2B&b=%20two&api_key=again"
    assert query_key(query) == "tg_live_x+"
    assert strip_query_key(query) == "a=1&b=%20two"


def test_traceparent_continues_the_trace_with_a_new_span() -> None:
    incoming = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    child = child_traceparent(incoming)
    assert child.startswith("00-" + "a" * 32 + "-")
    assert child.endswith("-01")
    assert child != incoming
    fresh = child_traceparent("garbage")
    assert len(fresh) == 55
    assert fresh.split("-")[1] != "a" * 32


def test_client_ip_believes_forwarded_for_only_from_trusted_proxies() -> None:
    proxies = TrustedProxies("10.0.0.0/8")
    assert proxies.client_ip("203.0.113.9", "1.2.3.4") == "203.0.113.9"
    assert proxies.client_ip("10.0.0.2", "1.2.3.4, 10.0.0.7") == "1.2.3.4"
    assert TrustedProxies("").client_ip("10.0.0.2", "1.2.3.4") == "10.0.0.2"
