"""The SMS router: routes stored inbound messages off the request path.

The provider webhook only stores the message and answers; this loop (inside the
service process) routes in batches, each batch in one transaction that also writes
the outbox event and the webhook deliveries, so a crash never half-routes.
"""

from __future__ import annotations

import asyncio

from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every
from tollgate.notifier.clock import Clock
from tollgate.notifier.sms.service import route_pending


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
        """Work until cancelled: again at once after a batch, else at the next poll or
        `wake()`."""

        async def step() -> bool:
            return await self.run_once() > 0

        await every(self._poll, step, name="sms router", wake=self._wakeup)
