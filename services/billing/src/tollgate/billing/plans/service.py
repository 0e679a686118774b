"""Plan rules: rate cards, putting an org on one, periods, suspension.

An org has at most one plan. A first plan, an upgrade (a higher monthly price) or a
move to a plan of the same price applies at once and keeps the current period, so
the requests already used count against the new quota; a downgrade waits for the
period end (`next_plan_id`). Every change of an org's plan, period or standing, and
every edit of a plan it is on, enqueues the org's `PlanState` (outbox) with the next
version; the gateway enforces it within a second. Nothing here commits.
"""

from __future__ import annotations

import calendar
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import OrgPlan, Plan
from tollgate.billing.plans import repository
from tollgate.billing.plans.schemas import PlanIn, PlanPatch
from tollgate.contracts.events.accounts import Limits
from tollgate.contracts.events.billing import (
    PastQuota,
    PlanPaymentFailed,
    PlanState,
    PlanStatus,
    PlanSuspended,
)
from tollgate.contracts.ids import uuid7
from tollgate.kit.audit import AuditChange
from tollgate.kit.outbox import emit
from tollgate.kit.problems import Conflict, Forbidden, NotFound

log = logging.getLogger(__name__)


def add_month(moment: datetime) -> datetime:
    """The same day and time one calendar month later (the 31st → the month's last day)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def no_plan(plan_id: uuid.UUID) -> NotFound:
    return NotFound("plan-not-found", f"No plan {plan_id}.")


def _name_taken(name: str) -> Conflict:
    return Conflict("plan-name-taken", f"A plan named {name!r} exists already.")


async def create_plan(session: AsyncSession, body: PlanIn) -> Plan:
    """Add a rate card; 409 `plan-name-taken` when a live plan has the name."""
    values = body.model_dump(mode="json")
    values["rate_limits"] = body.rate_limits.model_dump(exclude_none=True)
    values["id"] = uuid7()
    plan = await repository.insert_plan(session, values)
    if plan is None:
        raise _name_taken(body.name)
    return plan


async def get_plan(session: AsyncSession, plan_id: uuid.UUID) -> Plan:
    plan = await repository.get_plan(session, plan_id)
    if plan is None:
        raise no_plan(plan_id)
    return plan


async def list_plans(
    session: AsyncSession, *, archived: bool, after: uuid.UUID | None, limit: int
) -> Sequence[Plan]:
    return await repository.list_plans(session, archived=archived, after=after, limit=limit)


async def update_plan(
    session: AsyncSession,
    plan_id: uuid.UUID,
    patch: PlanPatch,
    change: AuditChange | None = None,
) -> Plan:
    """Change a plan's terms; every org on it gets its new `PlanState` at once. `change`
    receives the terms before and after, for the audit record."""
    plan = await repository.get_plan(session, plan_id, lock=True)
    if plan is None:
        raise no_plan(plan_id)
    before = _terms(plan)
    values: dict[str, Any] = patch.model_dump(
        exclude_none=True, exclude={"unlimited_requests", "rate_limits"}, mode="json"
    )
    if patch.unlimited_requests:
        values["included_requests"] = None
    if patch.rate_limits is not None:
        values["rate_limits"] = patch.rate_limits.model_dump(exclude_none=True)
    if not values:
        return plan
    values["updated_at"] = datetime.now(UTC)
    if not await repository.update_plan(session, plan_id, values):
        raise _name_taken(str(values.get("name")))
    plan = await get_plan(session, plan_id)
    if change is not None:
        change.note(before, _terms(plan))
    now = datetime.now(UTC)
    for org_plan in await repository.lock_orgs_on_plan(session, plan_id):
        if org_plan.plan_id == plan_id:
            await _publish(session, org_plan, plan, now)
    return plan


def _terms(plan: Plan) -> dict[str, Any]:
    """A plan's terms as the audit log compares them (not its bookkeeping times)."""
    return {
        column.key: getattr(plan, column.key)
        for column in Plan.__table__.columns
        if column.key not in ("id", "created_at", "updated_at")
    }


def plan_state(org_plan: OrgPlan, plan: Plan, now: datetime) -> PlanState:
    """The contract state of an org's plan."""
    return PlanState(
        org_id=org_plan.org_id,
        plan_id=plan.id,
        plan_name=plan.name,
        status=PlanStatus(org_plan.status),
        included_requests=plan.included_requests,
        past_quota=PastQuota(plan.past_quota),
        overage_price=plan.overage_price,
        rate_limits=Limits.model_validate(plan.rate_limits),
        period_start=org_plan.period_start,
        period_end=org_plan.period_end,
        trial_ends_at=org_plan.trial_ends_at,
        version=org_plan.version,
        as_of=now,
    )


async def _publish(session: AsyncSession, org_plan: OrgPlan, plan: Plan, now: datetime) -> None:
    org_plan.version += 1
    org_plan.updated_at = now
    state = plan_state(org_plan, plan, now)
    await session.flush()  # the loaded row carries the change (unit of work)
    await emit(session, state, subject=state.kafka_key())


@dataclass(frozen=True)
class OrgPlanView:
    """An org's plan row with the plans it names."""

    org_plan: OrgPlan
    plan: Plan
    next_plan: Plan | None


async def _view(session: AsyncSession, org_plan: OrgPlan) -> OrgPlanView:
    plan = await get_plan(session, org_plan.plan_id)
    following = await get_plan(session, org_plan.next_plan_id) if org_plan.next_plan_id else None
    return OrgPlanView(org_plan, plan, following)


async def org_plan(session: AsyncSession, org_id: uuid.UUID) -> OrgPlanView:
    """The org's plan; 404 `no-plan` when it has none."""
    row = await repository.get_org_plan(session, org_id)
    if row is None:
        raise NotFound("no-plan", "The organisation is not on a plan.")
    return await _view(session, row)


def _start_trial(row: OrgPlan, plan: Plan, now: datetime) -> None:
    """A first trial, for an org in good standing (a trial never lifts a suspension or
    ends a payment's grace)."""
    if plan.trial_days and not row.trial_used and row.status == PlanStatus.ACTIVE.value:
        row.status = PlanStatus.TRIALING.value
        row.trial_ends_at = now + timedelta(days=plan.trial_days)
        row.trial_used = True


async def assign_plan(
    session: AsyncSession,
    org_id: uuid.UUID,
    plan_id: uuid.UUID,
    *,
    by_admin: bool,
    change: AuditChange | None = None,
    archived_too: bool = False,
) -> OrgPlanView:
    """Put an org on a plan. Owners may choose free plans only (a paid plan is paid
    for first: an admin assigns it, or a subscription does), and none while a
    subscription pays for their plan (it would go on billing them); archived plans are
    refused (`archived_too`: a subscription paid for before the plan was archived).
    A first plan, an upgrade or a same-price move applies now, a downgrade at the
    period end; choosing the current plan cancels a pending downgrade. `change`
    receives the org's plan before and after, for the audit record."""
    plan = await repository.get_plan(session, plan_id)
    if plan is None or (plan.archived and not archived_too):
        raise no_plan(plan_id)
    if plan.monthly_price > 0 and not by_admin:
        raise Forbidden(
            "plan-requires-payment",
            "A paid plan starts once it is paid for; ask an operator or subscribe.",
        )
    now = datetime.now(UTC)
    row = await repository.lock_org_plan(session, org_id)
    if row is None:
        first = {
            "org_id": org_id,
            "plan_id": plan.id,
            "status": PlanStatus.ACTIVE.value,
            "period_start": now,
            "period_end": add_month(now),
            "version": 0,
        }
        inserted = await repository.insert_org_plan(session, first)
        row = await repository.lock_org_plan(session, org_id)
        assert row is not None
        if inserted:
            _start_trial(row, plan, now)
            await _publish(session, row, plan, now)
            return await _noted(session, row, _placement(None), change)
        # Another first assignment wrote the row meanwhile: this one is a change of it.
    if not by_admin:
        refuse_owner_change(row)
    before = _placement(row)
    current = await get_plan(session, row.plan_id)
    if not by_admin and _payment_suspended(row) and plan.monthly_price == 0:
        # The paid plan's subscription ended unpaid: a free plan now, in good standing.
        row.plan_id, row.next_plan_id = plan.id, None
        row.status, row.suspended_by, row.grace_until = PlanStatus.ACTIVE.value, None, None
        await _publish(session, row, plan, now)
        return await _noted(session, row, before, change)
    if plan.id == current.id:
        if row.next_plan_id is not None:
            row.next_plan_id = None
            await _publish(session, row, plan, now)
        return await _noted(session, row, before, change)
    if plan.monthly_price < current.monthly_price:
        row.next_plan_id = plan.id  # a downgrade: at the period end
        await _publish(session, row, current, now)
        return await _noted(session, row, before, change)
    row.plan_id = plan.id
    row.next_plan_id = None
    _start_trial(row, plan, now)
    await _publish(session, row, plan, now)
    return await _noted(session, row, before, change)


def _operator_suspended(row: OrgPlan) -> bool:
    return row.status == PlanStatus.SUSPENDED.value and row.suspended_by == "operator"


def _payment_suspended(row: OrgPlan) -> bool:
    return row.status == PlanStatus.SUSPENDED.value and row.suspended_by != "operator"


def refuse_owner_change(row: OrgPlan | None) -> None:
    """What an owner may not change: the plan of an org an operator suspended (409
    `org-suspended`), or of one a subscription still pays for (409
    `subscription-active`: a second one, or another plan, would go on billing the
    org), suspended or not, until it has ended."""
    if row is None:
        return
    if _operator_suspended(row):
        raise Conflict(
            "org-suspended",
            "An operator suspended this organisation; only an operator can change its plan.",
        )
    if row.subscription_id is not None and row.subscription_ended_at is None:
        raise subscription_active()


async def refuse_owner_checkout(session: AsyncSession, org_id: uuid.UUID) -> None:
    """`refuse_owner_change`, for a subscription checkout."""
    refuse_owner_change(await repository.get_org_plan(session, org_id))


def subscription_active() -> Conflict:
    return Conflict(
        "subscription-active",
        "A subscription pays for this organisation's plan; it must be cancelled (by an "
        "operator, in Stripe) before another plan is chosen or subscribed to.",
    )


async def set_status(
    session: AsyncSession,
    org_id: uuid.UUID,
    status: PlanStatus,
    change: AuditChange | None = None,
) -> OrgPlanView:
    """Suspend (402 at the gateway) or reinstate an org's plan (`change`: as for
    `assign_plan`)."""
    row = await repository.lock_org_plan(session, org_id)
    if row is None:
        raise NotFound("no-plan", "The organisation is not on a plan.")
    before = _placement(row)
    # An operator's suspension is theirs: no paid invoice lifts it, only they do.
    row.suspended_by = "operator" if status is PlanStatus.SUSPENDED else None
    if row.status != status.value:
        row.status = status.value
        await _publish(session, row, await get_plan(session, row.plan_id), datetime.now(UTC))
    return await _noted(session, row, before, change)


def _placement(row: OrgPlan | None) -> dict[str, Any]:
    """An org's plan as the audit log compares it (none: every field null)."""
    names = ("plan_id", "next_plan_id", "status", "trial_ends_at")
    return {name: getattr(row, name) if row is not None else None for name in names}


async def _noted(
    session: AsyncSession, row: OrgPlan, before: dict[str, Any], change: AuditChange | None
) -> OrgPlanView:
    if change is not None:
        change.note(before, _placement(row))
    return await _view(session, row)


async def roll_periods(session: AsyncSession, now: datetime, limit: int = 500) -> int:
    """Start the next period of every org whose period ended (applying a waiting
    downgrade) and end finished trials; returns how many orgs changed."""
    rows = await repository.lock_periods_ended(session, now, limit)
    for row in rows:
        while row.period_end <= now:
            row.period_start, row.period_end = row.period_end, add_month(row.period_end)
            row.period_requests = 0
            if row.next_plan_id is not None:
                row.plan_id, row.next_plan_id = row.next_plan_id, None
        if row.trial_ends_at is not None and row.trial_ends_at <= now:
            row.trial_ends_at = None
            if row.status == PlanStatus.TRIALING.value:
                row.status = PlanStatus.ACTIVE.value
        await _publish(session, row, await get_plan(session, row.plan_id), now)
    return len(rows)


# ---------------------------------------------------------------- subscriptions


async def attach_subscription(
    session: AsyncSession,
    org_id: uuid.UUID,
    plan_id: uuid.UUID,
    *,
    subscription_id: str,
    customer_id: str | None,
) -> OrgPlanView:
    """A paid subscription started: the org is on the plan (at once, as an operator's
    assignment) and in good standing, paid by `subscription_id`."""
    view = await assign_plan(session, org_id, plan_id, by_admin=True, archived_too=True)
    row = view.org_plan
    row.subscription_id = subscription_id
    row.subscription_ended_at = None
    row.customer_id = customer_id
    if _payment_may_reinstate(row):
        row.status = PlanStatus.ACTIVE.value
        row.grace_until = None
        row.suspended_by = None
        await _publish(session, row, view.plan, datetime.now(UTC))
    await session.flush()
    return view


def _payment_may_reinstate(row: OrgPlan) -> bool:
    """Past due, or suspended for payment (not by an operator)."""
    return row.status == PlanStatus.PAST_DUE.value or _payment_suspended(row)


async def subscription_payment_failed(
    session: AsyncSession, subscription_id: str, invoice_id: str, grace: timedelta
) -> str:
    """An invoice failed: the org goes past due (still served) until the grace ends,
    and is told (`PlanPaymentFailed`). A second failure keeps the first deadline."""
    row = await repository.lock_org_plan_by_subscription(session, subscription_id)
    if row is None:
        return "unknown-subscription"
    if row.subscription_ended_at is not None:
        return "subscription-ended"  # an old invoice retried: the org is no longer on it
    if row.status not in (PlanStatus.ACTIVE.value, PlanStatus.TRIALING.value):
        return "already-" + row.status.replace("_", "-")
    now = datetime.now(UTC)
    plan = await get_plan(session, row.plan_id)
    row.status = PlanStatus.PAST_DUE.value
    row.grace_until = now + grace
    await _publish(session, row, plan, now)
    notice = PlanPaymentFailed(
        org_id=row.org_id,
        plan_id=plan.id,
        plan_name=plan.name,
        invoice_id=invoice_id,
        grace_until=row.grace_until,
        occurred_at=now,
    )
    await emit(session, notice, subject=notice.kafka_key())
    return "past-due"


async def subscription_paid(session: AsyncSession, subscription_id: str) -> str:
    """An invoice was paid, or Stripe says the subscription is active: a past-due or
    suspended org is reinstated at once. Nothing of an ended subscription reinstates an
    org (a late event, or an old invoice paid on its page): no subscription bills it
    any more, so the payment is the operator's to refund or honour, and it is logged."""
    row = await repository.lock_org_plan_by_subscription(session, subscription_id)
    if row is None:
        return "unknown-subscription"
    if row.subscription_ended_at is not None:
        log.warning(
            "a payment or status of an ended subscription; the org is left as it is",
            extra={"org_id": str(row.org_id), "subscription_id": subscription_id},
        )
        return "subscription-ended"
    if row.status not in (PlanStatus.PAST_DUE.value, PlanStatus.SUSPENDED.value):
        return "in-good-standing"
    if not _payment_may_reinstate(row):
        return "suspended-by-operator"
    row.status, row.grace_until, row.suspended_by = PlanStatus.ACTIVE.value, None, None
    await _publish(session, row, await get_plan(session, row.plan_id), datetime.now(UTC))
    return "reinstated"


async def _suspend(session: AsyncSession, row: OrgPlan, reason: str, now: datetime) -> None:
    plan = await get_plan(session, row.plan_id)
    row.status = PlanStatus.SUSPENDED.value
    row.suspended_by = "payment"
    row.grace_until = None
    await _publish(session, row, plan, now)
    notice = PlanSuspended(
        org_id=row.org_id, plan_id=plan.id, plan_name=plan.name, reason=reason, occurred_at=now
    )
    await emit(session, notice, subject=notice.kafka_key())


async def subscription_unpaid(session: AsyncSession, subscription_id: str) -> str:
    """Stripe gave up retrying an invoice and left the subscription `unpaid`: suspended
    for payment; the subscription lives on (paying the invoice makes it active again)."""
    row = await repository.lock_org_plan_by_subscription(session, subscription_id)
    if row is None:
        return "unknown-subscription"
    if row.status == PlanStatus.SUSPENDED.value or row.subscription_ended_at is not None:
        return "already-suspended"
    await _suspend(session, row, "invoice unpaid after the grace period", datetime.now(UTC))
    return "suspended"


async def subscription_ended(session: AsyncSession, subscription_id: str) -> str:
    """The subscription ended unpaid (cancelled by the provider): suspended."""
    row = await repository.lock_org_plan_by_subscription(session, subscription_id)
    if row is None:
        return "unknown-subscription"
    # It bills nothing more: the owner may choose again. The id stays, so its late
    # events are known for an ended subscription's, and change nothing.
    row.subscription_ended_at = row.subscription_ended_at or datetime.now(UTC)
    if row.status == PlanStatus.SUSPENDED.value:
        return "already-suspended"
    await _suspend(session, row, "the subscription ended", datetime.now(UTC))
    return "suspended"


async def suspend_after_grace(session: AsyncSession, now: datetime, limit: int = 500) -> int:
    """Suspend every past-due org whose grace has ended; returns how many."""
    rows = await repository.lock_grace_ended(session, now, limit)
    for row in rows:
        await _suspend(session, row, "invoice unpaid after the grace period", now)
    return len(rows)


@dataclass
class OverageMeter:
    """An org on an overage plan, locked for a debit batch: counts its requests in the
    current period and prices the ones past the included requests."""

    org_plan: OrgPlan
    included: int
    price: int

    def count(self, moments: Sequence[datetime]) -> int:
        """Count requests made at `moments` (those in the current period); returns how
        many of them are past the included requests (each costs `price`)."""
        row = self.org_plan
        counted = sum(1 for m in moments if row.period_start <= m < row.period_end)
        before = row.period_requests
        row.period_requests = before + counted
        return max(0, row.period_requests - self.included) - max(0, before - self.included)


async def overage_meters(
    session: AsyncSession, org_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, OverageMeter]:
    """Meters of the orgs among `org_ids` on overage plans (their rows locked)."""
    return {
        row.org_id: OverageMeter(row, plan.included_requests or 0, plan.overage_price)
        for row, plan in await repository.lock_overage_orgs(session, sorted(set(org_ids)))
    }
