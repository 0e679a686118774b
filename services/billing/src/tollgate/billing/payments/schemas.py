"""Request and response bodies of the payment routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tollgate.kit.pagination import Page
from tollgate.kit.requests import RequestModel


class CreditPackOut(BaseModel):
    """A credit pack on sale."""

    id: str
    credits: int
    price: int = Field(description="Minor currency units.")
    currency: str


class CreditPacksOut(BaseModel):
    """The packs on sale and whether card payments are available."""

    provider: Literal["manual", "stripe"] = Field(
        description="`stripe`: buy by card (Checkout); `manual`: ask an operator."
    )
    packs: list[CreditPackOut]


class CheckoutIn(RequestModel):
    """Buy a credit pack: answers where to send the customer to pay."""

    pack_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    save_card: bool = Field(
        False, description="Keep the card this pack is paid with for auto top-ups."
    )


class CheckoutOut(BaseModel):
    """A started purchase and the provider's hosted payment page."""

    purchase_id: uuid.UUID
    checkout_url: str = Field(description="Redirect the customer here (Stripe Checkout).")


class PurchaseOut(BaseModel):
    """A receipt: what was bought, what it cost, the provider's references, and the
    ledger entry that credited it (once paid)."""

    id: uuid.UUID
    org_id: uuid.UUID
    provider: str
    pack_id: str
    credits: int
    amount: int = Field(description="Minor currency units.")
    currency: str
    status: Literal["pending", "processing", "paid", "failed", "expired"]
    checkout_session_id: str | None = Field(description="The provider's checkout reference.")
    payment_intent_id: str | None = Field(description="The provider's payment reference.")
    ledger_entry_id: uuid.UUID | None
    refunded_credits: int = Field(description="Credits taken back by refunds and disputes.")
    created_at: datetime
    paid_at: datetime | None


PurchasePage = Page[PurchaseOut]


class InvoiceOut(BaseModel):
    """A subscription invoice (the receipt of a paid plan): what the provider billed and
    collected, and its customer-facing invoice page and PDF."""

    id: uuid.UUID
    org_id: uuid.UUID
    provider: str
    invoice_id: str = Field(description="The provider's invoice id.")
    number: str | None = Field(description="The invoice number printed on it.")
    subscription_id: str | None = Field(description="The provider's subscription.")
    plan_id: uuid.UUID | None = Field(description="The plan it pays for.")
    status: Literal["paid", "payment_failed"]
    amount_due: int = Field(description="Minor currency units.")
    amount_paid: int = Field(description="Minor currency units.")
    currency: str
    hosted_invoice_url: str | None = Field(description="The provider's page of the invoice.")
    invoice_pdf: str | None = Field(description="The invoice as a PDF, at the provider.")
    created_at: datetime
    paid_at: datetime | None


InvoicePage = Page[InvoiceOut]


class SubscriptionCheckoutIn(RequestModel):
    """Subscribe to a paid plan."""

    plan_id: uuid.UUID


class SubscriptionCheckoutOut(BaseModel):
    """The provider's hosted page to start the subscription."""

    checkout_url: str = Field(description="Redirect the customer here (Stripe Checkout).")
