"""Team: the org's members and their roles, invitations (pending ones revocable), and
the org's audit log with filters in the URL.

Owners and platform admins see the write controls; accounts authorises every change
(the last owner cannot be demoted or removed, say) and its refusal is shown inline.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem
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
ROLES = ("owner", "developer", "viewer")


def can_manage(ctx: OrgContext) -> bool:
    return ctx.me.is_admin or ctx.role == "owner"


async def _team_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    *,
    cursor: str | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    client = backends(request)
    token = session.access_token
    ctx, members, invitations = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.members(token, org_id, cursor)),
        panel(client.invitations(token, org_id)),
    )
    now = datetime.now(UTC)
    pending = [
        i
        for i in invitations.value or []
        if i.accepted_at is None and i.revoked_at is None and i.expires_at > now
    ]
    return render(
        request,
        "team.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "members": members,
            "invitations": invitations,
            "pending": pending,
            "roles": ROLES,
            "can_manage": can_manage(ctx),
            "values": {},
            "errors": {},
            "notice": request.query_params.get("done"),
            **extra,
        },
        status=status,
    )


@router.get("/orgs/{org_id}/team")
async def team_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    return await _team_page(request, org_id, session, cursor=cursor)


async def _write(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    call: Any,
    done: str,
    **form: Any,
) -> Response:
    """Run one write; a refusal or an unanswered call re-renders the page with it."""
    try:
        await call
    except (BackendProblem, BackendDown) as exc:
        return await _team_page(request, org_id, session, **refusal(exc), **form)
    return RedirectResponse(f"/orgs/{org_id}/team?done={done}", status_code=303)


@router.post("/orgs/{org_id}/team/invite")
async def invite(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=20)] = "viewer",
) -> Response:
    chosen = role if role in ROLES else "viewer"
    call = backends(request).invite(session.access_token, org_id, email.strip(), chosen)
    values = {"email": email, "role": chosen}
    return await _write(request, org_id, session, call, "invited", values=values)


@router.post("/orgs/{org_id}/team/{user_id}/role")
async def change_role(
    request: Request,
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    session: CurrentSession,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    call = backends(request).change_role(session.access_token, org_id, user_id, role)
    return await _write(request, org_id, session, call, "role")


@router.post("/orgs/{org_id}/team/{user_id}/remove")
async def remove(
    request: Request, org_id: uuid.UUID, user_id: uuid.UUID, session: CurrentSession
) -> Response:
    call = backends(request).remove_member(session.access_token, org_id, user_id)
    return await _write(request, org_id, session, call, "removed")


@router.post("/orgs/{org_id}/team/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    request: Request, org_id: uuid.UUID, invitation_id: uuid.UUID, session: CurrentSession
) -> Response:
    call = backends(request).revoke_invitation(session.access_token, org_id, invitation_id)
    return await _write(request, org_id, session, call, "invitation-revoked")


def _day(text: str | None, *, end: bool) -> str | None:
    """A date field as the UTC instant accounts filters on (`until` is the next
    midnight, so the chosen day is included; none after the last day there is)."""
    try:
        day = date.fromisoformat((text or "").strip())
    except ValueError:
        return None
    if end and day == date.max:
        return None
    moment = datetime.combine(day, time(0, 0), tzinfo=UTC)
    return (moment + timedelta(days=1) if end else moment).isoformat()


@router.get("/orgs/{org_id}/audit")
async def audit_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor_id: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    client = backends(request)
    token = session.access_token
    actor: str | None = None
    try:
        actor = str(uuid.UUID((actor_id or "").strip()))
    except ValueError:
        actor = None
    filters = {
        "action": (action or "").strip() or None,
        "actor_id": actor,
        "since": _day(since, end=False),
        "until": _day(until, end=True),
        "cursor": cursor,
    }
    ctx, page, members = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.audit(token, org_id, filters)),
        panel(client.members(token, org_id, None)),
    )
    names = {
        str(m.user_id): m.name or m.email for m in (members.value.items if members.value else [])
    }
    return render(
        request,
        "audit.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "page": page,
            "names": names,
            "filters": {
                "action": action or "",
                "actor_id": actor or "",
                "since": since or "",
                "until": until or "",
            },
            "filtered": any((action, actor, since, until)),
        },
    )
