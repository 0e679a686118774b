"""Rate-limit windows as accepted in requests (strict) and stored (JSON).

Strict: a window is a JSON integer (`10`, or `10.0`, which JSON Schema counts as one);
`"10"`, `true` and `1.5` are refused (422), never coerced."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from tollgate.contracts.events.accounts import Limits
from tollgate.kit.requests import JSON_INTEGER, RequestModel

_MAX = 1_000_000_000

# Bounds before the validator, in one Annotated: `Annotated[StrictCredits, Field(...)]`
# publishes pydantic's `ge`/`le` instead of JSON Schema's `minimum`/`maximum`.
Window = Annotated[int, Field(ge=1, le=_MAX), JSON_INTEGER]


class LimitsIn(RequestModel):
    """Requests per window; null (or absent) means unlimited in that window."""

    per_second: Window | None = None
    per_minute: Window | None = None
    per_hour: Window | None = None
    per_day: Window | None = None
    per_month: Window | None = Field(None, description="Sliding 30 days.")

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def as_contract(stored: dict[str, Any]) -> Limits:
    """The contract form of stored limits."""
    return Limits(**stored)
