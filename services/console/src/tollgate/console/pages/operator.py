"""The operator area (`/admin`, platform admins only): the list of the API registry
(its writes are `pages/registry.py`), every org with its balance and status (billing's
operator list), every user (deactivate / reactivate, grant / revoke platform admin) and
notifier's email log (retry a failed mail).

Anyone else gets the 404 page: the area is not advertised to non-admins. Accounts and
notifier authorise every call again with the admin's own token, so a forged request
from a non-admin is refused by them as well.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendProblem, Me, Org, OrgBalance, Page
from tollgate.console.session import Session
from tollgate.console.web import (
    CurrentSession,
    OrgNotFound,
    Panel,
    backends,
    identity,
    panel,
    render,
)

router = APIRouter(prefix="/admin")
EMAIL_STATES = ("pending", "sent", "failed")
BALANCE_STATUSES = ("ok", "low", "exhausted")


async def require_operator(request: Request, session: Session) -> tuple[Me, list[Org]]:
    """The signed-in platform admin; the 404 page for everybody else."""
    me, orgs = await identity(request, session)
    if not me.is_admin:
        raise OrgNotFound
    return me, orgs


def operator_page(
    request: Request,
    template: str,
    me: Me,
    orgs: list[Org],
    section: str,
    status: int = 200,
    **context: Any,
) -> Response:
    base = {"me": me, "orgs": orgs, "org": None, "admin_section": section}
    return render(request, template, {**base, **context}, status=status)


@router.get("")
async def operator_home(request: Request, session: CurrentSession) -> Response:
    await require_operator(request, session)
    return RedirectResponse("/admin/apis", status_code=303)


@router.get("/apis")
async def api_list(
    request: Request,
    session: CurrentSession,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    me, orgs = await require_operator(request, session)
    apis = await panel(backends(request).admin_apis(session.access_token, cursor))
    done = request.query_params.get("done", "")
    return operator_page(request, "admin_apis.html", me, orgs, "apis", apis=apis, done=done)


@router.get("/orgs")
async def org_list(
    request: Request,
    session: CurrentSession,
    status: Annotated[Literal["", "ok", "low", "exhausted"], Query()] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Every org with its balance and status. Without a status filter the page is
    accounts' org list and billing answers for its orgs in one call; with one, billing's
    list of that status drives the page and accounts names its orgs."""
    me, orgs = await require_operator(request, session)
    client, token = backends(request), session.access_token
    balances: Panel[Page[OrgBalance]]
    if status:
        balances = await panel(client.balances(token, org_ids=[], status=status, cursor=cursor))
        found = balances.value.items if balances.value else []
        named = await asyncio.gather(*(panel(client.org(token, b.org_id)) for b in found))
        page = Panel(value=Page[Org](items=[n.value for n in named if n.value], next_cursor=None))
        next_cursor = balances.value.next_cursor if balances.value else None
    else:
        page = await panel(client.all_orgs(token, cursor))
        ids = [o.id for o in page.value.items] if page.value else []
        balances = (
            await panel(client.balances(token, org_ids=ids, status=None, cursor=None))
            if ids
            else Panel(value=Page[OrgBalance](items=[]))
        )
        next_cursor = page.value.next_cursor if page.value else None
    by_org = {b.org_id: b for b in balances.value.items} if balances.value else {}
    return operator_page(
        request,
        "admin_orgs.html",
        me,
        orgs,
        "orgs",
        page=page,
        balances=balances,
        by_org=by_org,
        next_cursor=next_cursor,
        status_filter=status,
        statuses=BALANCE_STATUSES,
    )


@router.get("/users")
async def user_list(
    request: Request,
    session: CurrentSession,
    email: Annotated[str | None, Query(max_length=320)] = None,
    active: Annotated[Literal["", "true", "false"], Query()] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    me, orgs = await require_operator(request, session)
    page = await panel(
        backends(request).users(
            session.access_token,
            email_prefix=(email or "").strip() or None,
            active=None if active == "" else active == "true",
            cursor=cursor,
        )
    )
    filters = {"email": email or "", "active": active}
    return operator_page(
        request, "admin_users.html", me, orgs, "users", page=page, filters=filters, done=done
    )


@router.post("/users/{user_id}/{action}")
async def user_change(
    request: Request,
    session: CurrentSession,
    user_id: uuid.UUID,
    action: Literal["deactivate", "reactivate", "grant-admin", "revoke-admin"],
    back: Annotated[str, Form(max_length=2000)] = "/admin/users",
) -> Response:
    """Deactivate / reactivate a user, or grant / revoke platform admin."""
    me, orgs = await require_operator(request, session)
    client, token = backends(request), session.access_token
    try:
        if action in ("grant-admin", "revoke-admin"):
            await client.set_user_admin(token, user_id, admin=action == "grant-admin")
        else:
            await client.set_user_active(token, user_id, active=action == "reactivate")
    except BackendProblem as exc:
        if exc.status == 401:
            raise
        page = await panel(
            backends(request).users(
                session.access_token, email_prefix=None, active=None, cursor=None
            )
        )
        filters = {"email": "", "active": ""}
        status = exc.status if exc.status in (403, 404, 409) else 400
        return operator_page(
            request,
            "admin_users.html",
            me,
            orgs,
            "users",
            page=page,
            filters=filters,
            problem=exc,
            status=status,
        )
    target = back if back.startswith("/admin/users") else "/admin/users"
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}done={action}", status_code=303)


@router.get("/emails")
async def email_log(
    request: Request,
    session: CurrentSession,
    state: Annotated[Literal["", "pending", "sent", "failed"], Query()] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    me, orgs = await require_operator(request, session)
    page = await panel(
        backends(request).emails(session.access_token, state=state or None, cursor=cursor)
    )
    return operator_page(
        request,
        "admin_emails.html",
        me,
        orgs,
        "emails",
        page=page,
        state=state,
        states=EMAIL_STATES,
        done=done,
    )


@router.post("/emails/{email_id}/retry")
async def email_retry(request: Request, session: CurrentSession, email_id: uuid.UUID) -> Response:
    await require_operator(request, session)
    await backends(request).retry_email(session.access_token, email_id)
    return RedirectResponse("/admin/emails?state=pending&done=retry", status_code=303)
