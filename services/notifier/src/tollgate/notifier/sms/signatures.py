"""Signature checks of SMS provider webhooks. Pure functions, no I/O.

- Twilio: `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + every POST
  parameter name and value, sorted by name)), where URL is the full URL Twilio
  called. Twilio may sign with or without the default port, so both are tried.
- Generic: `X-Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
  "<t>.<raw body>")>`, rejected when `t` is more than 5 minutes off.
All comparisons are constant-time. Header values are attacker input: anything that is
not ASCII, or a timestamp no clock could hold, is simply not a valid signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from yarl import URL

GENERIC_TOLERANCE_SECONDS = 300


def twilio_signature(auth_token: str, url: str, params: Mapping[str, Sequence[str]]) -> str:
    """The signature Twilio computes for a form POST to `url`."""
    content = url
    for name in sorted(params):
        for value in sorted(set(params[name])):
            content += name + value
    digest = hmac.new(auth_token.encode(), content.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    parsed = URL(url)
    variants = [url]
    default = {"https": 443, "http": 80}.get(parsed.scheme)
    if parsed.explicit_port is None and default is not None:
        variants.append(str(parsed.with_port(default)))
    elif parsed.explicit_port is not None and parsed.explicit_port == default:
        variants.append(str(parsed.with_port(None)))
    return variants


def twilio_valid(
    auth_token: str, url: str, params: Mapping[str, Sequence[str]], signature: str | None
) -> bool:
    """True when `signature` is Twilio's for this request."""
    if not auth_token or not signature or not signature.isascii():
        return False
    return any(
        hmac.compare_digest(twilio_signature(auth_token, variant, params), signature)
        for variant in _url_variants(url)
    )


def generic_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Tollgate-Signature` header value for a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def generic_valid(secret: str, header: str | None, body: bytes, now: float) -> bool:
    """True when the header signs `body` with `secret` within the tolerance."""
    if not secret or not header or not header.isascii():
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp = parts.get("t", "")
    # At most 12 digits: any real unix time, and nothing float() cannot compare with.
    if not (stamp.isdigit() and len(stamp) <= 12):
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > GENERIC_TOLERANCE_SECONDS:
        return False
    expected = generic_signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
