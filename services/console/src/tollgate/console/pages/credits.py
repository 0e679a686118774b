"""Credits: the org's balance and status, its ledger (filterable by kind), the
low-balance threshold (owners) and billing mode (platform admins), the monthly
statement as JSON or CSV, and, for platform admins, top-ups and adjustments.

A top-up form carries an Idempotency-Key made when the form is rendered (and kept when
it is shown again after an error), so submitting it twice, or retrying after billing
did not answer, charges once: billing replays the first answer for a known key.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem
from tollgate.console.web import CurrentSession, OrgContext, backends, org_context, panel, render

router = APIRouter()
KINDS = ("debit", "top_up", "adjustment", "refund", "expiry")
CREDIT_KINDS = ("top_up", "adjustment", "refund", "expiry")
MODES = ("prepaid", "postpaid")
MONTH = re.compile(r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$")
INTEGER = re.compile(r"^-?[0-9]{1,18}$")


def can_manage(ctx: OrgContext) -> bool:
    """Owners change the threshold; platform admins also the mode and the balance."""
    return ctx.me.is_admin or ctx.role == "owner"


async def _credits_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    *,
    kind: str | None = None,
    cursor: str | None = None,
    forms: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    client = backends(request)
    token = session.access_token
    chosen = kind if kind in KINDS else None
    ctx, balance, page = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.balance(token, org_id)),
        panel(client.transactions(token, org_id, cursor, chosen)),
    )
    forms = forms or {}
    return render(
        request,
        "credits.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "balance": balance,
            "page": page,
            "kind": chosen or "",
            "kinds": KINDS,
            "credit_kinds": CREDIT_KINDS,
            "modes": MODES,
            "can_manage": can_manage(ctx),
            "this_month": datetime.now(UTC).strftime("%Y-%m"),
            "settings_form": forms.get("settings", {"values": {}, "errors": {}}),
            "credit_form": forms.get(
                "credit",
                {"values": {"idempotency_key": uuid.uuid4().hex}, "errors": {}},
            ),
            "added": request.query_params.get("added") == "1",
            "saved": request.query_params.get("saved") == "1",
        },
        status=status,
    )


@router.get("/orgs/{org_id}/credits")
async def credits_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return await _credits_page(request, org_id, session, kind=kind, cursor=cursor)


def _form_values(form: Any) -> dict[str, str]:
    return {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


def _failure(exc: Exception) -> tuple[dict[str, Any], int]:
    """The inline problem of a refused or unanswered write, and the page's status."""
    if isinstance(exc, BackendProblem):
        return {"problem": exc, "field_errors": exc.field_errors}, exc.status
    return {"down": True, "field_errors": {}}, 503


@router.post("/orgs/{org_id}/credits/settings")
async def save_settings(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    values = _form_values(await request.form())
    errors: dict[str, str] = {}
    body: dict[str, Any] = {}
    threshold = values.get("low_threshold", "")
    if INTEGER.fullmatch(threshold):
        body["low_threshold"] = int(threshold)
    else:
        errors["low_threshold"] = "number"
    if values.get("mode") in MODES:
        body["mode"] = values["mode"]
    if not errors:
        try:
            await backends(request).update_billing_settings(session.access_token, org_id, body)
        except (BackendProblem, BackendDown) as exc:
            if isinstance(exc, BackendProblem) and exc.status == 401:
                raise
            failure, status = _failure(exc)
            form = {"values": values, "errors": failure.pop("field_errors"), **failure}
            return await _credits_page(
                request, org_id, session, forms={"settings": form}, status=status
            )
        return RedirectResponse(f"/orgs/{org_id}/credits?saved=1", status_code=303)
    form = {"values": values, "errors": errors}
    return await _credits_page(request, org_id, session, forms={"settings": form}, status=400)


@router.post("/orgs/{org_id}/credits/add")
async def add_credits(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    values = _form_values(await request.form())
    errors: dict[str, str] = {}
    kind = values.get("kind", "")
    if kind not in CREDIT_KINDS:
        kind = "top_up"
    values["kind"] = kind
    key = values.get("idempotency_key", "")
    if not re.fullmatch(r"[0-9a-f]{32}", key):
        key = values["idempotency_key"] = uuid.uuid4().hex
    amount = values.get("amount", "")
    if not INTEGER.fullmatch(amount):
        errors["amount"] = "number"
    if not errors:
        body = {"amount": int(amount), "reason": values.get("reason") or kind.replace("_", "-")}
        try:
            await backends(request).add_credits(session.access_token, org_id, kind, body, key)
        except (BackendProblem, BackendDown) as exc:
            if isinstance(exc, BackendProblem) and exc.status == 401:
                raise
            failure, status = _failure(exc)
            form = {"values": values, "errors": failure.pop("field_errors"), **failure}
            return await _credits_page(
                request, org_id, session, forms={"credit": form}, status=status
            )
        return RedirectResponse(f"/orgs/{org_id}/credits?added=1", status_code=303)
    form = {"values": values, "errors": errors}
    return await _credits_page(request, org_id, session, forms={"credit": form}, status=400)


@router.get("/orgs/{org_id}/credits/statement")
async def statement(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    month: Annotated[str, Query(max_length=7)] = "",
    format: Annotated[str, Query(max_length=4)] = "csv",
) -> Response:
    """The month's statement as billing renders it, downloaded as a file."""
    chosen = month if MONTH.fullmatch(month) else datetime.now(UTC).strftime("%Y-%m")
    fmt = "json" if format == "json" else "csv"
    download = await backends(request).statement(session.access_token, org_id, chosen, fmt)
    return Response(
        download.content,
        media_type=download.media_type,
        headers={
            "content-disposition": f'attachment; filename="statement-{org_id}-{chosen}.{fmt}"'
        },
    )
