"""The signed-in session and CSRF protection.

The session is the user's access and refresh tokens, sealed (Fernet: encrypted and
authenticated) into a cookie that is `HttpOnly` (page JavaScript never sees a
token), `SameSite=Lax` and `Secure` over https. The console keeps no session table:
signing out revokes the refresh token at accounts and clears the cookie. When the
access token is about to expire the console refreshes it server side and re-seals the
cookie on the way out.

The access token names every org role of the user, so it grows with their orgs (past
~34 orgs the sealed value passes the 4,096 bytes a browser keeps in one cookie). The
sealed value is therefore cut into chunks of at most `CHUNK_CHARS`: `tg_session`,
`tg_session.1`, `tg_session.2`…, put together again on the way in. A chunk missing,
changed or left over from a longer session breaks the seal: no session.

CSRF: double-submit. Every visitor gets a random token in a second `HttpOnly`,
`SameSite=Lax` cookie; every form and HTMX request carries it back (hidden field
`csrf_token` or header `X-CSRF-Token`), and any state-changing request whose copy does
not match is refused with 403 before a handler runs. Another site can make a browser
send the cookie but cannot read it to put it in the form.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response

from tollgate.kit.sealing import Sealer, SealError, new_sealing_key

SESSION_COOKIE = "tg_session"
CHUNK_CHARS = 3800  # a cookie's name and value must fit in 4,096 bytes
CHUNK_NAME = re.compile(rf"{SESSION_COOKIE}(?:\.([1-9][0-9]{{0,2}}))?")
CSRF_COOKIE = "tg_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
REFRESH_MARGIN_SECONDS = 30


@dataclass
class Session:
    """The tokens of a signed-in user."""

    access_token: str
    refresh_token: str
    expires_at: float

    @property
    def expiring(self) -> bool:
        return time.time() > self.expires_at - REFRESH_MARGIN_SECONDS


class SessionCookies:
    """Seals sessions into cookies and opens them again."""

    def __init__(self, keys: str, max_age: int, secure: bool | None) -> None:
        self._sealer = Sealer(keys or new_sealing_key())
        self._max_age = max_age
        self._secure = secure

    def secure_for(self, request: Request) -> bool:
        return self._secure if self._secure is not None else request.url.scheme == "https"

    def load(self, request: Request) -> Session | None:
        chunks: list[str] = []
        while chunk := request.cookies.get(_chunk_name(len(chunks))):
            chunks.append(chunk)
        if not chunks:
            return None
        try:
            data = json.loads(self._sealer.unseal("".join(chunks)))
            return Session(str(data["a"]), str(data["r"]), float(data["x"]))
        except (SealError, ValueError, KeyError, TypeError):
            return None

    def store(self, request: Request, response: Response, session: Session) -> None:
        sealed = self._sealer.seal(
            json.dumps(
                {"a": session.access_token, "r": session.refresh_token, "x": session.expires_at}
            )
        )
        chunks = [sealed[i : i + CHUNK_CHARS] for i in range(0, len(sealed), CHUNK_CHARS)]
        for index, chunk in enumerate(chunks):
            response.set_cookie(
                _chunk_name(index),
                chunk,
                max_age=self._max_age,
                httponly=True,
                samesite="lax",
                secure=self.secure_for(request),
                path="/",
            )
        self._delete(request, response, _sent_chunks(request)[len(chunks) :])

    def clear(self, request: Request, response: Response) -> None:
        self._delete(request, response, _sent_chunks(request) or [SESSION_COOKIE])

    def _delete(self, request: Request, response: Response, names: list[str]) -> None:
        for name in names:
            response.delete_cookie(
                name, httponly=True, samesite="lax", secure=self.secure_for(request), path="/"
            )

    def seal_value(self, purpose: str, value: str) -> str:
        """Seal a short-lived value for a hidden form field, bound to `purpose` (one
        name per form), so a value sealed for one form opens in no other."""
        return self._sealer.seal(f"{purpose}\n{value}")

    def unseal_value(self, purpose: str, sealed: str) -> str | None:
        """The value `seal_value(purpose, ...)` sealed; None for anything else (a
        tampered value, one sealed for another form, a session cookie)."""
        try:
            opened = self._sealer.unseal(sealed).decode()
        except (SealError, UnicodeDecodeError):
            return None
        bound, _, value = opened.partition("\n")
        return value if bound == purpose else None


def _chunk_name(index: int) -> str:
    return SESSION_COOKIE if index == 0 else f"{SESSION_COOKIE}.{index}"


def _sent_chunks(request: Request) -> list[str]:
    """The names of the session's chunks the browser sent, in order."""
    found = (CHUNK_NAME.fullmatch(name) for name in request.cookies)
    return [_chunk_name(i) for i in sorted(int(m[1] or 0) for m in found if m)]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(cookie: str | None, sent: str | None) -> bool:
    return bool(cookie) and bool(sent) and hmac.compare_digest(str(cookie), str(sent))
