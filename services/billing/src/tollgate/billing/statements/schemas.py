"""Response bodies of the statement route."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ApiUsage(BaseModel):
    """Requests charged for one API during the month."""

    api_id: uuid.UUID | None
    requests: int
    credits: int = Field(description="Credits debited (positive).")


class Statement(BaseModel):
    """An org's month: opening + top-ups + refunds + adjustments + expiries - usage =
    closing (expiries are negative, so they are added as they are)."""

    org_id: uuid.UUID
    month: str = Field(description="YYYY-MM (UTC).")
    period_start: datetime
    period_end: datetime
    opening_balance: int
    top_ups: int
    refunds: int
    adjustments: int = Field(description="Signed sum of adjustments.")
    expiries: int = Field(description="Signed (≤ 0) sum of expired credits.")
    usage: list[ApiUsage]
    usage_total: int = Field(description="Credits debited for requests (positive).")
    closing_balance: int
