"""Rate-limit windows as accepted in requests (strict) and stored (JSON).

Strict: a window is a JSON integer; `"10"`, `true` and `1.5` are refused (422), never
coerced."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tollgate.contracts.events.accounts import Limits
from tollgate.kit.requests import RequestModel, StrictCredits

_MAX = 1_000_000_000


class LimitsIn(RequestModel):
    """Requests per window; null (or absent) means unlimited in that window."""

    per_second: StrictCredits | None = Field(None, ge=1, le=_MAX)
    per_minute: StrictCredits | None = Field(None, ge=1, le=_MAX)
    per_hour: StrictCredits | None = Field(None, ge=1, le=_MAX)
    per_day: StrictCredits | None = Field(None, ge=1, le=_MAX)
    per_month: StrictCredits | None = Field(None, ge=1, le=_MAX, description="Sliding 30 days.")

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def as_contract(stored: dict[str, Any]) -> Limits:
    """The contract form of stored limits."""
    return Limits(**stored)
