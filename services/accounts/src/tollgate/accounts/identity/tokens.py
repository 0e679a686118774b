"""Opaque single-use secrets (refresh, reset and invitation tokens, recovery codes).

Only `secret_hash(raw)` is stored; the raw value goes to its owner once (a response,
or sealed inside an event for the notifier to email).
"""

from __future__ import annotations

import hashlib
import secrets


def new_secret(nbytes: int = 32) -> tuple[str, str]:
    """A fresh random token and its stored hash."""
    raw = secrets.token_urlsafe(nbytes)
    return raw, secret_hash(raw)


def secret_hash(raw: str) -> str:
    """SHA-256 hex of a token (tokens carry ≥ 128 random bits, so no salt is needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()
