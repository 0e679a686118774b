"""Plans: the org's plan page (included requests against this period's usage, a
downgrade waiting for the period end, switching to a free plan, subscribing to a paid
one by Stripe Checkout when billing's provider is stripe) and the operator's plan list
(create, archive, put back on sale).

Billing decides everything: whether a switch is an upgrade (at once) or a downgrade
(at the period end), who may pick which plan (owners: free plans; admins: any).
This module never computes a price or a quota, it shows billing's.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem, OrgPlan, UsageSummary
from tollgate.console.pages.operator import operator_page, require_operator
from tollgate.console.web import (
    INTEGER,
    CurrentSession,
    OrgContext,
    Panel,
    backends,
    org_context,
    panel,
    render,
)

router = APIRouter()
PAST_QUOTA = ("reject_402", "reject_429", "overage")


def can_choose(ctx: OrgContext) -> bool:
    """Owners pick free plans and subscribe to paid ones; platform admins any plan."""
    return ctx.me.is_admin or ctx.role == "owner"


async def _period_usage(
    request: Request, token: str, org_id: uuid.UUID, current: Panel[OrgPlan | None]
) -> Panel[UsageSummary] | None:
    if not current.ok or current.value is None:
        return None
    start = current.value.period_start
    end = max(start, datetime.now(UTC))
    return await panel(backends(request).usage_summary(token, org_id, start, end))


async def _plan_page(
    request: Request,
    org_id: uuid.UUID,
    token: str,
    ctx: OrgContext,
    *,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    client = backends(request)
    current, plans, packs = await asyncio.gather(
        panel(client.org_plan(token, org_id)),
        panel(client.plans(token, archived=False, cursor=None)),
        panel(client.credit_packs(token)),
    )
    used = await _period_usage(request, token, org_id, current)
    on_sale = plans.value.items if plans.value else []
    stripe = packs.ok and packs.value is not None and packs.value.provider == "stripe"
    return render(
        request,
        "plan.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "current": current,
            "plans": plans,
            "stripe": stripe,
            # What an org without a plan is told to do: pick a free plan only when one is
            # on sale, buy one only when Checkout can sell it, else ask an operator.
            "free_on_sale": any(p.free for p in on_sale),
            "paid_on_sale": stripe and any(not p.free for p in on_sale),
            "any_on_sale": bool(on_sale),
            "used": used,
            "can_choose": can_choose(ctx),
            "problem": problem,
            "down": down,
            "changed": request.query_params.get("changed") == "1",
            "subscription": request.query_params.get("subscription"),
        },
        status=status,
    )


@router.get("/orgs/{org_id}/plan")
async def plan_page(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    ctx = await org_context(request, session, org_id)
    return await _plan_page(request, org_id, session.access_token, ctx)


async def _plan_id(request: Request) -> uuid.UUID | None:
    raw = (await request.form()).get("plan_id")
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


@router.post("/orgs/{org_id}/plan")
async def choose_plan(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Switch to a plan (billing refuses a paid one for owners: 403 plan-requires-payment)."""
    ctx = await org_context(request, session, org_id)
    plan_id = await _plan_id(request)
    if plan_id is None:
        return await _plan_page(request, org_id, session.access_token, ctx, status=400)
    try:
        await backends(request).choose_plan(session.access_token, org_id, plan_id)
    except BackendProblem as exc:
        status = exc.status if exc.status in (400, 403, 404, 409, 422) else 400
        return await _plan_page(
            request, org_id, session.access_token, ctx, problem=exc, status=status
        )
    except BackendDown:
        return await _plan_page(request, org_id, session.access_token, ctx, down=True, status=503)
    return RedirectResponse(f"/orgs/{org_id}/plan?changed=1", status_code=303)


@router.post("/orgs/{org_id}/plan/subscribe")
async def subscribe(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """A paid plan by Stripe Checkout: the browser goes to billing's checkout URL."""
    ctx = await org_context(request, session, org_id)
    plan_id = await _plan_id(request)
    if plan_id is None:
        return await _plan_page(request, org_id, session.access_token, ctx, status=400)
    try:
        url = await backends(request).subscription_checkout(session.access_token, org_id, plan_id)
    except BackendProblem as exc:
        status = exc.status if exc.status in (400, 403, 404, 409, 422) else 400
        return await _plan_page(
            request, org_id, session.access_token, ctx, problem=exc, status=status
        )
    except BackendDown:
        return await _plan_page(request, org_id, session.access_token, ctx, down=True, status=503)
    return RedirectResponse(url, status_code=303)


# --- operator: plans -------------------------------------------------------------------


def _plan_body(values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The create-plan form as billing's body, or the fields that are not numbers."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"name": values.get("name", ""), "currency": "usd"}
    for name in ("monthly_price", "overage_price", "trial_days"):
        raw = values.get(name, "") or "0"
        if INTEGER.fullmatch(raw):
            body[name] = int(raw)
        else:
            errors[name] = "number"
    included = values.get("included_requests", "")
    if included == "":
        body["included_requests"] = None
    elif INTEGER.fullmatch(included):
        body["included_requests"] = int(included)
    else:
        errors["included_requests"] = "number"
    if values.get("past_quota") in PAST_QUOTA:
        body["past_quota"] = values["past_quota"]
    return body, errors


async def _admin_plans(
    request: Request,
    session: CurrentSession,
    *,
    cursor: str | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    me, orgs = await require_operator(request, session)
    # `archived=true` lists every plan, archived ones included (admins).
    plans = await panel(backends(request).plans(session.access_token, archived=True, cursor=cursor))
    return operator_page(
        request,
        "admin_plans.html",
        me,
        orgs,
        "plans",
        status=status,
        plans=plans,
        past_quota=PAST_QUOTA,
        form=form or {"values": {}, "errors": {}},
        done=request.query_params.get("done", ""),
    )


@router.get("/admin/plans")
async def admin_plans(
    request: Request,
    session: CurrentSession,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    return await _admin_plans(request, session, cursor=cursor)


@router.post("/admin/plans")
async def create_plan(request: Request, session: CurrentSession) -> Response:
    await require_operator(request, session)
    form = await request.form()
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    body, errors = _plan_body(values)
    if errors:
        return await _admin_plans(
            request, session, form={"values": values, "errors": errors}, status=400
        )
    try:
        await backends(request).create_plan(session.access_token, body)
    except BackendProblem as exc:
        state = {"values": values, "errors": exc.field_errors, "problem": exc}
        return await _admin_plans(request, session, form=state, status=exc.status)
    except BackendDown:
        state = {"values": values, "errors": {}, "down": True}
        return await _admin_plans(request, session, form=state, status=503)
    return RedirectResponse("/admin/plans?done=created", status_code=303)


@router.post("/admin/plans/{plan_id}/archive")
async def archive_plan(request: Request, session: CurrentSession, plan_id: uuid.UUID) -> Response:
    """Take a plan off sale (`archived=0` in the form puts it back)."""
    await require_operator(request, session)
    archived = (await request.form()).get("archived", "1") != "0"
    await backends(request).set_plan_archived(session.access_token, plan_id, archived)
    return RedirectResponse("/admin/plans?done=archived", status_code=303)
