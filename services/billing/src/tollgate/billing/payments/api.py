"""HTTP transport of payments: credit packs, checkout, receipts (purchases and
subscription invoices) and Stripe's webhook.

Customers (org owners) start a Checkout for a credit pack and are redirected to the
provider; members read their purchases and subscription invoices (receipts). Stripe
calls the webhook, which is authenticated by its signature (signing secret, timestamp
within the tolerance), never by a token; a forged or stale one is a 400 and changes
nothing.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
import stripe
from fastapi import APIRouter, Request

from tollgate.billing.config import CurrentSettings
from tollgate.billing.payments import service
from tollgate.billing.payments.providers import (
    PlanTerms,
    app_provider,
    not_configured,
)
from tollgate.billing.payments.schemas import (
    CheckoutIn,
    CheckoutOut,
    CreditPackOut,
    CreditPacksOut,
    InvoiceOut,
    InvoicePage,
    PurchaseOut,
    PurchasePage,
    SubscriptionCheckoutIn,
    SubscriptionCheckoutOut,
)
from tollgate.billing.plans import service as plans
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import Cursor, PageSize, next_cursor_of, uuid_cursor
from tollgate.kit.problems import BadRequest, Conflict, NotFound, documented_problems

log = logging.getLogger(__name__)

router = APIRouter(tags=["payments"])

_ORG_ERRORS = documented_problems(
    {
        401: "Missing or invalid token.",
        403: "Role too low.",
        404: (
            "Not a member of this organisation, or no such pack, plan, purchase or invoice.",
            ["pack-not-found", "plan-not-found", "purchase-not-found", "invoice-not-found"],
        ),
        409: (
            "Card payments are not set up (manual provider), the plan is free, a "
            "subscription already pays for the org's plan, or an operator suspended it.",
            ["payments-not-configured", "plan-is-free", "subscription-active", "org-suspended"],
        ),
        422: (
            "Invalid body or query, or a cursor that is not one of ours.",
            ["invalid-cursor"],
        ),
        503: ("The payment provider did not answer.", ["payment-provider-unavailable"]),
    }
)
_WEBHOOK_ERRORS = documented_problems(
    {
        400: (
            "Signature missing, forged or too old, or not a Stripe event.",
            ["invalid-signature", "invalid-event"],
        ),
        404: ("Stripe is not configured here.", ["payments-not-configured"]),
        503: (
            "A refund or dispute for a payment not booked yet: Stripe delivers it again.",
            ["event-out-of-order"],
        ),
    }
)


@router.get("/credit-packs", response_model=CreditPacksOut, responses=_ORG_ERRORS)
async def list_credit_packs(
    settings: CurrentSettings, principal: CurrentPrincipal
) -> CreditPacksOut:
    """The credit packs on sale, and whether they can be bought by card here."""
    return CreditPacksOut(
        provider="stripe" if settings.payment_provider == "stripe" else "manual",
        packs=[CreditPackOut.model_validate(p.model_dump()) for p in settings.credit_packs],
    )


@router.post(
    "/orgs/{org_id}/checkout-sessions",
    status_code=201,
    response_model=CheckoutOut,
    responses=_ORG_ERRORS,
)
async def start_checkout(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    body: CheckoutIn,
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
) -> CheckoutOut:
    """Buy a credit pack (org owners): a pending purchase and a Stripe Checkout Session
    that returns the customer to the console; the credits arrive when Stripe confirms
    the payment."""
    authorize_org(principal, org_id, Role.owner)
    pack = service.pack_of(settings, body.pack_id)
    provider = app_provider(request, settings)
    if provider.name == "manual":
        raise not_configured()
    async with db.begin():
        purchase_id = await service.open_purchase(db, org_id, pack, provider.name)
    return_url = f"{settings.console_url.rstrip('/')}/orgs/{org_id}/billing"
    try:
        checkout = await provider.create_checkout(
            purchase_id=purchase_id,
            org_id=org_id,
            pack=pack,
            return_url=return_url,
            save_card=body.save_card,
        )
    except BaseException:
        async with db.begin():
            await service.record_checkout(db, purchase_id, None)
        raise
    async with db.begin():
        await service.record_checkout(db, purchase_id, checkout.session_id)
    return CheckoutOut(purchase_id=purchase_id, checkout_url=checkout.url)


@router.post(
    "/orgs/{org_id}/subscription-checkout",
    status_code=201,
    response_model=SubscriptionCheckoutOut,
    responses=_ORG_ERRORS,
)
async def start_subscription_checkout(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    body: SubscriptionCheckoutIn,
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
) -> SubscriptionCheckoutOut:
    """Subscribe the org to a paid plan (org owners): a Stripe Checkout Session in
    subscription mode; the org is on the plan once Stripe confirms it, and stays on it
    while its invoices are paid (a failed one: past due, then suspended after the
    grace period)."""
    authorize_org(principal, org_id, Role.owner)
    async with db.begin():
        plan = await plans.get_plan(db, body.plan_id)
        await plans.refuse_owner_checkout(db, org_id)
    if plan.archived or plan.monthly_price == 0:
        raise (
            plans.no_plan(body.plan_id)
            if plan.archived
            else Conflict("plan-is-free", "A free plan needs no subscription: choose it directly.")
        )
    provider = app_provider(request, settings)
    if provider.name == "manual":
        raise not_configured()
    checkout = await provider.create_subscription_checkout(
        org_id=org_id,
        plan=PlanTerms(plan.id, plan.name, plan.monthly_price, plan.currency),
        return_url=f"{settings.console_url.rstrip('/')}/orgs/{org_id}/billing",
    )
    return SubscriptionCheckoutOut(checkout_url=checkout.url)


@router.get("/orgs/{org_id}/purchases", response_model=PurchasePage, responses=_ORG_ERRORS)
async def list_purchases(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> PurchasePage:
    """The org's purchases (receipts), newest first, one page at a time."""
    authorize_org(principal, org_id, Role.viewer)
    before = uuid_cursor(cursor)
    async with db.begin():
        rows = await service.purchases(db, org_id, before=before, limit=limit + 1)
        page, next_cursor = next_cursor_of(rows, limit, "id")
        return PurchasePage(
            items=[PurchaseOut.model_validate(row, from_attributes=True) for row in page],
            next_cursor=next_cursor,
        )


@router.get(
    "/orgs/{org_id}/purchases/{purchase_id}", response_model=PurchaseOut, responses=_ORG_ERRORS
)
async def get_purchase(
    org_id: uuid.UUID, purchase_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> PurchaseOut:
    """One purchase (receipt)."""
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        found = await service.purchase(db, org_id, purchase_id)
        return PurchaseOut.model_validate(found, from_attributes=True)


@router.get("/orgs/{org_id}/invoices", response_model=InvoicePage, responses=_ORG_ERRORS)
async def list_invoices(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> InvoicePage:
    """The org's subscription invoices (paid or failed), newest first, one page at a
    time."""
    authorize_org(principal, org_id, Role.viewer)
    before = uuid_cursor(cursor)
    async with db.begin():
        rows = await service.invoices(db, org_id, before=before, limit=limit + 1)
        page, next_cursor = next_cursor_of(rows, limit, "id")
        return InvoicePage(
            items=[InvoiceOut.model_validate(row, from_attributes=True) for row in page],
            next_cursor=next_cursor,
        )


@router.get(
    "/orgs/{org_id}/invoices/{invoice_id}", response_model=InvoiceOut, responses=_ORG_ERRORS
)
async def get_invoice(
    org_id: uuid.UUID, invoice_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> InvoiceOut:
    """One subscription invoice."""
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        found = await service.invoice(db, org_id, invoice_id)
        return InvoiceOut.model_validate(found, from_attributes=True)


@router.post("/payments/stripe/webhook", responses=_WEBHOOK_ERRORS)
async def stripe_webhook(
    settings: CurrentSettings, request: Request, db: DbSession
) -> dict[str, str]:
    """Stripe's events (checkout completed/expired/async payment, refunds, disputes),
    verified by the `Stripe-Signature` header; each event applies at most once."""
    secret = settings.stripe_webhook_secret.get_secret_value()
    if not secret:
        raise NotFound("payments-not-configured", "Stripe webhooks are not configured here.")
    payload = await request.body()
    header = request.headers.get("Stripe-Signature")
    if header is not None and not header.isascii():
        # Stripe signs in hex; the SDK's constant-time comparison raises TypeError on
        # non-ASCII text (a 500 for anyone who sent one).
        raise _invalid_signature()
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8", "replace"),
            header,
            secret,
            settings.stripe_webhook_tolerance_seconds,
        )
    except stripe.SignatureVerificationError:
        raise _invalid_signature() from None
    event = _stripe_event(payload)
    async with db.begin():
        outcome = await service.apply_stripe_event(db, event, settings)
    log.info(
        "stripe event", extra={"event_id": event["id"], "type": event["type"], "outcome": outcome}
    )
    return {"received": "true", "outcome": outcome}


def _invalid_signature() -> BadRequest:
    return BadRequest("invalid-signature", "The Stripe signature is missing, invalid or too old.")


def _stripe_event(payload: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        event = None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise BadRequest("invalid-event", "Not a Stripe event.")
    return event
