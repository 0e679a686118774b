"""Signed caller identity for the upstream (`tollgate.kit.upstream_identity` has the form).

The gate puts these header lines into every forwarded request once a key is admitted;
client-sent copies never get this far (`headers.REQUEST_DROP`). Pure CPU on the hot
path (one HMAC-SHA256, a few string joins), no I/O. What only changes with the key
record (its signing lines and rendered header lines, checked for line breaks once) is
kept on the record itself, the time's text (when the request is sent) is made once a
second, and the MAC starts from copies of the two keyed SHA-256 states (a third of the
cost of `hmac.new` per request), so a request pays for the MAC and one string, which
goes into the request head as it is. The path signed is the one the gate sends (the
sandbox's, for a test key), with the upstream's base path in front.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tollgate.gateway.proxy.upstream_http import UpstreamError
from tollgate.gateway.registry.records import KeyRecord
from tollgate.kit.upstream_identity import (
    KEY_ID,
    KEY_NAME,
    ORG_ID,
    PLAN,
    SCOPES,
    SIGNATURE,
    encode_name,
    encode_scopes,
    secrets_of,
)

_BLOCK = 64  # SHA-256's block size in bytes


class IdentitySigner:
    """Renders the signed identity header lines of one forwarded request."""

    def __init__(self, secrets: str) -> None:
        keys = secrets_of(secrets)
        if not keys:
            raise ValueError("an identity secret is required")
        self._inner, self._outer = _hmac_sha256_states(keys[0])
        self._second = -1
        self._stamp = ""

    def lines(
        self,
        method: str,
        path: str,
        key: KeyRecord,
        request_id: str,
        now: float,
        plan: str | None = None,
    ) -> str:
        """The identity header lines (CRLF between them, none after the last) for a
        request to `path` (as the upstream receives it)."""
        parts = key.identity
        if parts is None:  # the record's first request (a replaced record is a new one)
            parts = key.identity = _key_parts(key)
        key_lines, key_block = parts
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, str(second)
        stamp = self._stamp
        # `signing_input`'s bytes, with the key's lines made once per record.
        message = f"v1\n{stamp}\n{request_id}\n{method.upper()}\n{path}\n{key_lines}\n{plan or ''}"
        inner = self._inner.copy()
        inner.update(message.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        signature = f"{SIGNATURE}: t={stamp},id={request_id},v1={outer.hexdigest()}"
        if plan:  # a plan id is a UUID's text: nothing in it can break the line
            return f"{key_block}{PLAN}: {plan}\r\n{signature}"
        return f"{key_block}{signature}"


def _key_parts(key: KeyRecord) -> tuple[str, str]:
    """The key's lines of the signing input (org id to scopes) and its header lines
    (each ending in CRLF)."""
    name = encode_name(key.name)
    scopes = encode_scopes(key.scopes)
    lines = f"{key.org_id}\n{key.key_id}\n{name}\n{scopes}"
    fields = ((ORG_ID, key.org_id), (KEY_ID, key.key_id), (KEY_NAME, name), (SCOPES, scopes))
    return lines, "".join(_line(field, value) + "\r\n" for field, value in fields)


def _line(field: str, value: str) -> str:
    """One header line; a value that could break out of it is refused when its record
    is first seen, as `Origin.head` refuses one (names are percent-encoded and ids are
    UUIDs, but scopes are any text accounts accepted)."""
    if "\r" in value or "\n" in value:
        raise UpstreamError(f"{field} holds a line break")
    return f"{field}: {value}"


def _hmac_sha256_states(secret: bytes) -> tuple[Any, Any]:
    """SHA-256 states keyed with `secret` xor ipad and opad (RFC 2104): HMAC of a message
    is outer.update(inner.update(message).digest()), from copies of the two."""
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in secret))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in secret))
    return inner, outer


def identity_signer(secrets: str) -> IdentitySigner | None:
    """The signer, or None when no secret is configured (no identity is forwarded)."""
    return IdentitySigner(secrets) if secrets_of(secrets) else None
