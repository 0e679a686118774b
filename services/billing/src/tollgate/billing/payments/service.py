"""Payment rules: starting a purchase, fulfilling it exactly once, booking the
provider's refunds and disputes, and keeping the org's subscription invoices.

A purchase is written (`pending`) before the provider is asked for a checkout, so a
payment for it is never orphaned. Provider events are applied at most once each
(`provider_events`, in the same transaction as their effect), and a purchase credits
at most once whatever the event (`completed` and `async_payment_succeeded` both
fulfil; the ledger entry's idempotency key is the purchase id). Refunds and disputes
are negative ledger adjustments in proportion to the amount taken back. A subscription
invoice the provider reports paid or failed is kept (`invoices`, one row per provider
invoice, `paid` final) beside its effect on the org's plan. Nothing here commits; the
transport owns the transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.config import CreditPack, Settings
from tollgate.billing.ledger import repository as ledger_repository
from tollgate.billing.ledger import service as ledger
from tollgate.billing.models import Invoice, Purchase
from tollgate.billing.payments import auto_top_up, repository
from tollgate.billing.plans import service as plans
from tollgate.contracts.ids import uuid7
from tollgate.kit.problems import NotFound, ServiceUnavailable

log = logging.getLogger(__name__)

STRIPE = "stripe"
# Stripe retries an unacknowledged event for up to three days (live mode).
_RETRIED_FOR_S = 3 * 24 * 3600


def pack_of(settings: Settings, pack_id: str) -> CreditPack:
    """The pack on sale with this id; 404 `pack-not-found` otherwise."""
    for pack in settings.credit_packs:
        if pack.id == pack_id:
            return pack
    raise NotFound("pack-not-found", f"No credit pack {pack_id!r} is on sale.")


async def open_purchase(
    session: AsyncSession, org_id: uuid.UUID, pack: CreditPack, provider: str
) -> uuid.UUID:
    """Write a pending purchase of `pack`; returns its id."""
    purchase_id = uuid7()
    await repository.insert_purchase(
        session,
        {
            "id": purchase_id,
            "org_id": org_id,
            "provider": provider,
            "pack_id": pack.id,
            "credits": pack.credits,
            "amount": pack.price,
            "currency": pack.currency,
            "status": "pending",
        },
    )
    return purchase_id


async def record_checkout(
    session: AsyncSession, purchase_id: uuid.UUID, checkout_session_id: str | None
) -> None:
    """Store the provider's checkout reference, or fail the purchase (None)."""
    if checkout_session_id is None:
        await repository.set_purchase(session, purchase_id, {"status": "failed"})
    else:
        await repository.set_purchase(
            session, purchase_id, {"checkout_session_id": checkout_session_id}
        )


async def purchases(
    session: AsyncSession, org_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> Sequence[Purchase]:
    return await repository.list_purchases(session, org_id, before=before, limit=limit)


async def purchase(session: AsyncSession, org_id: uuid.UUID, purchase_id: uuid.UUID) -> Purchase:
    found = await repository.get_purchase(session, org_id, purchase_id)
    if found is None:
        raise NotFound("purchase-not-found", "No such purchase.")
    return found


async def invoices(
    session: AsyncSession, org_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> Sequence[Invoice]:
    return await repository.list_invoices(session, org_id, before=before, limit=limit)


async def invoice(session: AsyncSession, org_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
    found = await repository.get_invoice(session, org_id, invoice_id)
    if found is None:
        raise NotFound("invoice-not-found", "No such invoice.")
    return found


# ---------------------------------------------------------------------- Stripe events


def _purchase_id(checkout: Mapping[str, Any]) -> uuid.UUID | None:
    raw = checkout.get("client_reference_id") or (checkout.get("metadata") or {}).get("purchase_id")
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


async def _fulfil(session: AsyncSession, checkout: Mapping[str, Any], settings: Settings) -> str:
    purchase_id = _purchase_id(checkout)
    found = await repository.lock_purchase(session, purchase_id) if purchase_id else None
    if found is None:
        log.warning("checkout for an unknown purchase", extra={"session": checkout.get("id")})
        return "unknown-purchase"
    if found.status == "paid":
        return "already-paid"
    total = checkout.get("amount_total")
    if total is not None and (total != found.amount or checkout.get("currency") != found.currency):
        log.error(
            "checkout amount differs from the purchase; not credited",
            extra={"purchase_id": str(found.id), "amount_total": total},
        )
        return "amount-mismatch"
    entry = await ledger.add_credits(
        session,
        found.org_id,
        settings,
        kind="top_up",
        amount=found.credits,
        actor="stripe",
        reason=f"credit pack {found.pack_id} (Stripe {checkout.get('id')})",
        idempotency_key=f"purchase:{found.id}",
    )
    payment_intent = checkout.get("payment_intent")
    await repository.set_purchase(
        session,
        found.id,
        {
            "status": "paid",
            "ledger_entry_id": entry.id,
            "checkout_session_id": checkout.get("id"),
            "payment_intent_id": payment_intent if isinstance(payment_intent, str) else None,
            "paid_at": datetime.now(UTC),
        },
    )
    return "credited"


async def _mark(session: AsyncSession, checkout: Mapping[str, Any], status: str) -> str:
    purchase_id = _purchase_id(checkout)
    found = await repository.lock_purchase(session, purchase_id) if purchase_id else None
    if found is None or found.status == "paid":
        return "ignored"
    await repository.set_purchase(
        session, found.id, {"status": status, "checkout_session_id": checkout.get("id")}
    )
    return status


async def _take_back(
    session: AsyncSession,
    settings: Settings,
    payment_intent: Any,
    *,
    minor_units: int,
    cumulative: bool,
    reason: str,
    key: str,
    event: Mapping[str, Any],
) -> str:
    """Debit the credits of `minor_units` of a purchase's price (a refund's cumulative
    amount, or one dispute's), never more than the purchase credited. A payment that
    bought no credits (a subscription invoice's) has nothing to take back: known by its
    invoice where the event names one. Any other payment no purchase names yet may be a
    Checkout still to be booked (its payment is named when it is): refused, so Stripe
    delivers it again, until Stripe's retries are over (`_RETRIED_FOR_S`): a Checkout
    not booked by then never will be by them."""
    if not isinstance(payment_intent, str):
        return "ignored"
    found = await repository.lock_purchase_by_payment_intent(session, payment_intent)
    created = event.get("created")
    retried_out = isinstance(created, int) and time.time() - created > _RETRIED_FOR_S
    if found is None and (event["data"]["object"].get("invoice") or retried_out):
        log.info(
            "a refund or dispute of a payment that bought no credits; nothing taken back",
            extra={"event_id": str(event.get("id")), "payment_intent": payment_intent},
        )
        return "not-a-credit-purchase"
    if found is None or found.status != "paid" or found.amount <= 0:
        # Stripe does not order events: the payment may not have been fulfilled yet.
        # Refusing (the transaction, and the event's claim, roll back) makes Stripe
        # deliver it again later, so a refund is never lost.
        raise ServiceUnavailable(
            "event-out-of-order", "The payment this event refers to is not booked yet."
        )
    share = min(found.credits, found.credits * max(0, minor_units) // found.amount)
    credits = share - found.refunded_credits if cumulative else share
    credits = min(credits, found.credits - found.refunded_credits)
    if credits <= 0:
        return "nothing-to-take"
    await ledger.add_credits(
        session,
        found.org_id,
        settings,
        kind="adjustment",
        amount=-credits,
        actor="stripe",
        reason=reason,
        idempotency_key=key,
        # The customer got this money back (or contests the payment): charging their
        # card again for the credits taken back would undo it.
        auto_top_up=False,
    )
    await repository.set_purchase(
        session, found.id, {"refunded_credits": found.refunded_credits + credits}
    )
    return "taken-back"


async def _dispute_won(
    session: AsyncSession, settings: Settings, dispute: Mapping[str, Any]
) -> str:
    """A dispute closed in the merchant's favour: the credits its opening took back are
    given back (once; nothing when it took none)."""
    taken = await ledger_repository.entry_keyed(session, f"stripe-dispute:{dispute.get('id')}")
    if taken is None or taken.amount >= 0:
        return "nothing-to-give-back"
    key = f"stripe-dispute-won:{dispute.get('id')}"
    if await ledger_repository.has_entry_keyed(session, key):
        return "already-given-back"  # another event saying the same
    payment_intent = dispute.get("payment_intent")
    found = (
        await repository.lock_purchase_by_payment_intent(session, payment_intent)
        if isinstance(payment_intent, str)
        else None
    )
    await ledger.add_credits(
        session,
        taken.org_id,
        settings,
        kind="adjustment",
        amount=-taken.amount,
        actor="stripe",
        reason=f"Stripe dispute {dispute.get('id')} won",
        idempotency_key=key,
    )
    if found is not None:
        await repository.set_purchase(
            session, found.id, {"refunded_credits": max(0, found.refunded_credits + taken.amount)}
        )
    return "given-back"


async def _subscribed(session: AsyncSession, checkout: Mapping[str, Any]) -> str:
    metadata = checkout.get("metadata") or {}
    subscription = checkout.get("subscription")
    try:
        org_id, plan_id = uuid.UUID(str(metadata["org_id"])), uuid.UUID(str(metadata["plan_id"]))
    except (KeyError, ValueError):
        return "unknown-plan"
    if not isinstance(subscription, str):
        return "ignored"
    customer = checkout.get("customer")
    await plans.attach_subscription(
        session,
        org_id,
        plan_id,
        subscription_id=subscription,
        customer_id=customer if isinstance(customer, str) else None,
    )
    return "subscribed"


def _invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    """The subscription an invoice bills (top-level on older API versions, under
    `parent.subscription_details` on newer ones)."""
    subscription = invoice.get("subscription")
    if not isinstance(subscription, str):
        details = (invoice.get("parent") or {}).get("subscription_details") or {}
        subscription = details.get("subscription")
    return subscription if isinstance(subscription, str) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def _keep_invoice(session: AsyncSession, invoice: Mapping[str, Any], *, paid: bool) -> None:
    """Keep a subscription invoice for the org's receipts. The org and plan come from
    the subscription's metadata Stripe copies onto the invoice (billing sets them at
    checkout), else from the org the subscription is attached to."""
    subscription = _invoice_subscription(invoice)
    details = (
        (invoice.get("parent") or {}).get("subscription_details")
        or invoice.get("subscription_details")
        or {}
    )
    metadata = details.get("metadata") or {}
    org_id, plan_id = _uuid(metadata.get("org_id")), _uuid(metadata.get("plan_id"))
    if org_id is None and subscription is not None:
        attached = await repository.org_plan_of_subscription(session, subscription)
        if attached is not None:
            org_id, plan_id = attached
    if org_id is None:
        log.warning("invoice of an unknown subscription", extra={"invoice": invoice.get("id")})
        return
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
    await repository.upsert_invoice(
        session,
        {
            "id": uuid7(),
            "org_id": org_id,
            "provider": STRIPE,
            "invoice_id": str(invoice.get("id")),
            "number": _text(invoice.get("number")),
            "subscription_id": subscription,
            "plan_id": plan_id,
            "status": "paid" if paid else "payment_failed",
            "amount_due": max(0, int(invoice.get("amount_due") or 0)),
            "amount_paid": max(0, int(invoice.get("amount_paid") or 0)) if paid else 0,
            "currency": str(invoice.get("currency") or "")[:3],
            "hosted_invoice_url": _text(invoice.get("hosted_invoice_url")),
            "invoice_pdf": _text(invoice.get("invoice_pdf")),
            "paid_at": (
                (
                    datetime.fromtimestamp(paid_at, UTC)
                    if isinstance(paid_at, int)
                    else datetime.now(UTC)
                )
                if paid
                else None
            ),
        },
    )


async def _with_subscription(
    invoice: Mapping[str, Any], apply: Callable[[str], Awaitable[str]]
) -> str:
    subscription = _invoice_subscription(invoice)
    return "ignored" if subscription is None else await apply(subscription)


async def _payment_method_and_auto_top_up(
    session: AsyncSession, obj: Mapping[str, Any], settings: Settings
) -> str:
    """A saved card (setup Checkout, or a payment kept for off-session use) is stored
    for auto top-up; a succeeded auto top-up charge is credited (once, whether the
    worker or this event comes first)."""
    outcome = "ignored"
    saved = auto_top_up.payment_method_of(obj)
    if saved is not None:
        await auto_top_up.save_payment_method(session, saved[0], saved[1], settings)
        outcome = "payment-method-saved"
    metadata = obj.get("metadata") or {}
    if obj.get("object") == "payment_intent" and metadata.get("purpose") == "auto_top_up":
        try:
            purchase_id = uuid.UUID(str(metadata.get("purchase_id")))
        except ValueError:
            return "unknown-purchase"
        received = (int(obj.get("amount_received") or 0), str(obj.get("currency")))
        return await auto_top_up.credit(
            session, purchase_id, str(obj.get("id")), settings, received=received
        )
    return outcome


async def _auto_top_up_failed(
    session: AsyncSession, obj: Mapping[str, Any], settings: Settings
) -> str:
    """A processing auto top-up charge (a bank debit) that failed after all."""
    metadata = obj.get("metadata") or {}
    if metadata.get("purpose") != "auto_top_up":
        return "ignored"
    try:
        purchase_id = uuid.UUID(str(metadata.get("purchase_id")))
    except ValueError:
        return "unknown-purchase"
    error = obj.get("last_payment_error") or {}
    code = error.get("code") if isinstance(error, Mapping) else None
    reason = "authentication_required" if code == "authentication_required" else "card_declined"
    return await auto_top_up.payment_failed(
        session, purchase_id, str(obj.get("id")), reason, settings
    )


async def apply_stripe_event(
    session: AsyncSession, event: Mapping[str, Any], settings: Settings
) -> str:
    """Apply one verified Stripe event, at most once per event id; returns what it did."""
    event_id, event_type = str(event["id"]), str(event["type"])
    if not await repository.claim_event(session, STRIPE, event_id, event_type):
        return "duplicate"
    obj: Mapping[str, Any] = event["data"]["object"]
    if event_type == "checkout.session.completed" and obj.get("mode") == "subscription":
        return await _subscribed(session, obj)
    if event_type in ("invoice.paid", "invoice.payment_failed"):
        await _keep_invoice(session, obj, paid=event_type == "invoice.paid")
    if event_type == "invoice.payment_failed":
        return await _with_subscription(
            obj,
            lambda sub: plans.subscription_payment_failed(
                session,
                sub,
                str(obj.get("id")),
                timedelta(seconds=settings.subscription_grace_seconds),
            ),
        )
    if event_type == "invoice.paid":
        return await _with_subscription(obj, lambda sub: plans.subscription_paid(session, sub))
    if event_type == "customer.subscription.deleted":
        return await plans.subscription_ended(session, str(obj.get("id")))
    if event_type == "customer.subscription.updated":
        if obj.get("status") in ("canceled", "incomplete_expired"):
            return await plans.subscription_ended(session, str(obj.get("id")))
        if obj.get("status") == "unpaid":
            return await plans.subscription_unpaid(session, str(obj.get("id")))
        if obj.get("status") == "active":
            return await plans.subscription_paid(session, str(obj.get("id")))
        return "ignored"
    if event_type == "checkout.session.completed":
        if obj.get("payment_status") in ("paid", "no_payment_required"):
            return await _fulfil(session, obj, settings)
        return await _mark(session, obj, "processing")  # a delayed method: wait
    if event_type == "checkout.session.async_payment_succeeded":
        return await _fulfil(session, obj, settings)
    if event_type == "checkout.session.async_payment_failed":
        return await _mark(session, obj, "failed")
    if event_type == "checkout.session.expired":
        return await _mark(session, obj, "expired")
    if event_type in ("setup_intent.succeeded", "payment_intent.succeeded"):
        return await _payment_method_and_auto_top_up(session, obj, settings)
    if event_type == "payment_intent.payment_failed":
        return await _auto_top_up_failed(session, obj, settings)
    if event_type == "charge.refunded":
        return await _take_back(
            session,
            settings,
            obj.get("payment_intent"),
            minor_units=int(obj.get("amount_refunded") or 0),
            cumulative=True,
            reason=f"Stripe refund of charge {obj.get('id')}",
            key=f"stripe-event:{event_id}",
            event=event,
        )
    if event_type == "charge.dispute.created":
        return await _take_back(
            session,
            settings,
            obj.get("payment_intent"),
            minor_units=int(obj.get("amount") or 0),
            cumulative=False,
            reason=f"Stripe dispute {obj.get('id')} of charge {obj.get('charge')}",
            key=f"stripe-dispute:{obj.get('id')}",
            event=event,
        )
    if event_type == "charge.dispute.closed" and obj.get("status") == "won":
        return await _dispute_won(session, settings, obj)
    return "ignored"
