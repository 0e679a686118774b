"""Orgs (the switcher's list, creating one) and an org's overview.

The overview asks usage and billing concurrently; either may be down, and its panels
then say so while the rest of the page renders. Its traffic figures are live traffic
unless `?mode=test` asks for the org's `tg_test_` keys (usage counts them apart).
"Credits used" is billing's figure, never usage's: every debit of the ledger in the
range (requests, overage, SMS), as the credits page lists them, whatever the mode
(test requests are never charged).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem
from tollgate.console.web import (
    CurrentSession,
    backends,
    identity,
    org_context,
    panel,
    refresh,
    render,
)

router = APIRouter()
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
OVERVIEW_RANGES = ("24h", "7d", "30d")
TRAFFIC_MODES = ("live", "test")
"""Usage's analytics count one mode at a time; its request log can show both (`all`)."""


def traffic_mode(name: str | None, allowed: tuple[str, ...] = TRAFFIC_MODES) -> str:
    """The mode a page shows: one of `allowed`, live by default (also for a hand-edited URL)."""
    return name if name in allowed else "live"


def time_range(name: str | None, allowed: tuple[str, ...]) -> tuple[str, datetime, datetime]:
    """A named range ending now (minute precision, as usage rounds); 24 h by default."""
    chosen = name if name in allowed else "24h"
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return chosen, end - RANGES[chosen], end


@router.get("/orgs")
async def org_list(request: Request, session: CurrentSession) -> Response:
    me, orgs = await identity(request, session)
    return render(request, "orgs.html", {"me": me, "orgs": orgs, "org": None})


@router.get("/orgs/new")
async def org_form(request: Request, session: CurrentSession) -> Response:
    me, orgs = await identity(request, session)
    return render(request, "org_new.html", {"me": me, "orgs": orgs, "org": None, "values": {}})


@router.post("/orgs/new")
async def org_create(
    request: Request, session: CurrentSession, name: Annotated[str, Form(max_length=400)]
) -> Response:
    client = backends(request)
    try:
        org = await client.create_org(session.access_token, name.strip())
    except (BackendDown, BackendProblem) as exc:
        me, orgs = await identity(request, session)
        return render(
            request,
            "org_new.html",
            {
                "me": me,
                "orgs": orgs,
                "org": None,
                "values": {"name": name},
                "problem": exc if isinstance(exc, BackendProblem) else None,
                "down": isinstance(exc, BackendDown),
            },
            status=exc.status if isinstance(exc, BackendProblem) else 503,
        )
    # The new role is in the next access token; usage and billing read roles from it.
    await refresh(request, session)
    return RedirectResponse(f"/orgs/{org.id}", status_code=303)


@router.get("/orgs/{org_id}")
async def overview(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    range: str | None = None,
    mode: str | None = None,
) -> Response:
    client = backends(request)
    token = session.access_token
    chosen, start, end = time_range(range, OVERVIEW_RANGES)
    shown = traffic_mode(mode)
    ctx, summary, top, balance, spent, apis = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.usage_summary(token, org_id, start, end, mode=shown)),
        panel(client.usage_top(token, org_id, "api", start, end, mode=shown)),
        panel(client.balance(token, org_id)),
        panel(client.credits_spent(token, org_id, start, end)),
        panel(client.apis(token)),
    )
    api_names = {str(a.id): a.name for a in apis.value or []}
    days = RANGES[chosen].total_seconds() / 86_400
    burn = spent.value / days if spent.value is not None else None
    return render(
        request,
        "overview.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "range": chosen,
            "ranges": OVERVIEW_RANGES,
            "mode": shown,
            "modes": TRAFFIC_MODES,
            "summary": summary,
            "top": top,
            "balance": balance,
            "spent": spent,
            "api_names": api_names,
            "burn": burn,
        },
    )
