"""Auto top-up rules: the org's settings and saved payment method, charging a queued
top-up off-session, and crediting it exactly once.

A queued charge (see `crossings`) is charged by a worker: one charge per transaction,
taken with SKIP LOCKED so any number of workers and replicas share the queue; the
provider's idempotency key is the charge id, so a retry after a crash or a timeout
never charges twice. Success credits through the purchase path of credit packs (ledger
`top_up`, idempotency key `purchase:<id>`), which Stripe's `payment_intent.succeeded`
webhook also takes: whichever comes first credits, the other finds it paid. A decline,
a required authentication, or transient errors past the last try end the charge
`failed` with an `AutoTopUpFailed` notice and no credit. A payment Stripe answers
`processing` (a bank debit) leaves the queue as `processing` and is settled by its
webhook: `payment_intent.succeeded` credits it, `payment_intent.payment_failed` fails
it. A purchase that is paid is never marked failed. Nothing here commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.config import Settings
from tollgate.billing.ledger import service as ledger
from tollgate.billing.models import AutoTopUp, AutoTopUpCharge
from tollgate.billing.payments import auto_top_up_repository as repository
from tollgate.billing.payments import repository as purchases
from tollgate.billing.payments.auto_top_up_crossings import month_start
from tollgate.billing.payments.providers import (
    OffSessionCharge,
    PaymentProvider,
    SavedPaymentMethod,
)
from tollgate.contracts.events.billing import AutoTopUpFailed
from tollgate.kit.outbox import emit
from tollgate.kit.problems import Conflict, Unprocessable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoTopUpView:
    """An org's auto top-up settings as members see them (no payment method ids)."""

    enabled: bool
    threshold: int
    target: int
    monthly_cap: int
    currency: str
    payment_method_saved: bool
    spent_this_month: int
    last_charge: AutoTopUpCharge | None


async def view(session: AsyncSession, org_id: uuid.UUID, settings: Settings) -> AutoTopUpView:
    """The org's settings (disabled defaults when it has none) and this month's spend."""
    row = await repository.get(session, org_id)
    spent = await repository.spent_since(session, org_id, month_start(datetime.now(UTC)))
    last = await repository.last_charge(session, org_id)
    if row is None:
        return AutoTopUpView(False, 0, 0, 0, settings.auto_top_up_currency, False, spent, last)
    return AutoTopUpView(
        enabled=row.enabled,
        threshold=row.threshold,
        target=row.target,
        monthly_cap=row.monthly_cap,
        currency=row.currency,
        payment_method_saved=row.payment_method_id is not None,
        spent_this_month=spent,
        last_charge=last,
    )


async def configure(
    session: AsyncSession,
    org_id: uuid.UUID,
    settings: Settings,
    *,
    enabled: bool,
    threshold: int,
    target: int,
    monthly_cap: int,
) -> None:
    """Set the org's auto top-up; enabling needs a saved payment method (409
    `no-payment-method`) and a target above the threshold (422). Saving re-arms it."""
    if target <= threshold:
        raise Unprocessable(
            "target-not-above-threshold", "The target balance must be above the threshold."
        )
    row = await repository.get(session, org_id, lock=True)
    if enabled and (row is None or row.payment_method_id is None):
        raise Conflict(
            "no-payment-method",
            "Save a card for auto top-up first (POST /v1/orgs/{id}/auto-top-up/setup-session).",
        )
    values = {
        "org_id": org_id,
        "enabled": enabled,
        "threshold": threshold,
        "target": target,
        "monthly_cap": monthly_cap,
        "currency": settings.auto_top_up_currency,
        "armed": True,
    }
    await repository.upsert(session, values, update_only=[k for k in values if k != "org_id"])


async def save_payment_method(
    session: AsyncSession, org_id: uuid.UUID, method: SavedPaymentMethod, settings: Settings
) -> None:
    """Remember the card future auto top-ups charge (settings keep their values; an org
    without settings gets disabled ones)."""
    await repository.upsert(
        session,
        {
            "org_id": org_id,
            "enabled": False,
            "threshold": 0,
            "target": 1,
            "monthly_cap": 0,
            "currency": settings.auto_top_up_currency,
            "payment_method_id": method.payment_method_id,
            "customer_id": method.customer_id,
        },
        update_only=["payment_method_id", "customer_id"],
    )


def payment_method_of(obj: Mapping[str, Any]) -> tuple[uuid.UUID, SavedPaymentMethod] | None:
    """The org and saved card of a succeeded SetupIntent (auto top-up setup Checkout) or
    of a PaymentIntent paid with `setup_future_usage=off_session`; None otherwise."""
    metadata = obj.get("metadata") or {}
    method, customer = obj.get("payment_method"), obj.get("customer")
    if not isinstance(method, str) or not method:
        return None
    if obj.get("object") == "payment_intent" and obj.get("setup_future_usage") != "off_session":
        return None
    try:
        org_id = uuid.UUID(str(metadata.get("org_id")))
    except ValueError:
        return None
    return org_id, SavedPaymentMethod(method, customer if isinstance(customer, str) else None)


async def credit(
    session: AsyncSession,
    purchase_id: uuid.UUID,
    payment_intent_id: str | None,
    settings: Settings,
    *,
    received: tuple[int, str] | None = None,
) -> str:
    """Credit a paid auto top-up once (the worker's success and the webhook both land
    here); returns `credited`, `already-paid`, `unknown-purchase` or `amount-mismatch`
    (the provider reports another amount or currency than the charge: not credited).
    The charge is locked before the purchase, as the worker holds them."""
    await repository.lock_charge(session, purchase_id)
    found = await purchases.lock_purchase(session, purchase_id)
    if found is None:
        return "unknown-purchase"
    if found.status == "paid":
        return "already-paid"
    if received is not None and received != (found.amount, found.currency):
        log.error(
            "auto top-up amount differs from the charge; not credited",
            extra={"purchase_id": str(found.id), "received": received[0]},
        )
        return "amount-mismatch"
    entry = await ledger.add_credits(
        session,
        found.org_id,
        settings,
        kind="top_up",
        amount=found.credits,
        actor="stripe",
        reason=f"auto top-up (Stripe {payment_intent_id})",
        idempotency_key=f"purchase:{found.id}",
    )
    now = datetime.now(UTC)
    await purchases.set_purchase(
        session,
        found.id,
        {
            "status": "paid",
            "ledger_entry_id": entry.id,
            "payment_intent_id": payment_intent_id,
            "paid_at": now,
        },
    )
    # Paid, whatever the worker made of it (a processing debit, a timeout it gave up on).
    await repository.set_charge(
        session,
        found.id,
        {"status": "succeeded", "payment_intent_id": payment_intent_id, "finished_at": now},
    )
    return "credited"


async def payment_failed(
    session: AsyncSession,
    purchase_id: uuid.UUID,
    payment_intent_id: str,
    reason: str,
    settings: Settings,
) -> str:
    """Stripe's `payment_intent.payment_failed` of an auto top-up: a charge still
    processing fails (with its notice); anything else is left as it is."""
    charge = await repository.lock_charge(session, purchase_id)
    if charge is None:
        return "unknown-purchase"
    if charge.status != "processing":
        return "ignored"
    await _fail(session, charge, reason, payment_intent_id, settings)
    return "failed"


async def _fail(
    session: AsyncSession,
    charge: AutoTopUpCharge,
    reason: str,
    pi: str | None,
    settings: Settings,
    *,
    notify: bool = True,
) -> None:
    now = datetime.now(UTC)
    bought = await purchases.lock_purchase(session, charge.id)
    if bought is not None and bought.status == "paid":
        # Stripe's webhook credited it meanwhile: it succeeded after all.
        await repository.set_charge(session, charge.id, {"status": "succeeded", "finished_at": now})
        return
    await repository.set_charge(
        session,
        charge.id,
        {"status": "failed", "failure": reason, "payment_intent_id": pi, "finished_at": now},
    )
    await purchases.set_purchase(session, charge.id, {"status": "failed", "payment_intent_id": pi})
    if not notify:
        return
    balance = await repository.balance_of(session, charge.org_id)
    notice = AutoTopUpFailed(
        org_id=charge.org_id,
        charge_id=charge.id,
        amount=charge.amount,
        currency=charge.currency,
        reason=reason,
        balance=balance,
        occurred_at=now,
    )
    await emit(session, notice, subject=notice.kafka_key())
    log.info("auto top-up failed", extra={"org_id": str(charge.org_id), "reason": reason})


async def charge_next(
    session: AsyncSession, provider: PaymentProvider, settings: Settings
) -> str | None:
    """Charge the oldest due queued top-up (None: nothing due); returns its outcome."""
    now = datetime.now(UTC)
    charge = await repository.lock_next_due(session, now)
    if charge is None:
        return None
    saved: AutoTopUp | None = await repository.get(session, charge.org_id)
    if saved is None or not saved.enabled:
        # The owner turned it off after the crossing: nothing to tell them.
        await _fail(session, charge, "disabled", None, settings, notify=False)
        return "failed"
    if saved.payment_method_id is None:
        await _fail(session, charge, "payment_method_missing", None, settings)
        return "failed"
    result: OffSessionCharge = await provider.charge_off_session(
        charge_id=charge.id,
        org_id=charge.org_id,
        method=SavedPaymentMethod(saved.payment_method_id, saved.customer_id),
        amount=charge.amount,
        currency=charge.currency,
    )
    attempts = charge.attempts + 1
    if result.outcome == "succeeded":
        await credit(session, charge.id, result.payment_intent_id, settings)
        await repository.set_charge(
            session,
            charge.id,
            {
                "status": "succeeded",
                "attempts": attempts,
                "payment_intent_id": result.payment_intent_id,
                "finished_at": datetime.now(UTC),
            },
        )
        return "succeeded"
    if result.outcome == "processing":
        await repository.set_charge(
            session,
            charge.id,
            {
                "status": "processing",
                "attempts": attempts,
                "payment_intent_id": result.payment_intent_id,
            },
        )
        # Found by the PaymentIntent id, so a refund of it is taken back once paid.
        await purchases.set_purchase(
            session, charge.id, {"payment_intent_id": result.payment_intent_id}
        )
        return "processing"
    if result.outcome == "retry" and attempts < settings.auto_top_up_max_attempts:
        delay = settings.auto_top_up_retry_seconds * 2 ** (attempts - 1)
        await repository.set_charge(
            session,
            charge.id,
            {"attempts": attempts, "run_after": now + timedelta(seconds=delay)},
        )
        return "retry"
    await repository.set_charge(session, charge.id, {"attempts": attempts})
    await _fail(
        session,
        charge,
        result.failure or "provider_unavailable",
        result.payment_intent_id,
        settings,
    )
    return "failed"
