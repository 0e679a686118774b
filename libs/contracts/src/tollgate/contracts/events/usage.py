"""Events the usage service publishes on `tollgate.usage.events.v1` (key `org_id`).

Usage counts requests per key from the gateway's request stream and tells the org
when a key approaches or reaches its daily or monthly quota, so the notifier can send
an email or webhook before clients start seeing 429s.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from tollgate.contracts.envelope import EventData, UtcDatetime


class UsagePeriod(StrEnum):
    """The quota window a threshold applies to."""

    DAY = "day"
    MONTH = "month"


class UsageThresholdCrossed(EventData):
    """A key's usage in a period crossed a percentage of its limit.

    Sent by usage once per key, period and threshold (80 % and 100 % today). Kafka key:
    `org_id`.
    """

    event_type = "tollgate.usage.threshold.crossed.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation that owns the key.")
    key_id: UUID = Field(description="Key whose usage crossed the threshold.")
    period: UsagePeriod = Field(description="Quota window: day or month.")
    period_start: date = Field(description="First day of the window (UTC).")
    threshold_percent: int = Field(
        ge=1, le=100, description="Threshold crossed, in percent of `limit` (80 or 100)."
    )
    limit: int = Field(ge=1, description="Requests allowed in the window.")
    used: int = Field(ge=0, description="Requests counted in the window when crossed.")
    crossed_at: UtcDatetime = Field(description="When the threshold was crossed.")
