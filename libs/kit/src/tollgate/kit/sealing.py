"""Sealing: symmetric encryption for secrets that must cross a topic or rest in a table.

Upstream credentials travel from accounts to the gateway, and reset/invitation
tokens from accounts to the notifier, sealed with a key both ends hold (Fernet:
AES-128-CBC + HMAC-SHA256). Several keys may be configured, newest first, so keys
can be rotated: sealing uses the first, unsealing tries all. With no keys configured
the sealer still exists (so a service can run its other parts) but every seal/unseal
raises `SealError`; callers check `configured` to answer 503 up front.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SealError(ValueError):
    """A sealed value could not be opened (wrong key or tampered)."""


def new_sealing_key() -> str:
    """A fresh key (urlsafe base64 text) for settings."""
    return Fernet.generate_key().decode()


class Sealer:
    """Seals and unseals short secrets with the configured keys."""

    def __init__(self, keys: str | list[str]) -> None:
        key_list = [k.strip() for k in keys.split(",")] if isinstance(keys, str) else keys
        key_list = [k for k in key_list if k]
        self._fernet = MultiFernet([Fernet(k.encode()) for k in key_list]) if key_list else None

    @property
    def configured(self) -> bool:
        """False when no sealing key is set: every seal/unseal would fail."""
        return self._fernet is not None

    def _keys(self) -> MultiFernet:
        if self._fernet is None:
            raise SealError("no sealing keys configured")
        return self._fernet

    def seal(self, plaintext: str | bytes) -> str:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        return self._keys().encrypt(data).decode()

    def unseal(self, sealed: str) -> bytes:
        keys = self._keys()
        try:
            return keys.decrypt(sealed.encode())
        except InvalidToken as exc:
            raise SealError("cannot unseal value") from exc
