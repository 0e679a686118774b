"""Signed caller identity for the upstream (`tollgate.kit.upstream_identity` has the form).

The gate appends these headers to every forwarded request once a key is admitted;
client-sent copies never get this far (`headers.REQUEST_DROP`). Pure CPU on the hot
path (one HMAC-SHA256, a few string joins), no I/O. The parts that only change with
the key record (its encoded name and scopes) are cached by key id (a str: its hash is
kept and spread; object ids, multiples of 16, crowd a dict's first probes), the
time's text is made once a second, and the MAC starts from copies of the two keyed
SHA-256 states (a third of the cost of `hmac.new` per request), so a request pays for
the MAC and the list. The path signed is the one the gate sends (the sandbox's, for a
test key), with the upstream's base path in front.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

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

_CACHE_MAX = 100_000
_BLOCK = 64  # SHA-256's block size in bytes


class IdentitySigner:
    """Builds the signed identity headers of one forwarded request."""

    def __init__(self, secrets: str) -> None:
        keys = secrets_of(secrets)
        if not keys:
            raise ValueError("an identity secret is required")
        self._inner, self._outer = _hmac_sha256_states(keys[0])
        self._keys: dict[str, tuple[KeyRecord, str, tuple[tuple[str, str], ...]]] = {}
        self._second = -1
        self._stamp = ""

    def headers(
        self,
        method: str,
        path: str,
        key: KeyRecord,
        request_id: str,
        plan: str | None = None,
    ) -> list[tuple[str, str]]:
        """The identity headers for a request to `path` (as the upstream receives it)."""
        cached = self._keys.get(key.key_id)
        if cached is None or cached[0] is not key:  # new, or its record was replaced
            if len(self._keys) >= _CACHE_MAX:
                self._keys.clear()
            cached = self._keys[key.key_id] = (key, *_key_parts(key))
        _, key_lines, key_headers = cached
        second = int(time.time())
        if second != self._second:
            self._second, self._stamp = second, str(second)
        stamp = self._stamp
        # `signing_input`'s bytes, with the key's lines made once per record.
        message = f"v1\n{stamp}\n{request_id}\n{method.upper()}\n{path}\n{key_lines}\n{plan or ''}"
        inner = self._inner.copy()
        inner.update(message.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        signature = (SIGNATURE, f"t={stamp},id={request_id},v1={outer.hexdigest()}")
        if plan:
            return [*key_headers, (PLAN, plan), signature]
        return [*key_headers, signature]


def _key_parts(key: KeyRecord) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key's lines of the signing input (org id to scopes) and its headers."""
    name = encode_name(key.name)
    scopes = encode_scopes(key.scopes)
    lines = f"{key.org_id}\n{key.key_id}\n{name}\n{scopes}"
    return lines, ((ORG_ID, key.org_id), (KEY_ID, key.key_id), (KEY_NAME, name), (SCOPES, scopes))


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
