"""The signed-in user's profile: two-factor sign-in (enrolment with a QR code drawn
server side, recovery codes shown once, disabling), a password-change link by email,
and signing out everywhere.

The TOTP seed is shown once, while enrolling; between the QR code and the code that
confirms it, the otpauth URI travels sealed in a hidden field (encrypted with the
session keys), so a mistyped code shows the same QR code again without a new seed.
"""

from __future__ import annotations

import base64
import contextlib
import io
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem, Me, Org
from tollgate.console.web import CurrentSession, backends, cookies, identity, render

TOTP_ENROLMENT = "totp-enrolment"  # the sealing purpose of the enrolment URI

router = APIRouter()


def qr_svg_data_uri(text: str) -> str:
    """A QR code of `text` as an SVG data URI (an <img>, allowed by the CSP's img-src);
    dark on white in either theme, as authenticator apps expect."""
    out = io.BytesIO()
    segno.make(text, error="m").save(
        out, kind="svg", scale=5, border=3, xmldecl=False, dark="#000", light="#fff"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


async def _profile(
    request: Request,
    session: CurrentSession,
    status: int = 200,
    *,
    known: tuple[Me, list[Org]] | None = None,
    **extra: Any,
) -> Response:
    """The profile page; `known`: the user and their orgs, already read."""
    me, orgs = known or await identity(request, session)
    context = {"me": me, "orgs": orgs, "org": None, "errors": {}, **extra}
    return render(request, "profile.html", context, status=status)


@router.get("/profile")
async def profile(request: Request, session: CurrentSession) -> Response:
    notice = request.query_params.get("done")
    return await _profile(request, session, notice=notice)


def _refusal(exc: BackendProblem | BackendDown) -> tuple[dict[str, Any], int]:
    if isinstance(exc, BackendProblem):
        if exc.status == 401:
            raise exc  # the session ended: the sign-in page
        return {"problem": exc}, exc.status
    return {"down": True}, 503


def _wrong_password(exc: BackendProblem | BackendDown) -> bool:
    return isinstance(exc, BackendProblem) and str(exc.body.get("type", "")).endswith(
        "/invalid-credentials"
    )


@router.post("/profile/totp/enroll")
async def totp_enroll(request: Request, session: CurrentSession) -> Response:
    try:
        enrolment = await backends(request).totp_enroll(session.access_token)
    except (BackendProblem, BackendDown) as exc:
        extra, status = _refusal(exc)
        return await _profile(request, session, status=status, **extra)
    return await _profile(
        request,
        session,
        enrolling={
            "qr": qr_svg_data_uri(enrolment.otpauth_uri),
            "secret": enrolment.secret,
            "sealed": cookies(request).seal_value(TOTP_ENROLMENT, enrolment.otpauth_uri),
        },
    )


@router.post("/profile/totp/verify")
async def totp_verify(
    request: Request,
    session: CurrentSession,
    password: Annotated[str, Form(max_length=1024)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
    enrolment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    client = backends(request)
    # The page's navigation first: once the recovery codes exist, nothing may keep them
    # from the page.
    known = await identity(request, session)
    try:
        codes = await client.totp_verify(
            session.access_token, password, code.strip().replace(" ", "")
        )
    except (BackendProblem, BackendDown) as exc:
        uri = cookies(request).unseal_value(TOTP_ENROLMENT, enrolment)
        enrolling = None
        if uri is not None:
            secret = uri.split("secret=", 1)[-1].split("&", 1)[0]
            enrolling = {"qr": qr_svg_data_uri(uri), "secret": secret, "sealed": enrolment}
        extra, status = _refusal(exc)
        return await _profile(
            request,
            session,
            status=status,
            known=known,
            enrolling=enrolling,
            errors={"password" if _wrong_password(exc) else "code": "wrong"},
            **extra,
        )
    return await _profile(request, session, known=known, recovery_codes=codes.recovery_codes)


@router.post("/profile/totp/disable")
async def totp_disable(
    request: Request,
    session: CurrentSession,
    password: Annotated[str, Form(max_length=1024)] = "",
    code: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        await backends(request).totp_disable(
            session.access_token, password, code.strip().replace(" ", "")
        )
    except (BackendProblem, BackendDown) as exc:
        extra, status = _refusal(exc)
        return await _profile(request, session, status=status, disabling=True, **extra)
    return RedirectResponse("/profile?done=totp-off", status_code=303)


@router.post("/profile/password-link")
async def password_link(request: Request, session: CurrentSession) -> Response:
    """accounts has no change-password call for a signed-in user yet: the user gets the
    password-reset email, whose link opens the console's reset page."""
    me, _orgs = await identity(request, session)
    with contextlib.suppress(BackendProblem):
        await backends(request).request_password_reset(me.email)
    return RedirectResponse("/profile?done=password-link", status_code=303)


@router.post("/profile/signout-everywhere")
async def signout_everywhere(request: Request, session: CurrentSession) -> Response:
    """End every session of the user, this one included."""
    await backends(request).sign_out_everywhere(session.access_token, session.refresh_token)
    response = RedirectResponse("/signin", status_code=303)
    cookies(request).clear(request, response)
    return response
