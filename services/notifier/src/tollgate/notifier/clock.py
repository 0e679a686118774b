"""Time for the notifier's schedulers, injectable so retry schedules and the 5-day
endpoint disable are tested with a controllable clock instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Something that says what time it is (UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)
