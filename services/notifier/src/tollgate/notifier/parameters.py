"""Types of the notifier API's path, query and body values that reach PostgreSQL.

Whatever a caller sends must be refused with a 422 here, never fail in the database
with a 500: text has no NUL (`tollgate.kit.requests.NUL_FREE`), ids fit a BIGINT, and a
time with an offset still lies inside the range a UTC timestamp can hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from tollgate.kit.requests import NUL_FREE, DateTimeText

MAX_BIGINT = 2**63 - 1


def _representable_in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc


UtcDatetime = Annotated[DateTimeText, AfterValidator(_representable_in_utc)]
"""A time with an offset (RFC 3339 text), converted to UTC (a 422 when that leaves year
1..9999)."""

DeliveryId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
"""A webhook delivery id (BIGINT identity)."""

PhoneNumber = Annotated[
    str | None, Query(min_length=1, max_length=32, pattern=NUL_FREE, description="Sender number.")
]
"""A sender number filter (numbers are stored as the provider sent them, up to 32 chars)."""
