"""The upstream side of the gateway's identity headers: what verifies and what not."""

from __future__ import annotations

import pytest

from tollgate.kit.upstream_identity import (
    SIGNATURE,
    IdentityRefused,
    IdentityVerifier,
    identity_headers,
)

NOW = 1_800_000_000


def signed(**overrides: object) -> dict[str, str]:
    fields: dict[str, object] = {
        "method": "POST",
        "path": "/v1/sms/messages",
        "org_id": "0195a3c1-7a2e-7c4d-9f10-3b5e8d2a6c01",
        "key_id": "0195a3c1-8b3f-7d5e-a021-4c6f9e3b7d12",
        "key_name": "Zürich backend, 東京",
        "scopes": ["sms:send", "billing:read"],
        "plan": "pro",
        "request_id": "01a22853-b4a6-7680-83fe-6a2152c80b57",
        "signed_at": NOW,
    }
    fields.update(overrides)
    return identity_headers("s3cret", **fields)  # type: ignore[arg-type]


def reason(headers: dict[str, str], *, secret: str = "s3cret", now: float = NOW) -> str:
    with pytest.raises(IdentityRefused) as caught:
        IdentityVerifier(secret).verify("POST", "/v1/sms/messages", headers, now=now)
    return caught.value.reason


def test_a_genuine_set_verifies_with_every_field() -> None:
    identity = IdentityVerifier("s3cret").verify("post", "/v1/sms/messages", signed(), now=NOW)
    assert identity.key_name == "Zürich backend, 東京"
    assert identity.scopes == {"sms:send", "billing:read"}
    assert identity.plan == "pro"
    assert signed()["X-Tollgate-Key-Name"].isascii()


@pytest.mark.parametrize(
    ("change", "slug"),
    [
        ({"X-Tollgate-Plan": "enterprise"}, "identity-forged"),
        ({"X-Tollgate-Scopes": "admin sms:send"}, "identity-forged"),
        ({"X-Tollgate-Key-Name": "other"}, "identity-forged"),
        ({SIGNATURE: "t=1800000000,id=x,v1=" + "0" * 64}, "identity-forged"),
        ({SIGNATURE: "t=soon,id=x,v1=" + "0" * 64}, "identity-malformed"),
        ({SIGNATURE: "v1=abc"}, "identity-malformed"),
        ({SIGNATURE: "t=١٨٠٠٠٠٠٠٠٠,id=x,v1=" + "0" * 64}, "identity-malformed"),
    ],
)
def test_tampered_sets_are_refused(change: dict[str, str], slug: str) -> None:
    assert reason({**signed(), **change}) == slug


def test_missing_stale_replayed_and_unconfigured() -> None:
    headers = signed()
    assert reason({k: v for k, v in headers.items() if k != SIGNATURE}) == "identity-missing"
    assert reason(headers, now=NOW + 31) == "identity-stale"
    assert reason(headers, secret="") == "identity-not-configured"
    assert reason(headers, secret="other") == "identity-forged"
    verifier = IdentityVerifier("older,s3cret")  # rotation: either secret verifies
    verifier.verify("POST", "/v1/sms/messages", headers, now=NOW)
    with pytest.raises(IdentityRefused, match="used before"):
        verifier.verify("POST", "/v1/sms/messages", headers, now=NOW + 1)
    # Long after the window the id is forgotten, and the time check refuses it anyway.
    verifier.verify(
        "POST", "/v1/sms/messages", signed(request_id="r2", signed_at=NOW + 100), now=NOW + 100
    )
    assert reason(headers, now=NOW + 200) == "identity-stale"
