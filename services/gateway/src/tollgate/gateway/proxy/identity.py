"""Signed caller identity for the upstream (`tollgate.kit.upstream_identity` has the form).

The gate appends these headers to every forwarded request once a key is admitted;
client-sent copies never get this far (`headers.REQUEST_DROP`). Pure CPU on the hot
path (one HMAC-SHA256, a few string joins), no I/O. The parts that only change with
the key record (its encoded name and scopes) and with the API (the upstream's path
prefix) are cached, so a request pays for the time, the MAC and the list.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

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
    mac,
    secrets_of,
    signing_input,
)

_CACHE_MAX = 100_000


class IdentitySigner:
    """Builds the signed identity headers of one forwarded request."""

    def __init__(self, secrets: str) -> None:
        keys = secrets_of(secrets)
        if not keys:
            raise ValueError("an identity secret is required")
        self._secret = keys[0]
        self._keys: dict[int, tuple[KeyRecord, str, str]] = {}
        self._prefixes: dict[str, str] = {}

    def _key_parts(self, key: KeyRecord) -> tuple[str, str]:
        cached = self._keys.get(id(key))
        if cached is not None and cached[0] is key:
            return cached[1], cached[2]
        if len(self._keys) >= _CACHE_MAX:
            self._keys.clear()
        name = encode_name(key.name)
        scopes = encode_scopes(key.scopes)
        # The record is held with its parts, so its id cannot be reused while cached.
        self._keys[id(key)] = (key, name, scopes)
        return name, scopes

    def _prefix(self, upstream_base: str) -> str:
        prefix = self._prefixes.get(upstream_base)
        if prefix is None:
            if len(self._prefixes) >= _CACHE_MAX:
                self._prefixes.clear()
            prefix = self._prefixes[upstream_base] = urlsplit(upstream_base).path.rstrip("/")
        return prefix

    def headers(
        self,
        method: str,
        upstream_base: str,
        forward: str,
        key: KeyRecord,
        request_id: str,
        plan: str | None = None,
    ) -> list[tuple[str, str]]:
        """The identity headers for a request to `upstream_base + forward`."""
        name, scopes = self._key_parts(key)
        signed_at = int(time.time())
        message = signing_input(
            signed_at=signed_at,
            request_id=request_id,
            method=method.upper(),
            path=self._prefix(upstream_base) + forward,
            org_id=key.org_id,
            key_id=key.key_id,
            key_name=name,
            scopes=scopes,
            plan=plan or "",
        )
        out = [
            (ORG_ID, key.org_id),
            (KEY_ID, key.key_id),
            (KEY_NAME, name),
            (SCOPES, scopes),
        ]
        if plan:
            out.append((PLAN, plan))
        out.append((SIGNATURE, f"t={signed_at},id={request_id},v1={mac(self._secret, message)}"))
        return out


def identity_signer(secrets: str) -> IdentitySigner | None:
    """The signer, or None when no secret is configured (no identity is forwarded)."""
    return IdentitySigner(secrets) if secrets_of(secrets) else None
