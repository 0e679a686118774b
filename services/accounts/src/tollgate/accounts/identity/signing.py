"""Token signing keys: an Ed25519 keyring in a PEM file, published as a JWKS.

The file holds one or more keys, newest first, each a PKCS#8 PEM block preceded by
a header line:

    # tollgate-signing-key kid=<kid> created=<iso8601> [retired=<iso8601>]

The first key without `retired` signs; retired keys are still published at
`/.well-known/jwks.json` (so verifiers accept tokens they signed) until the longest
access-token lifetime has passed since their retirement, then they are dropped.
`python -m tollgate.accounts rotate-signing-key` prepends a fresh key and retires the
previous one. Every replica re-reads the file when it changes (a mounted secret).

This module never logs key material.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tollgate.kit.auth import decode_access_token, unauthorized, unverified_kid

_BLOCK = re.compile(
    r"#\s*tollgate-signing-key(?P<meta>[^\n]*)\n"
    r"(?P<pem>-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----)",
    re.DOTALL,
)
_RELOAD_EVERY = 1.0


class SigningUnavailable(RuntimeError):
    """No usable signing key is configured."""


@dataclass(frozen=True)
class SigningKey:
    """One key of the ring."""

    kid: str
    private: Ed25519PrivateKey
    created: datetime
    retired: datetime | None = None

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(
            self.private.public_key(), as_dict=True
        )
        jwk.update({"kid": self.kid, "alg": "EdDSA", "use": "sig"})
        return jwk


def _kid(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")[:16]


def new_key(now: datetime | None = None) -> SigningKey:
    """A fresh Ed25519 signing key."""
    private = Ed25519PrivateKey.generate()
    return SigningKey(kid=_kid(private), private=private, created=now or datetime.now(UTC))


def parse_keyring(text: str) -> list[SigningKey]:
    """The keys in a keyring file's text, in file order."""
    keys = []
    for match in _BLOCK.finditer(text):
        meta = dict(part.split("=", 1) for part in match.group("meta").split() if "=" in part)
        private = serialization.load_pem_private_key(match.group("pem").encode(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError("signing keys must be Ed25519")
        created = (
            datetime.fromisoformat(meta["created"]) if "created" in meta else datetime.now(UTC)
        )
        retired = datetime.fromisoformat(meta["retired"]) if "retired" in meta else None
        keys.append(SigningKey(_kid(private), private, created, retired))
    return keys


def format_keyring(keys: list[SigningKey]) -> str:
    """The file text of a keyring."""
    parts = []
    for key in keys:
        meta = f"kid={key.kid} created={key.created.isoformat()}"
        if key.retired is not None:
            meta += f" retired={key.retired.isoformat()}"
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        parts.append(f"# tollgate-signing-key {meta}\n{pem}")
    return "".join(parts)


def write_keyring(path: Path, keys: list[SigningKey]) -> None:
    """Write the keyring atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(format_keyring(keys))
    os.replace(tmp, path)


def rotate_keyring(path: Path, access_ttl_seconds: int, now: datetime | None = None) -> SigningKey:
    """Prepend a new active key, retire the previous one, drop keys retired long ago."""
    now = now or datetime.now(UTC)
    keys = parse_keyring(path.read_text()) if path.exists() else []
    keep = [new_key(now)]
    for key in keys:
        retired = key.retired or now
        if retired + timedelta(seconds=access_ttl_seconds) > now:
            keep.append(SigningKey(key.kid, key.private, key.created, retired))
    write_keyring(path, keep)
    return keep[0]


class SigningKeyring:
    """The service's signing keys: signs access tokens, verifies them, publishes the JWKS."""

    def __init__(
        self,
        path: Path,
        *,
        issuer: str,
        audience: str,
        access_ttl_seconds: int,
        generate: bool = False,
    ) -> None:
        self._path = path
        self._issuer = issuer
        self._audience = audience
        self._ttl = access_ttl_seconds
        self._keys: list[SigningKey] = []
        self._mtime: float | None = None
        self._checked = 0.0
        if generate and not path.exists():
            write_keyring(path, [new_key()])
        self._reload(force=True)

    @property
    def available(self) -> bool:
        self._reload()
        return any(k.retired is None for k in self._keys)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < _RELOAD_EVERY:
            return
        self._checked = now
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            self._keys, self._mtime = [], None
            return
        if mtime != self._mtime:
            self._keys = parse_keyring(self._path.read_text())
            self._mtime = mtime

    def _published(self) -> list[SigningKey]:
        now = datetime.now(UTC)
        ttl = timedelta(seconds=self._ttl)
        return [k for k in self._keys if k.retired is None or k.retired + ttl > now]

    def active(self) -> SigningKey:
        self._reload()
        for key in self._keys:
            if key.retired is None:
                return key
        raise SigningUnavailable(f"no active signing key in {self._path}")

    def jwks(self) -> dict[str, Any]:
        """The public keys verifiers must accept."""
        self._reload()
        return {"keys": [k.public_jwk() for k in self._published()]}

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.active()
        return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})

    def verify(self, token: str) -> dict[str, Any]:
        """The raw claims (`sid` included) of a valid access token signed by a published
        key; 401 otherwise."""
        self._reload()
        kid = unverified_kid(token)
        key = next((k for k in self._published() if k.kid == kid), None)
        if key is None:
            raise unauthorized("Unknown signing key.")
        return decode_access_token(
            token,
            key.private.public_key(),
            algorithms=["EdDSA"],
            audience=self._audience,
            issuer=self._issuer,
        )
