"""TOTP (RFC 6238) second factor and recovery codes.

A code is accepted once: the time step it belongs to must be newer than the last
accepted one, so a code seen over a shoulder cannot be replayed within its window.
"""

from __future__ import annotations

import hmac
import secrets
import time

import pyotp

from tollgate.accounts.identity.tokens import secret_hash

ISSUER = "Tollgate"
RECOVERY_CODES = 10


def new_secret() -> str:
    """A fresh base32 TOTP seed."""
    return str(pyotp.random_base32())


def provisioning_uri(secret: str, email: str) -> str:
    """The `otpauth://` URI an authenticator app scans."""
    return str(pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER))


def matching_step(
    secret: str, code: str, last_step: int | None, now: float | None = None
) -> int | None:
    """The time step `code` is valid for (±1 step of clock drift), or None; steps at or
    before `last_step` are refused (replay)."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // totp.interval)
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(str(totp.generate_otp(step)), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Fresh recovery codes as shown to the user (`xxxxx-xxxxx`)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def recovery_code_hash(code: str) -> str:
    """Stored form of a recovery code (case and dashes ignored)."""
    return secret_hash(code.strip().lower().replace("-", ""))
