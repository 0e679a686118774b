"""Sign in (with the TOTP step), sign up, email verification, sign out, and the
language/theme choice.

Sign-in is the OAuth2 password grant at accounts; the tokens go into the sealed
session cookie and never into the page. When the account has two-factor sign-in, the
email and password are carried to the second step sealed in a hidden field (encrypted,
valid for five minutes), never in clear text.

The verification link a new user is emailed lands on `/verify-email?token=…`, which
asks for one click: the token is spent by that POST, never by the GET (mail scanners
open links). Signed out works too (the token is the proof); signed in, the page can
ask accounts for a new link. Tokens are never logged or stored by the console.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem
from tollgate.console.i18n import LANGUAGE_COOKIE, LANGUAGES
from tollgate.console.session import Session
from tollgate.console.web import backends, cookies, identity, render, signed_in

router = APIRouter()
PENDING_TTL_SECONDS = 300
PENDING_SIGN_IN = "signin-totp"  # the sealing purpose of the pending sign-in
YEAR = 365 * 86_400


def safe_next(target: str | None) -> str:
    """Only local paths: never redirect a visitor to another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


@router.get("/")
async def home(request: Request) -> Response:
    """The first org's overview; the org form for users without one."""
    session = await signed_in(request)
    _me, orgs = await identity(request, session)
    if not orgs:
        return RedirectResponse("/orgs/new", status_code=303)
    return RedirectResponse(f"/orgs/{orgs[0].id}", status_code=303)


@router.get("/signin")
async def signin_form(
    request: Request, next: str | None = None, reset: str | None = None
) -> Response:
    context = {"next": safe_next(next), "email": "", "notice": "reset" if reset else None}
    return render(request, "signin.html", context)


def _signed_in_response(request: Request, tokens_session: Session, target: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    cookies(request).store(request, response, tokens_session)
    return response


async def _sign_in(
    request: Request, email: str, password: str, otp: str | None, target: str
) -> Response:
    try:
        tokens = await backends(request).sign_in(email, password, otp)
    except BackendDown:
        return render(
            request,
            "signin.html",
            {"next": target, "email": email, "error": "down"},
            status=503,
        )
    except BackendProblem as exc:
        if exc.body.get("mfa_required"):
            pending = cookies(request).seal_value(
                PENDING_SIGN_IN,
                json.dumps({"e": email, "p": password, "t": time.time()}),
            )
            wrong = otp is not None
            return render(
                request,
                "signin_totp.html",
                {"next": target, "pending": pending, "error": "otp" if wrong else None},
                status=401 if wrong else 200,
            )
        error = "throttled" if exc.status == 429 else "invalid"
        return render(
            request,
            "signin.html",
            {"next": target, "email": email, "error": error, "problem": exc},
            status=exc.status,
        )
    session = Session(tokens.access_token, tokens.refresh_token, time.time() + tokens.expires_in)
    return _signed_in_response(request, session, target)


@router.post("/signin")
async def signin(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    return await _sign_in(request, email.strip(), password, None, safe_next(next))


@router.post("/signin/totp")
async def signin_totp(
    request: Request,
    pending: Annotated[str, Form(max_length=4000)],
    otp: Annotated[str, Form(max_length=20)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    opened = cookies(request).unseal_value(PENDING_SIGN_IN, pending)
    data = json.loads(opened) if opened else None
    if not data or time.time() - float(data["t"]) > PENDING_TTL_SECONDS:
        return render(
            request, "signin.html", {"next": safe_next(next), "email": "", "error": "expired"}, 400
        )
    return await _sign_in(request, data["e"], data["p"], otp.strip(), safe_next(next))


@router.get("/signup")
async def signup_form(request: Request) -> Response:
    return render(request, "signup.html", {"values": {}, "errors": {}})


@router.post("/signup")
async def signup(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=200)],
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    values = {"email": email, "name": name}
    client = backends(request)
    locale = "zh-Hans" if request.state.language == "zh-Hans" else "en"
    try:
        await client.register(email.strip(), password, name.strip(), locale)
    except BackendDown:
        return render(request, "signup.html", {"values": values, "errors": {}, "down": True}, 503)
    except BackendProblem as exc:
        return render(
            request,
            "signup.html",
            {"values": values, "errors": exc.field_errors, "problem": exc},
            status=exc.status,
        )
    return await _sign_in(request, email.strip(), password, None, "/orgs/new")


def _verify_page(request: Request, status: int = 200, **context: object) -> Response:
    values = {"token": "", "signed_in": cookies(request).load(request) is not None, **context}
    return render(request, "verify_email.html", values, status=status)


@router.get("/verify-email")
async def verify_email_form(
    request: Request, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    return _verify_page(request, token=token)


@router.post("/verify-email")
async def verify_email(request: Request, token: Annotated[str, Form(max_length=200)]) -> Response:
    try:
        await backends(request).verify_email(token)
    except BackendDown:
        return _verify_page(request, 503, token=token, down=True)
    except BackendProblem as exc:
        return _verify_page(request, exc.status, problem=exc)
    return _verify_page(request, verified=True)


@router.post("/verify-email/resend")
async def resend_verification(request: Request) -> Response:
    session = await signed_in(request)
    try:
        await backends(request).resend_verification(session.access_token)
    except BackendDown:
        return _verify_page(request, 503, down=True)
    except BackendProblem as exc:
        if exc.status == 401:
            raise
        return _verify_page(request, exc.status, problem=exc)
    return _verify_page(request, resent=True)


@router.post("/signout")
async def signout(request: Request) -> Response:
    """Revoke the refresh token at accounts, then forget the session."""
    store = cookies(request)
    session = store.load(request)
    if session is not None:
        # The cookie goes anyway; an expired access token cannot log out.
        with contextlib.suppress(BackendDown, BackendProblem):
            await backends(request).sign_out(session.access_token, session.refresh_token)
    response = RedirectResponse("/signin", status_code=303)
    store.clear(request, response)
    return response


@router.get("/prefs")
async def preferences(
    request: Request,
    lang: Annotated[str | None, Query(max_length=16)] = None,
    theme: Annotated[str | None, Query(max_length=16)] = None,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """Remember a language or theme choice in a cookie and go back."""
    response = RedirectResponse(safe_next(next), status_code=303)
    secure = cookies(request).secure_for(request)
    if lang in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, lang, max_age=YEAR, samesite="lax", secure=secure)
    if theme in ("light", "dark"):
        response.set_cookie("tg_theme", theme, max_age=YEAR, samesite="lax", secure=secure)
    elif theme == "system":
        response.delete_cookie("tg_theme")
    return response
