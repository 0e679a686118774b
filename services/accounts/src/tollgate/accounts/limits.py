"""Rate-limit windows as accepted in requests (strict) and stored (JSON)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tollgate.contracts.events.accounts import Limits
from tollgate.kit.requests import RequestModel

_MAX = 1_000_000_000


class LimitsIn(RequestModel):
    """Requests per window; null (or absent) means unlimited in that window."""

    per_second: int | None = Field(None, ge=1, le=_MAX)
    per_minute: int | None = Field(None, ge=1, le=_MAX)
    per_hour: int | None = Field(None, ge=1, le=_MAX)
    per_day: int | None = Field(None, ge=1, le=_MAX)
    per_month: int | None = Field(None, ge=1, le=_MAX, description="Sliding 30 days.")

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def as_contract(stored: dict[str, Any]) -> Limits:
    """The contract form of stored limits."""
    return Limits(**stored)
