"""HTTP transport of plans: the rate cards (platform admins write, every signed-in
user reads) and each org's plan (members read; owners pick free plans, admins any
plan and suspend or reinstate)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tollgate.billing.models import Plan
from tollgate.billing.plans import service
from tollgate.billing.plans.schemas import (
    OrgPlanIn,
    OrgPlanOut,
    OrgPlanStatusIn,
    PlanIn,
    PlanOut,
    PlanPage,
    PlanPatch,
)
from tollgate.contracts.events.accounts import Limits
from tollgate.contracts.events.billing import PastQuota, PlanStatus
from tollgate.kit.audit import RecordedChange
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org, require_admin
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import Cursor, PageSize, next_cursor_of, uuid_cursor
from tollgate.kit.problems import documented_problems

router = APIRouter(tags=["plans"])

_ADMIN_ERRORS = documented_problems(
    {
        401: "Missing or invalid token.",
        403: "Platform admins only.",
        404: ("No such plan.", ["plan-not-found"]),
        409: ("A live plan has this name.", ["plan-name-taken"]),
        422: "Invalid body.",
    }
)
_READ_ERRORS = documented_problems(
    {
        401: "Missing or invalid token.",
        404: ("No such plan.", ["plan-not-found"]),
        422: ("Invalid query, or a cursor that is not one of ours.", ["invalid-cursor"]),
    }
)
_ORG_ERRORS = documented_problems(
    {
        401: "Missing or invalid token.",
        403: ("Role too low, or a paid plan chosen by an owner.", ["plan-requires-payment"]),
        404: (
            "Not a member of this organisation, no such plan, or no plan yet.",
            ["plan-not-found", "no-plan"],
        ),
        409: (
            "A subscription pays for the org's plan, or an operator suspended the org.",
            ["subscription-active", "org-suspended"],
        ),
        422: "Invalid body.",
    }
)


def plan_out(plan: Plan) -> PlanOut:
    return PlanOut(
        id=plan.id,
        name=plan.name,
        monthly_price=plan.monthly_price,
        currency=plan.currency,
        included_requests=plan.included_requests,
        past_quota=PastQuota(plan.past_quota),
        overage_price=plan.overage_price,
        rate_limits=Limits.model_validate(plan.rate_limits),
        trial_days=plan.trial_days,
        free=plan.monthly_price == 0,
        archived=plan.archived,
        created_at=plan.created_at,
    )


def _org_plan_out(view: service.OrgPlanView) -> OrgPlanOut:
    row = view.org_plan
    return OrgPlanOut(
        org_id=row.org_id,
        plan=plan_out(view.plan),
        status=PlanStatus(row.status),
        period_start=row.period_start,
        period_end=row.period_end,
        trial_ends_at=row.trial_ends_at,
        next_plan=plan_out(view.next_plan) if view.next_plan else None,
        version=row.version,
    )


@router.post("/plans", status_code=201, response_model=PlanOut, responses=_ADMIN_ERRORS)
async def create_plan(body: PlanIn, principal: CurrentPrincipal, db: DbSession) -> PlanOut:
    """Add a plan (platform admins)."""
    require_admin(principal)
    async with db.begin():
        plan = await service.create_plan(db, body)
        return plan_out(plan)


@router.get("/plans", response_model=PlanPage, responses=_READ_ERRORS)
async def list_plans(
    principal: CurrentPrincipal,
    db: DbSession,
    archived: Annotated[bool, Query(description="Include archived plans (admins).")] = False,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> PlanPage:
    """The plans on offer, oldest first, one page at a time (archived ones for admins
    who ask)."""
    after = uuid_cursor(cursor)
    async with db.begin():
        rows = await service.list_plans(
            db, archived=archived and principal.is_admin, after=after, limit=limit + 1
        )
        page, next_cursor = next_cursor_of(rows, limit, "id")
        return PlanPage(items=[plan_out(p) for p in page], next_cursor=next_cursor)


@router.get("/plans/{plan_id}", response_model=PlanOut, responses=_READ_ERRORS)
async def get_plan(plan_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession) -> PlanOut:
    """One plan."""
    async with db.begin():
        plan = await service.get_plan(db, plan_id)
        if plan.archived and not principal.is_admin:
            raise service.no_plan(plan_id)
        return plan_out(plan)


@router.patch("/plans/{plan_id}", response_model=PlanOut, responses=_ADMIN_ERRORS)
async def update_plan(
    plan_id: uuid.UUID,
    body: PlanPatch,
    principal: CurrentPrincipal,
    db: DbSession,
    change: RecordedChange,
) -> PlanOut:
    """Change a plan (platform admins); orgs on it get the new terms at once.
    `archived: true` takes it off sale (orgs on it keep it); `false` offers it again."""
    require_admin(principal)
    async with db.begin():
        plan = await service.update_plan(db, plan_id, body, change)
        return plan_out(plan)


@router.get("/orgs/{org_id}/plan", response_model=OrgPlanOut, responses=_ORG_ERRORS)
async def get_org_plan(org_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession) -> OrgPlanOut:
    """The org's plan, its current period and a downgrade waiting for the period end."""
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        return _org_plan_out(await service.org_plan(db, org_id))


@router.put("/orgs/{org_id}/plan", response_model=OrgPlanOut, responses=_ORG_ERRORS)
async def put_org_plan(
    org_id: uuid.UUID,
    body: OrgPlanIn,
    principal: CurrentPrincipal,
    db: DbSession,
    change: RecordedChange,
) -> OrgPlanOut:
    """Put the org on a plan: owners choose free plans, admins any. A first plan or an
    upgrade applies at once, a downgrade at the end of the period."""
    authorize_org(principal, org_id, Role.owner)
    async with db.begin():
        view = await service.assign_plan(
            db, org_id, body.plan_id, by_admin=principal.is_admin, change=change
        )
        return _org_plan_out(view)


@router.patch("/orgs/{org_id}/plan", response_model=OrgPlanOut, responses=_ORG_ERRORS)
async def set_org_plan_status(
    org_id: uuid.UUID,
    body: OrgPlanStatusIn,
    principal: CurrentPrincipal,
    db: DbSession,
    change: RecordedChange,
) -> OrgPlanOut:
    """Suspend the org's plan (the gateway answers 402 `plan-suspended`) or reinstate it
    (platform admins)."""
    require_admin(principal)
    async with db.begin():
        view = await service.set_status(db, org_id, PlanStatus(body.status), change)
        return _org_plan_out(view)
