"""The pages the notifier's emails link to: forgotten password, reset password (from
the emailed token) and accepting an invitation (signed in as the invitee).

Tokens arrive in the link's query string and are passed to accounts as they are; they
are never logged or stored by the console.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem
from tollgate.console.web import backends, cookies, identity, refresh, render, signed_in

router = APIRouter()


@router.get("/forgot-password")
async def forgot_form(request: Request) -> Response:
    return render(request, "forgot.html", {"sent": False, "email": ""})


@router.post("/forgot-password")
async def forgot(request: Request, email: Annotated[str, Form(max_length=320)]) -> Response:
    try:
        await backends(request).request_password_reset(email.strip())
    except BackendDown:
        return render(request, "forgot.html", {"sent": False, "email": email, "down": True}, 503)
    except BackendProblem as exc:
        context = {"sent": False, "email": email, "problem": exc}
        return render(request, "forgot.html", context, status=exc.status)
    # The same answer whether or not the address has an account.
    return render(request, "forgot.html", {"sent": True, "email": email})


@router.get("/reset-password")
async def reset_form(
    request: Request, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    return render(request, "reset.html", {"token": token})


@router.post("/reset-password")
async def reset(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    new_password: Annotated[str, Form(max_length=200)],
) -> Response:
    try:
        await backends(request).confirm_password_reset(token, new_password)
    except BackendDown:
        return render(request, "reset.html", {"token": token, "down": True}, status=503)
    except BackendProblem as exc:
        return render(request, "reset.html", {"token": token, "problem": exc}, exc.status)
    response = RedirectResponse("/signin?reset=1", status_code=303)
    cookies(request).clear(request, response)  # every session ended with the reset
    return response


@router.get("/accept-invitation")
async def invitation_form(
    request: Request, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    session = await signed_in(request)
    me, orgs = await identity(request, session)
    context = {"me": me, "orgs": orgs, "org": None, "token": token}
    return render(request, "invitation.html", context)


@router.post("/accept-invitation")
async def accept(request: Request, token: Annotated[str, Form(max_length=200)]) -> Response:
    session = await signed_in(request)
    client = backends(request)
    try:
        joined = await client.accept_invitation(session.access_token, token)
    except (BackendDown, BackendProblem) as exc:
        if isinstance(exc, BackendProblem) and exc.status == 401:
            raise
        me, orgs = await identity(request, session)
        problem = exc if isinstance(exc, BackendProblem) else None
        context = {"me": me, "orgs": orgs, "org": None, "token": token, "problem": problem}
        return render(request, "invitation.html", {**context, "down": problem is None}, 400)
    await refresh(request, session)  # the new role travels in the next access token
    return RedirectResponse(f"/orgs/{joined.org_id}", status_code=303)
