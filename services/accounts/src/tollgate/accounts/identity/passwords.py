"""Password hashing with bcrypt, off the event loop.

bcrypt reads at most 72 bytes, so longer passwords are refused (`check_new_password`,
a 422 `password-too-long`) rather than silently truncated. Checking a login for an
unknown email still runs bcrypt against a dummy hash, so response time does not reveal
which emails exist.
"""

from __future__ import annotations

import asyncio
import functools

import bcrypt

from tollgate.kit.problems import Unprocessable

MAX_PASSWORD_BYTES = 72


def check_new_password(password: str) -> None:
    """422 when bcrypt could not read all of `password` (more than 72 UTF-8 bytes; the
    documents can only state a length in characters)."""
    if len(password.encode("utf-8", errors="surrogatepass")) > MAX_PASSWORD_BYTES:
        raise Unprocessable(
            "password-too-long", f"Passwords are limited to {MAX_PASSWORD_BYTES} bytes of UTF-8."
        )


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"not a real password", bcrypt.gensalt(rounds))


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _check(password: str, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed)
    except ValueError:
        return False


async def hash_password(password: str, rounds: int) -> str:
    """The bcrypt hash of `password`."""
    return await asyncio.to_thread(_hash, password, rounds)


async def verify_password(password: str, hashed: str | None, rounds: int) -> bool:
    """True when `password` matches; always costs one bcrypt check."""
    target = hashed.encode() if hashed else _dummy_hash(rounds)
    ok = await asyncio.to_thread(_check, password, target)
    return ok and hashed is not None
