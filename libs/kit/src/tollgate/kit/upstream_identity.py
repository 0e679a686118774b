"""Caller identity from the gateway to an upstream: one canonical form, signed and verified.

The gateway adds the caller's identity to every request it forwards (like Kong's
`X-Consumer-*` headers), and signs them so an upstream can tell a header set the
gateway wrote from one a client typed or replayed:

    X-Tollgate-Org-Id            the calling org (UUID)
    X-Tollgate-Key-Id            the API key's id (UUID)
    X-Tollgate-Key-Name          the key's human name, percent-encoded UTF-8
    X-Tollgate-Scopes            the key's scopes, sorted, space separated ("" = none)
    X-Tollgate-Plan              the org's plan when the gateway knows one, else absent
    X-Tollgate-Identity          t=<unix seconds>,id=<request id>,v1=<hex HMAC-SHA256>

The MAC covers, one per line: `v1`, time, request id, method, the request path as the
upstream receives it (raw, without the query), org id, key id, key name, scopes and
plan. The key is a shared secret (`identity_secrets` at the gateway, the same value at
each upstream; several may be configured, newest first, so it can be rotated: the
first signs, all verify). An upstream refuses a header set whose MAC does not match
(forged, or moved to another method or path), whose time is further than the allowed
skew from its clock (stale), or whose request id it already accepted within that
window (replayed; the memory is per process, sized for the window).

This module does no I/O; `IdentityVerifier.verify` is the one implementation every
upstream in this repository uses (the notifier's SMS API included).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

ORG_ID = "X-Tollgate-Org-Id"
KEY_ID = "X-Tollgate-Key-Id"
KEY_NAME = "X-Tollgate-Key-Name"
SCOPES = "X-Tollgate-Scopes"
PLAN = "X-Tollgate-Plan"
SIGNATURE = "X-Tollgate-Identity"
HEADERS = (ORG_ID, KEY_ID, KEY_NAME, SCOPES, PLAN, SIGNATURE)
"""Every identity header: the gateway drops any client-sent copy of each."""

DEFAULT_MAX_SKEW_S = 30


class IdentityRefused(ValueError):
    """The identity headers cannot be trusted; `reason` is a slug for the answer."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """Who called through the gateway, as verified from the headers."""

    org_id: str
    key_id: str
    key_name: str
    scopes: frozenset[str]
    plan: str | None
    request_id: str
    signed_at: int


def secrets_of(value: str) -> list[bytes]:
    """The configured secrets (comma separated, newest first) as MAC keys."""
    return [s.strip().encode() for s in value.split(",") if s.strip()]


def encode_name(name: str) -> str:
    """A key name as a header value (percent-encoded UTF-8, readable ASCII kept)."""
    return quote(name, safe=" !#$&'()*+,-./:;<=>?@[]^_`{|}~")


def encode_scopes(scopes: frozenset[str] | Sequence[str]) -> str:
    return " ".join(sorted(scopes))


def signing_input(
    *,
    signed_at: int,
    request_id: str,
    method: str,
    path: str,
    org_id: str,
    key_id: str,
    key_name: str,
    scopes: str,
    plan: str,
) -> bytes:
    """The exact bytes the MAC covers (header values as sent: name and scopes encoded)."""
    return "\n".join(
        ("v1", str(signed_at), request_id, method, path, org_id, key_id, key_name, scopes, plan)
    ).encode()


def mac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class IdentityVerifier:
    """Verifies the identity headers of requests coming through the gateway."""

    def __init__(
        self,
        secrets: str | Sequence[bytes],
        *,
        max_skew_s: int = DEFAULT_MAX_SKEW_S,
    ) -> None:
        self._secrets = secrets_of(secrets) if isinstance(secrets, str) else list(secrets)
        self._max_skew = max_skew_s
        self._seen: dict[str, int] = {}  # request id -> signed_at, kept for the window
        self._next_sweep = 0.0

    @property
    def configured(self) -> bool:
        """False without a secret: every request is refused."""
        return bool(self._secrets)

    def verify(
        self, method: str, path: str, headers: Mapping[str, str], now: float | None = None
    ) -> CallerIdentity:
        """The caller, or `IdentityRefused` (missing, malformed, stale, forged, replayed).

        `path` is the raw request path as received (no query string)."""
        if not self._secrets:
            raise IdentityRefused("identity-not-configured", "No gateway identity key is set.")
        now = time.time() if now is None else now
        header = headers.get(SIGNATURE)
        org_id, key_id = headers.get(ORG_ID), headers.get(KEY_ID)
        if not header or org_id is None or key_id is None:
            raise IdentityRefused("identity-missing", "The gateway identity headers are missing.")
        fields = dict(part.partition("=")[::2] for part in header.split(","))
        stamp, request_id, given = fields.get("t", ""), fields.get("id", ""), fields.get("v1", "")
        if not (stamp.isascii() and stamp.isdigit() and request_id and len(given) == 64):
            raise IdentityRefused("identity-malformed", "The identity signature is malformed.")
        signed_at = int(stamp)
        if abs(now - signed_at) > self._max_skew:
            raise IdentityRefused(
                "identity-stale", "The identity headers are too old (or from the future)."
            )
        key_name = headers.get(KEY_NAME, "")
        scopes = headers.get(SCOPES, "")
        plan = headers.get(PLAN, "")
        message = signing_input(
            signed_at=signed_at,
            request_id=request_id,
            method=method.upper(),
            path=path,
            org_id=org_id,
            key_id=key_id,
            key_name=key_name,
            scopes=scopes,
            plan=plan,
        )
        if not any(hmac.compare_digest(mac(s, message), given) for s in self._secrets):
            raise IdentityRefused("identity-forged", "The identity signature does not match.")
        self._sweep(now)
        if request_id in self._seen:
            raise IdentityRefused("identity-replayed", "These identity headers were used before.")
        self._seen[request_id] = signed_at
        return CallerIdentity(
            org_id=org_id,
            key_id=key_id,
            key_name=unquote(key_name),
            scopes=frozenset(scopes.split()),
            plan=plan or None,
            request_id=request_id,
            signed_at=signed_at,
        )

    def _sweep(self, now: float) -> None:
        # Ids older than the window cannot pass the skew check again: forget them.
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._max_skew
        horizon = now - 2 * self._max_skew
        self._seen = {rid: t for rid, t in self._seen.items() if t >= horizon}


def identity_headers(
    secret: str,
    *,
    method: str,
    path: str,
    org_id: str,
    key_id: str,
    key_name: str = "",
    scopes: Sequence[str] = (),
    plan: str | None = None,
    request_id: str,
    signed_at: int | None = None,
) -> dict[str, str]:
    """The header set the gateway would send (for upstreams' own tests; the gateway's
    hot path builds the same form with cached parts)."""
    signed_at = int(time.time()) if signed_at is None else signed_at
    name, scope_text = encode_name(key_name), encode_scopes(scopes)
    message = signing_input(
        signed_at=signed_at,
        request_id=request_id,
        method=method.upper(),
        path=path,
        org_id=org_id,
        key_id=key_id,
        key_name=name,
        scopes=scope_text,
        plan=plan or "",
    )
    headers = {ORG_ID: org_id, KEY_ID: key_id, KEY_NAME: name, SCOPES: scope_text}
    if plan:
        headers[PLAN] = plan
    signature = mac(secrets_of(secret)[0], message)
    headers[SIGNATURE] = f"t={signed_at},id={request_id},v1={signature}"
    return headers
