"""Request and response bodies of the plan routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tollgate.contracts.envelope import CREDITS_MAX
from tollgate.contracts.events.accounts import Limits
from tollgate.contracts.events.billing import PastQuota, PlanStatus
from tollgate.kit.pagination import Page
from tollgate.kit.requests import JSON_INTEGER, RequestModel

MAX_AMOUNT = 10**15

Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT), JSON_INTEGER]
"""A JSON integer, 0 to MAX_AMOUNT (not `"10"`, `true`, `1.5`)."""
Price = Annotated[int, Field(ge=0, le=CREDITS_MAX), JSON_INTEGER]
"""Credits per call: a JSON integer, 0 to the contracts' CREDITS_MAX."""
PlanName = Annotated[str, Field(min_length=1, max_length=100)]
Currency = Annotated[str, Field(pattern=r"^[a-z]{3}$", description="ISO 4217, lower case.")]
TrialDays = Annotated[int, Field(ge=0, le=365), JSON_INTEGER]


class RateLimitsIn(RequestModel):
    """Plan-wide limits over every key of the org; an omitted window is unlimited."""

    per_second: Annotated[int, Field(ge=1), JSON_INTEGER] | None = None
    per_minute: Annotated[int, Field(ge=1), JSON_INTEGER] | None = None
    per_hour: Annotated[int, Field(ge=1), JSON_INTEGER] | None = None
    per_day: Annotated[int, Field(ge=1), JSON_INTEGER] | None = None


class PlanIn(RequestModel):
    """A new plan (platform admins)."""

    name: PlanName
    monthly_price: Amount = Field(description="Price per month in minor currency units; 0: free.")
    currency: Currency = "usd"
    included_requests: Amount | None = Field(
        None, description="Requests included per period; null: unlimited."
    )
    past_quota: PastQuota = Field(
        PastQuota.REJECT_402,
        description="Past the included requests: `reject_402` (problem `quota-exceeded`, "
        "402), `reject_429` (the same problem, 429) or `overage` (served).",
    )
    overage_price: Price = Field(0, description="Credits per call past the quota (overage).")
    rate_limits: RateLimitsIn = Field(default_factory=RateLimitsIn)
    trial_days: TrialDays = Field(0, description="Days of trial when an org first takes it.")


class PlanPatch(RequestModel):
    """A change to a plan; omitted fields are left as they are. Every org on the plan
    gets the new terms at once (the gateway within a second)."""

    name: PlanName | None = None
    monthly_price: Amount | None = None
    included_requests: Amount | None = None
    unlimited_requests: bool = Field(False, description="true: remove the quota.")
    past_quota: PastQuota | None = None
    overage_price: Price | None = None
    rate_limits: RateLimitsIn | None = None
    trial_days: TrialDays | None = None
    archived: bool | None = Field(
        None, description="true: off sale (orgs on it keep it); false: on sale again."
    )


class PlanOut(BaseModel):
    """A plan (rate card)."""

    id: uuid.UUID
    name: str
    monthly_price: int = Field(description="Minor currency units per month.")
    currency: str
    included_requests: int | None
    past_quota: PastQuota
    overage_price: int
    rate_limits: Limits
    trial_days: int
    free: bool = Field(description="true when the monthly price is 0 (a free tier).")
    archived: bool
    created_at: datetime


PlanPage = Page[PlanOut]


class OrgPlanIn(RequestModel):
    """Put an org on a plan: an upgrade (higher price) or a first plan applies at once,
    a downgrade at the end of the current period."""

    plan_id: uuid.UUID


class OrgPlanStatusIn(RequestModel):
    """Suspend an org's plan (the gateway answers 402) or reinstate it (admins)."""

    status: Literal["active", "suspended"]


class OrgPlanOut(BaseModel):
    """An org's plan and its current period."""

    org_id: uuid.UUID
    plan: PlanOut
    status: PlanStatus
    period_start: datetime
    period_end: datetime
    trial_ends_at: datetime | None
    next_plan: PlanOut | None = Field(description="A downgrade waiting for the period end.")
    version: int = Field(description="Version of the last published plan state.")
