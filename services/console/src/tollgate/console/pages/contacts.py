"""Notification contacts: who receives the org's notification emails (low or exhausted
credits, failed payments, suspended plans) and in which language.

Members read the list; owners (and platform admins) replace it as a whole, which is how
notifier's API works (`PUT` of the complete list, at most 20). A row's "Remove" button
submits the list without that row. Another org's id is a 404 before notifier is called.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem, NotificationContact
from tollgate.console.web import (
    CurrentSession,
    OrgContext,
    backends,
    org_context,
    panel,
    refusal,
    render,
)

router = APIRouter()
MAX_CONTACTS = 20
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
LOCALES = ("en", "zh-CN")


def can_edit(ctx: OrgContext) -> bool:
    """Notifier lets owners (and platform admins) replace the list."""
    return ctx.me.is_admin or ctx.role == "owner"


def _row_errors(problem: BackendProblem) -> dict[str, str]:
    """Notifier's validation errors by form field (`email_2` for contacts[2].email)."""
    out: dict[str, str] = {}
    for error in problem.body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        loc = [p for p in error.get("loc", []) if p != "body"]
        if len(loc) >= 3 and loc[0] == "contacts" and isinstance(loc[1], int):
            out.setdefault(f"{loc[2]}_{loc[1]}", str(error.get("msg", "")))
    return out


async def _contacts_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    *,
    rows: list[dict[str, str]] | None = None,
    errors: dict[str, str] | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    ctx = await org_context(request, session, org_id)
    contacts = await panel(backends(request).notification_contacts(session.access_token, org_id))
    if rows is None:
        rows = [c.model_dump() for c in contacts.value or []]
    if len(rows) < MAX_CONTACTS:
        rows = [*rows, {"email": "", "locale": "en"}]
    return render(
        request,
        "contacts.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "contacts": contacts,
            "rows": rows,
            "locales": LOCALES,
            "can_edit": can_edit(ctx),
            "errors": errors or {},
            "problem": problem,
            "down": down,
            "saved": request.query_params.get("saved") == "1",
        },
        status=status,
    )


@router.get("/orgs/{org_id}/contacts")
async def contacts_page(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    return await _contacts_page(request, org_id, session)


def _submitted_rows(form: Any) -> list[dict[str, str]]:
    """The form's rows in order (`email_N`, `locale_N`), without blank and removed ones."""
    removed = str(form.get("remove", ""))
    rows = []
    for index in range(MAX_CONTACTS + 1):
        email = form.get(f"email_{index}")
        if not isinstance(email, str) or not email.strip() or removed == str(index):
            continue
        locale = str(form.get(f"locale_{index}", "en"))
        rows.append({"email": email.strip(), "locale": locale if locale in LOCALES else "en"})
    return rows


@router.post("/orgs/{org_id}/contacts")
async def save_contacts(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Replace the org's contacts with the submitted rows."""
    await org_context(request, session, org_id)
    rows = _submitted_rows(await request.form())
    errors = {
        f"email_{i}": "email" for i, row in enumerate(rows) if not EMAIL.fullmatch(row["email"])
    }
    if len(rows) > MAX_CONTACTS:
        errors["email_0"] = "too-many"
    if errors:
        return await _contacts_page(request, org_id, session, rows=rows, errors=errors, status=400)
    contacts = [NotificationContact.model_validate(row) for row in rows]
    try:
        await backends(request).replace_notification_contacts(
            session.access_token, org_id, contacts
        )
    except (BackendProblem, BackendDown) as exc:
        refused = refusal(exc, _row_errors)
        return await _contacts_page(request, org_id, session, rows=rows, **refused)
    return RedirectResponse(f"/orgs/{org_id}/contacts?saved=1", status_code=303)
