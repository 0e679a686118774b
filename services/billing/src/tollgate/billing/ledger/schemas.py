"""Request and response bodies of the credits and transactions routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tollgate.kit.pagination import Page
from tollgate.kit.requests import RequestModel, StrictCredits

MAX_AMOUNT = 10**12

EntryKind = Literal["debit", "top_up", "adjustment", "refund", "expiry"]


class TopUpIn(RequestModel):
    """Credits to add to an org's balance."""

    amount: StrictCredits = Field(
        ge=1, le=MAX_AMOUNT, description="Credits to add (a JSON integer)."
    )
    reason: str = Field(
        "top-up",
        min_length=1,
        max_length=500,
        description="Shown in the ledger.",
    )


class AdjustmentIn(RequestModel):
    """A correction of an org's balance: `adjustment` (either sign), `refund` (positive)
    or `expiry` (negative)."""

    # The sign rules, stated in the document too (JSON Schema `not`/`if`/`then`), so
    # clients and the schema fuzzing know a zero amount or a negative refund is invalid.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"properties": {"amount": {"not": {"const": 0}}}},
                {
                    "if": {"properties": {"kind": {"const": "refund"}}, "required": ["kind"]},
                    "then": {"properties": {"amount": {"minimum": 1}}},
                },
                {
                    "if": {"properties": {"kind": {"const": "expiry"}}, "required": ["kind"]},
                    "then": {"properties": {"amount": {"maximum": -1}}},
                },
            ]
        }
    )

    amount: StrictCredits = Field(
        ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="Signed credits (a JSON integer); never zero."
    )
    kind: Literal["adjustment", "refund", "expiry"] = "adjustment"
    reason: str = Field(min_length=1, max_length=500, description="Why; shown in the ledger.")

    @model_validator(mode="after")
    def _sign_matches_kind(self) -> AdjustmentIn:
        if self.amount == 0:
            raise ValueError("amount must not be zero")
        if self.kind == "refund" and self.amount < 0:
            raise ValueError("a refund adds credits: amount must be positive")
        if self.kind == "expiry" and self.amount > 0:
            raise ValueError("an expiry removes credits: amount must be negative")
        return self


class LedgerEntryOut(BaseModel):
    """One credit movement."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org_id: uuid.UUID
    kind: EntryKind
    amount: int = Field(description="Signed credits: negative for debits and expiries.")
    balance_after: int = Field(description="The org's balance right after this entry.")
    actor: str = Field(
        description="`gateway` for debits, `cli` for the `top-up` command's top-ups, "
        "`admin:<user id>` otherwise."
    )
    reason: str
    api_id: uuid.UUID | None = Field(description="API charged (debits only).")
    request_count: int = Field(description="Requests summed into a debit; 0 otherwise.")
    created_at: datetime


TransactionPage = Page[LedgerEntryOut]
"""A page of ledger entries, newest first."""


class KindTotal(BaseModel):
    """What an org's entries of one kind add up to in a range."""

    kind: EntryKind
    entries: int = Field(description="How many entries.")
    amount: int = Field(
        description="Their signed credits, summed: negative for debits and expiries."
    )
    request_count: int = Field(description="Requests summed into them (debits); 0 otherwise.")


class TransactionTotals(BaseModel):
    """An org's ledger entries in a range, added up by kind; a kind without entries in
    the range is left out."""

    kinds: list[KindTotal]
