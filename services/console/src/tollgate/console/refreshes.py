"""Refreshing a session once per refresh token (per console process).

Accounts rotates refresh tokens and takes a second use of one for theft: it revokes the
whole session family. A browser often has several requests in flight with one cookie
(the live page's polling and its stream, two tabs), each finding the access token about
to expire; if each exchanged the refresh token, the second would sign the user out. So
one exchange per refresh token runs at a time and the requests that come meanwhile await
it; its new session is kept for `KEEP_SECONDS`, so that a request that left the browser
with the old cookie a moment earlier gets the same new session (and sets the cookie
again) instead of presenting a spent token. The session given back is the newest known
one of its line: a request holding an older cookie skips over refreshes made since.

Keys are SHA-256 digests of refresh tokens, never the tokens; at most `MAX_KEPT` new
sessions are kept (the oldest go first). Replicas do not share this: across replicas,
accounts gives a token presented again within `refresh_reuse_grace_seconds` of its
rotation a pair of its own instead of taking it for theft.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from tollgate.console.session import Session

KEEP_SECONDS = 60.0
MAX_KEPT = 10_000

Exchange = Callable[[str], Coroutine[Any, Any, Session]]
"""Swaps a refresh token for a new session at accounts (raises what the call raises)."""


def _digest(refresh_token: str) -> bytes:
    return hashlib.sha256(refresh_token.encode()).digest()


class SessionRefreshes:
    """The exchanges of refresh tokens in flight, and the sessions they gave lately."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, max_kept: int = MAX_KEPT) -> None:
        self._keep_seconds = keep_seconds
        self._max_kept = max_kept
        self._running: dict[bytes, asyncio.Task[Session]] = {}
        self._kept: OrderedDict[bytes, tuple[float, Session]] = OrderedDict()

    async def refreshed(self, session: Session, exchange: Exchange) -> Session:
        """The session following `session`: from the exchange of its refresh token that
        is running or ran in the last `KEEP_SECONDS`, else from a new one. A failed
        exchange raises its error to every request waiting for it and is not kept."""
        self._forget_old()
        key = _digest(session.refresh_token)
        kept = self._kept.get(key)
        if kept is not None:
            return self._newest(kept[1])
        task = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(exchange(session.refresh_token))
            self._running[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        # Shielded: a request that goes away does not cancel the others' exchange.
        return self._newest(await asyncio.shield(task))

    def _settle(self, key: bytes, task: asyncio.Task[Session]) -> None:
        self._running.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        self._kept[key] = (time.monotonic(), task.result())
        while len(self._kept) > self._max_kept:
            self._kept.popitem(last=False)

    def _newest(self, session: Session) -> Session:
        """`session`, or the session a later kept exchange gave for its refresh token."""
        for _ in range(len(self._kept)):
            kept = self._kept.get(_digest(session.refresh_token))
            if kept is None:
                break
            session = kept[1]
        return session

    def _forget_old(self) -> None:
        horizon = time.monotonic() - self._keep_seconds
        while self._kept and next(iter(self._kept.values()))[0] < horizon:
            self._kept.popitem(last=False)
