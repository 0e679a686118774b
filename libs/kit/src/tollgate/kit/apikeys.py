"""API key format and hashing, shared by accounts (which issues keys) and the gateway
(which checks them).

A key looks like `tg_live_<22 base62 chars><6 base62 chars>`: 22 random characters
(≈131 bits from `secrets`) followed by a CRC-32 checksum of everything before it, so a
secret scanner (or the gateway, before any lookup) can tell a real key from noise.
Only a hash is ever stored or published: HMAC-SHA256 with the server pepper when one
is configured, plain SHA-256 otherwise, as 64 lowercase hex characters.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Literal

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_CHARS = 22
CHECKSUM_CHARS = 6
DISPLAY_PREFIX_CHARS = 4
Environment = Literal["live", "test"]
_KEY_RE = re.compile(rf"^tg_(live|test)_[0-9A-Za-z]{{{RANDOM_CHARS + CHECKSUM_CHARS}}}$")


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_CHARS)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly generated key: `raw` is shown to its owner once and never stored."""

    raw: str
    prefix: str
    last4: str
    environment: Environment


def generate(environment: Environment = "live") -> IssuedKey:
    """A new random key with its display parts."""
    body = f"tg_{environment}_" + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    raw = body + _checksum(body)
    return IssuedKey(
        raw=raw,
        prefix=display_prefix(raw),
        last4=raw[-4:],
        environment=environment,
    )


def display_prefix(raw: str) -> str:
    """The part of a key safe to show: `tg_live_AbCd`."""
    head = raw.split("_", 2)
    return f"tg_{head[1]}_{head[2][:DISPLAY_PREFIX_CHARS]}"


def well_formed(raw: str) -> bool:
    """True when `raw` has the key shape and a valid checksum (no lookup needed)."""
    if not _KEY_RE.match(raw):
        return False
    body, checksum = raw[:-CHECKSUM_CHARS], raw[-CHECKSUM_CHARS:]
    return hmac.compare_digest(_checksum(body), checksum)


def hash_key(raw: str, pepper: str = "") -> str:
    """The stored/published form of a key (64 lowercase hex)."""
    if pepper:
        return hmac.new(pepper.encode(), raw.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(raw.encode()).hexdigest()
