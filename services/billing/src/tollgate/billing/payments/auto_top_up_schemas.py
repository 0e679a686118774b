"""Request and response bodies of the auto top-up routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tollgate.kit.requests import JSON_INTEGER, RequestModel

MAX_CREDITS = 10**15

Credits = Annotated[int, Field(ge=0, le=MAX_CREDITS), JSON_INTEGER]
MinorUnits = Annotated[int, Field(ge=0, le=10**12), JSON_INTEGER]


class AutoTopUpIn(RequestModel):
    """An org's auto top-up: below `threshold`, charge the saved card for enough credits
    to reach `target`, never more than `monthly_cap` in a calendar month (UTC)."""

    enabled: bool = Field(description="Charge automatically (needs a saved card).")
    threshold: Credits = Field(description="Credits; a balance at or below it is topped up.")
    target: Credits = Field(description="Credits; the balance a top-up brings back (> threshold).")
    monthly_cap: MinorUnits = Field(
        description="Most charged per calendar month (UTC), in minor currency units."
    )


class AutoTopUpChargeOut(BaseModel):
    """One auto top-up: queued, succeeded or failed (and why)."""

    id: uuid.UUID = Field(description="Also the id of its purchase (receipt).")
    status: Literal["queued", "processing", "succeeded", "failed"]
    amount: int = Field(description="Minor currency units.")
    currency: str
    credits: int
    failure: str | None = Field(
        description="card_declined, authentication_required, monthly_cap_reached, "
        "provider_unavailable, payment_method_missing or disabled."
    )
    crossed_at: datetime = Field(description="When the balance crossed the threshold.")
    finished_at: datetime | None


class AutoTopUpOut(BaseModel):
    """An org's auto top-up settings and this month's spend."""

    enabled: bool
    threshold: int = Field(description="Credits.")
    target: int = Field(description="Credits.")
    monthly_cap: int = Field(description="Minor currency units per calendar month (UTC).")
    currency: str
    credits_per_unit: int = Field(description="Credits bought per minor currency unit.")
    payment_method_saved: bool = Field(description="A card is saved for off-session charges.")
    spent_this_month: int = Field(description="Minor units charged or being charged this month.")
    last_charge: AutoTopUpChargeOut | None = Field(description="The most recent top-up.")


class SetupSessionOut(BaseModel):
    """Where to send the customer to save a card for auto top-ups."""

    checkout_url: str
