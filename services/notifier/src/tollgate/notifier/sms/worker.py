"""The SMS router: routes stored inbound messages off the request path.

The provider webhook only stores the message and answers; this loop (inside the
service process) routes in batches, each batch in one transaction that also writes
the outbox event and the webhook deliveries, so a crash never half-routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tollgate.kit.db import SessionMaker
from tollgate.notifier.clock import Clock
from tollgate.notifier.sms.service import route_pending

log = logging.getLogger(__name__)


class SmsRouter:
    """Routes unrouted SMS until cancelled; `wake()` shortens the wait after a receipt."""

    def __init__(self, *, sessions: SessionMaker, clock: Clock, poll_seconds: float = 0.5) -> None:
        self._sessions = sessions
        self._clock = clock
        self._poll = poll_seconds
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """A message arrived: route it now rather than at the next poll."""
        self._wakeup.set()

    async def run_once(self) -> int:
        """Route one batch; return how many."""
        async with self._sessions() as session, session.begin():
            return await route_pending(session, now=self._clock.now())

    async def run(self) -> None:
        """Work until cancelled."""
        while True:
            try:
                routed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("routing SMS failed")
                routed = 0
            if routed == 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll)
