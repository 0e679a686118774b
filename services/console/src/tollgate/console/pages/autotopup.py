"""Auto top-up: when the org's credits fall to the threshold, billing charges the saved
card for enough credits to reach the target, at most the monthly cap per calendar month.

Members see the settings, whether a card is saved, this month's spend against the cap
and the latest top-up (and why it failed). Owners change them and save a card: "save a
card" starts billing's setup-mode Stripe Checkout and sends the browser to it; billing
stores the card when Stripe reports it (Checkout returns to the buy-credits page). The
cap is typed in the currency's major unit ("50.00") and sent in minor units.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import AutoTopUp, BackendDown, BackendProblem
from tollgate.console.web import (
    INTEGER,
    CurrentSession,
    OrgContext,
    Panel,
    backends,
    org_context,
    panel,
    refusal,
    render,
)

router = APIRouter()
MONEY = re.compile(r"^[0-9]{1,10}(?:[.,][0-9]{1,3})?$")


def can_edit(ctx: OrgContext) -> bool:
    """Billing lets owners change auto top-up and save a card."""
    return ctx.role == "owner"


def _major(minor_units: int, currency: str) -> str:
    """Minor units as the plain major-unit amount of a form field: 5000 usd → 50.00."""
    digits = get_currency_precision(currency.upper())
    return f"{Decimal(minor_units).scaleb(-digits):.{digits}f}"


def _minor(text: str, currency: str) -> int | None:
    """A typed major-unit amount in minor units; None when it is not one."""
    if not MONEY.fullmatch(text):
        return None
    digits = get_currency_precision(currency.upper())
    try:
        amount = Decimal(text.replace(",", ".")).scaleb(digits)
    except InvalidOperation:
        return None
    return int(amount) if amount == amount.to_integral_value() else None


async def _page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    *,
    settings: Panel[AutoTopUp] | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    client, token = backends(request), session.access_token
    ctx, packs = await asyncio.gather(
        org_context(request, session, org_id), panel(client.credit_packs(token))
    )
    if settings is None:
        settings = await panel(client.auto_top_up(token, org_id))
    current = settings.value
    if values is None and current is not None:
        values = {
            "enabled": "1" if current.enabled else "",
            "threshold": str(current.threshold),
            "target": str(current.target),
            "monthly_cap": _major(current.monthly_cap, current.currency),
        }
    return render(
        request,
        "auto_top_up.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "settings": settings,
            "values": values or {},
            "errors": errors or {},
            "problem": problem,
            "down": down,
            "can_edit": can_edit(ctx),
            # Cards are saved through Stripe only; billing's manual mode has no card payments.
            "cards": packs.value is not None and packs.value.provider == "stripe",
            "saved": request.query_params.get("saved") == "1",
        },
        status=status,
    )


@router.get("/orgs/{org_id}/billing/auto-top-up")
async def auto_top_up_page(
    request: Request, org_id: uuid.UUID, session: CurrentSession
) -> Response:
    return await _page(request, org_id, session)


def _body(values: dict[str, str], currency: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The PUT body from the form, or the fields that are not numbers."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"enabled": values.get("enabled") == "1"}
    for name in ("threshold", "target"):
        if INTEGER.fullmatch(values.get(name, "")):
            body[name] = int(values[name])
        else:
            errors[name] = "number"
    cap = _minor(values.get("monthly_cap", ""), currency)
    if cap is None:
        errors["monthly_cap"] = "amount"
    else:
        body["monthly_cap"] = cap
    return body, errors


@router.post("/orgs/{org_id}/billing/auto-top-up")
async def save_auto_top_up(
    request: Request, org_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Save the settings (owners); billing refuses enabling without a saved card."""
    await org_context(request, session, org_id)
    form = await request.form()
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    client = backends(request)
    current = await panel(client.auto_top_up(session.access_token, org_id))
    if current.value is None:
        return await _page(request, org_id, session, settings=current, values=values, status=503)
    body, errors = _body(values, current.value.currency)
    if errors:
        return await _page(
            request, org_id, session, settings=current, values=values, errors=errors, status=400
        )
    try:
        await client.set_auto_top_up(session.access_token, org_id, body)
    except BackendProblem as exc:
        if exc.status == 401:
            raise
        field_errors = exc.field_errors
        if exc.slug == "target-not-above-threshold":
            field_errors["target"] = "above"
        return await _page(
            request,
            org_id,
            session,
            settings=current,
            values=values,
            errors=field_errors,
            problem=exc,
            status=exc.status,
        )
    except BackendDown:
        return await _page(
            request, org_id, session, settings=current, values=values, down=True, status=503
        )
    return RedirectResponse(f"/orgs/{org_id}/billing/auto-top-up?saved=1", status_code=303)


@router.post("/orgs/{org_id}/billing/auto-top-up/card")
async def save_card(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Send an owner to billing's setup-mode Checkout to save a card (303)."""
    await org_context(request, session, org_id)
    try:
        url = await backends(request).auto_top_up_card_checkout(session.access_token, org_id)
    except (BackendProblem, BackendDown) as exc:
        return await _page(request, org_id, session, **refusal(exc, errors=None))
    return RedirectResponse(url, status_code=303)
