"""The operator area (`/admin`, platform admins only): the API registry with its routes,
status and prices (read-only here), every org, every user (deactivate / reactivate) and
notifier's email log (retry a failed mail).

Anyone else gets the 404 page: the area is not advertised to non-admins. Accounts and
notifier authorise every call again with the admin's own token, so a forged request
from a non-admin is refused by them as well.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendProblem, Me, Org
from tollgate.console.session import Session
from tollgate.console.web import CurrentSession, OrgNotFound, backends, identity, panel, render

router = APIRouter(prefix="/admin")
EMAIL_STATES = ("pending", "sent", "failed")


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
    return operator_page(request, "admin_apis.html", me, orgs, "apis", apis=apis)


@router.get("/apis/{api_id}")
async def api_detail(request: Request, session: CurrentSession, api_id: uuid.UUID) -> Response:
    me, orgs = await require_operator(request, session)
    try:
        api = await backends(request).admin_api(session.access_token, api_id)
    except BackendProblem as exc:
        if exc.status == 404:
            raise OrgNotFound from exc
        raise
    return operator_page(request, "admin_api.html", me, orgs, "apis", api=api)


@router.get("/orgs")
async def org_list(
    request: Request,
    session: CurrentSession,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    me, orgs = await require_operator(request, session)
    page = await panel(backends(request).all_orgs(session.access_token, cursor))
    return operator_page(request, "admin_orgs.html", me, orgs, "orgs", page=page)


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
async def user_set_active(
    request: Request,
    session: CurrentSession,
    user_id: uuid.UUID,
    action: Literal["deactivate", "reactivate"],
    back: Annotated[str, Form(max_length=2000)] = "/admin/users",
) -> Response:
    me, orgs = await require_operator(request, session)
    try:
        await backends(request).set_user_active(
            session.access_token, user_id, active=action == "reactivate"
        )
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
