"""Request and response bodies of the balance and billing-settings routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from tollgate.contracts.events.billing import BalanceMode, BalanceStatus
from tollgate.kit.requests import JSON_INTEGER, RequestModel

MAX_CREDITS = 10**15

Credits = Annotated[int, Field(ge=0, le=MAX_CREDITS), JSON_INTEGER]
"""A JSON integer of credits, 0 to MAX_CREDITS (not `"10"`, `true`, `false`, `1.5`)."""


class BalanceOut(BaseModel):
    """An org's current balance and spending status."""

    org_id: uuid.UUID
    balance: int = Field(description="Credits; negative only for postpaid orgs or overdraft.")
    status: BalanceStatus = Field(description="ok, low or exhausted.")
    mode: BalanceMode
    low_threshold: int = Field(description="Credits; status is low at or below this.")
    reserve: int = Field(description="Credits; a prepaid org is exhausted at or below this.")
    version: int = Field(description="Version of the last published balance state.")
    updated_at: datetime | None = Field(description="Last change; null for an unknown org.")


class BillingSettingsOut(BaseModel):
    """An org's billing settings."""

    org_id: uuid.UUID
    mode: BalanceMode
    low_threshold: int
    reserve: int


class BillingSettingsPatch(RequestModel):
    """A change to an org's billing settings; omitted fields are left as they are.

    `low_threshold` may be changed by org owners; `mode` and `reserve` by platform
    admins only (they decide whether and when the gateway stops the org)."""

    mode: BalanceMode | None = None
    low_threshold: Credits | None = None
    reserve: Credits | None = Field(
        None,
        description="Credits kept back: a prepaid org is declared exhausted at or below "
        "this balance, which bounds how far below zero it can go before the gateway "
        "stops it.",
    )
