"""SQL of purchases, invoices and applied provider events. No business rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import Invoice, OrgPlan, ProviderEvent, Purchase


async def insert_purchase(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(Purchase).values(**values))


async def set_purchase(
    session: AsyncSession, purchase_id: uuid.UUID, values: dict[str, Any]
) -> None:
    await session.execute(update(Purchase).where(Purchase.id == purchase_id).values(**values))


async def lock_purchase(session: AsyncSession, purchase_id: uuid.UUID) -> Purchase | None:
    stmt = (
        select(Purchase)
        .where(Purchase.id == purchase_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_purchase_by_payment_intent(
    session: AsyncSession, payment_intent_id: str
) -> Purchase | None:
    stmt = (
        select(Purchase)
        .where(Purchase.payment_intent_id == payment_intent_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_purchase(
    session: AsyncSession, org_id: uuid.UUID, purchase_id: uuid.UUID
) -> Purchase | None:
    stmt = select(Purchase).where(Purchase.id == purchase_id, Purchase.org_id == org_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_purchases(
    session: AsyncSession, org_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> Sequence[Purchase]:
    """An org's purchases, newest first (ids are UUIDv7)."""
    stmt = select(Purchase).where(Purchase.org_id == org_id).order_by(Purchase.id.desc())
    if before is not None:
        stmt = stmt.where(Purchase.id < before)
    return (await session.execute(stmt.limit(limit))).scalars().all()


async def claim_event(session: AsyncSession, provider: str, event_id: str, event_type: str) -> bool:
    """Record a provider event as applied; False when it was applied before."""
    stmt = (
        insert(ProviderEvent)
        .values(provider=provider, event_id=event_id, event_type=event_type)
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(ProviderEvent.event_id)
    )
    return (await session.execute(stmt)).first() is not None


async def upsert_invoice(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert an invoice or update the one with its provider id; a `paid` invoice stays
    paid (the provider does not order its events)."""
    stmt = insert(Invoice).values(**values)
    paid = Invoice.__table__.c.status == "paid"
    keep_if_paid = {
        name: case((paid, Invoice.__table__.c[name]), else_=stmt.excluded[name])
        for name in ("status", "amount_paid", "paid_at")
    }
    stmt = stmt.on_conflict_do_update(
        constraint="uq_invoices_provider_invoice",
        set_={
            **keep_if_paid,
            "amount_due": stmt.excluded.amount_due,
            "number": func.coalesce(stmt.excluded.number, Invoice.__table__.c.number),
            "hosted_invoice_url": func.coalesce(
                stmt.excluded.hosted_invoice_url, Invoice.__table__.c.hosted_invoice_url
            ),
            "invoice_pdf": func.coalesce(
                stmt.excluded.invoice_pdf, Invoice.__table__.c.invoice_pdf
            ),
            "updated_at": func.now(),
        },
    )
    await session.execute(stmt)


async def org_plan_of_subscription(
    session: AsyncSession, subscription_id: str
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The org and plan a subscription pays for, when billing has attached it."""
    stmt = select(OrgPlan.org_id, OrgPlan.plan_id).where(OrgPlan.subscription_id == subscription_id)
    row = (await session.execute(stmt)).first()
    return None if row is None else (row.org_id, row.plan_id)


async def get_invoice(
    session: AsyncSession, org_id: uuid.UUID, invoice_id: uuid.UUID
) -> Invoice | None:
    stmt = select(Invoice).where(Invoice.id == invoice_id, Invoice.org_id == org_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_invoices(
    session: AsyncSession, org_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> Sequence[Invoice]:
    """An org's invoices, newest first (ids are UUIDv7)."""
    stmt = select(Invoice).where(Invoice.org_id == org_id).order_by(Invoice.id.desc())
    if before is not None:
        stmt = stmt.where(Invoice.id < before)
    return (await session.execute(stmt.limit(limit))).scalars().all()
