"""The console's FastAPI app: the kit's service app (ops endpoints, request ids,
metrics) plus the web middleware, static files and the page routers.

The console owns no data and holds no privileged credential: every page calls the
backing services with the signed-in user's own token. It never talks to a database
or to Kafka.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tollgate.console.backends import VISITOR, BackendDown, BackendProblem, Backends, Me
from tollgate.console.config import Settings
from tollgate.console.i18n import LANGUAGE_COOKIE, load_catalogs, negotiate
from tollgate.console.pages import (
    auth,
    autotopup,
    contacts,
    credits,
    keys,
    links,
    live,
    logs,
    operator,
    orgs,
    plans,
    portal,
    profile,
    purchases,
    registry,
    sms,
    sms_inbound,
    team,
    usage,
    webhooks,
)
from tollgate.console.refreshes import SessionRefreshes
from tollgate.console.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    SessionCookies,
    csrf_matches,
    new_csrf_token,
)
from tollgate.console.web import (
    AccountsUnavailable,
    OrgNotFound,
    SignInRequired,
    identity,
    render,
)
from tollgate.kit.service import create_app as create_service_app

STATIC = Path(__file__).parent / "static"
THEME_COOKIE = "tg_theme"
THEMES = ("light", "dark")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
OPS_PATHS = ("/healthz", "/readyz", "/metrics")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}

Next = Callable[[Request], Awaitable[Response]]


def create_app(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the app; the HTTP client to the backing services opens with the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = Backends(settings, transport)
        try:
            yield
        finally:
            await app.state.backends.aclose()

    app = create_service_app(
        service="console",
        title="Tollgate console",
        description="Tollgate console: the web UI over the other services' REST APIs.",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.catalogs = load_catalogs()
    app.state.cookies = SessionCookies(
        settings.session_keys, settings.session_max_age_seconds, settings.cookie_secure
    )
    app.state.refreshes = SessionRefreshes()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (
        auth,
        links,
        orgs,
        keys,
        live,
        logs,
        credits,
        usage,
        profile,
        team,
        webhooks,
        portal,
        registry,
        operator,
        plans,
        purchases,
        autotopup,
        contacts,
        sms_inbound,  # before sms: its /sms/inbox etc. are not message ids
        sms,
    ):
        app.include_router(module.router)
    install_web_middleware(app)
    install_error_pages(app)
    return app


def install_web_middleware(app: FastAPI) -> None:
    """Language, theme, CSRF token and security headers around every page."""

    @app.middleware("http")
    async def web_context(request: Request, call_next: Next) -> Response:
        if request.url.path in OPS_PATHS:
            return await call_next(request)
        VISITOR.set(visitor_chain(request))  # this request's context only
        request.state.language = negotiate(
            request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
        )
        theme = request.cookies.get(THEME_COOKIE)
        request.state.theme = theme if theme in THEMES else None
        request.state.session_update = None
        csrf = request.cookies.get(CSRF_COOKIE)
        fresh_csrf = None if csrf else new_csrf_token()
        request.state.csrf_token = csrf or fresh_csrf
        if request.method not in SAFE_METHODS and not await _csrf_ok(request, csrf):
            response: Response = render(
                request, "error.html", {"status": 403, "reason": "csrf"}, status=403
            )
        else:
            response = await call_next(request)
        store: SessionCookies = app.state.cookies
        if fresh_csrf:
            response.set_cookie(
                CSRF_COOKIE,
                fresh_csrf,
                httponly=True,
                samesite="lax",
                secure=store.secure_for(request),
                path="/",
            )
        if request.state.session_update is not None:
            store.store(request, response, request.state.session_update)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers["cache-control"] = "no-store"
        return response


def visitor_chain(request: Request) -> str | None:
    """The browser's address chain as a proxy passes it on: the `X-Forwarded-For` chain
    the console was given, then its own peer (accounts reads it from the right, believing
    only its trusted proxies, so a chain the browser wrote itself gains nothing)."""
    if request.client is None:
        return None
    given = ",".join(request.headers.getlist("x-forwarded-for"))
    return f"{given}, {request.client.host}" if given else request.client.host


async def _csrf_ok(request: Request, cookie: str | None) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        await request.body()  # cached, so the handler reads the same body again
        async with request.form() as form:  # closes this parse's uploaded files
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    return csrf_matches(cookie, sent)


def install_error_pages(app: FastAPI) -> None:
    """HTML answers for the errors a browser can meet."""

    async def sign_in_required(request: Request, _exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response: Response = RedirectResponse(
            f"/signin?next={quote(target, safe='')}", status_code=303
        )
        if request.headers.get("hx-request"):
            response = Response(status_code=204, headers={"HX-Redirect": "/signin"})
        store: SessionCookies = app.state.cookies
        store.clear(request, response)
        return response

    async def accounts_down(request: Request, _exc: Exception) -> Response:
        return render(request, "error.html", {"status": 503, "reason": "accounts"}, status=503)

    async def service_down(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BackendDown)
        reason = "accounts" if exc.service == "accounts" else "down"
        context = {"status": 503, "reason": reason, "service": exc.service}
        return render(request, "error.html", context, status=503)

    async def navigation(request: Request) -> dict[str, object]:
        """The signed-in header for an error page, so the user can go on from it; none
        when there is no session or accounts does not answer."""
        fresh: Session | None = getattr(request.state, "session_update", None)
        session = fresh or app.state.cookies.load(request)
        if session is None or session.expiring:
            return {}
        try:
            me, orgs = await identity(request, session)
        except (SignInRequired, AccountsUnavailable, BackendProblem):
            return {}
        return {"me": me, "orgs": orgs, "org": None}

    async def org_not_found(request: Request, _exc: Exception) -> Response:
        context = {"status": 404, "reason": "org", **await navigation(request)}
        return render(request, "error.html", context, status=404)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BackendProblem)
        if exc.status == 401:
            return await sign_in_required(request, exc)
        status = exc.status if exc.status in (403, 404) else 400
        return render(
            request, "error.html", {"status": status, "reason": "problem", "problem": exc}, status
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path in OPS_PATHS or not hasattr(request.state, "language"):
            return Response(status_code=exc.status_code)
        context: dict[str, object] = {"status": exc.status_code, "reason": "http"}
        if exc.status_code == 404:
            context.update(await navigation(request))
        response = render(request, "error.html", context, exc.status_code)
        response.headers.update(exc.headers or {})  # e.g. Retry-After of a 429
        return response

    async def bad_input(request: Request, exc: Exception) -> Response:
        """A value FastAPI could not read (a malformed id in the path: 404; in the query
        or the form: 400), as a page in the visitor's language. The operator area stays
        the 404 page for everyone but platform admins, whatever the input."""
        assert isinstance(exc, RequestValidationError)
        nav = await navigation(request)
        me = nav.get("me")
        operator_area = request.url.path == "/admin" or request.url.path.startswith("/admin/")
        if operator_area and not (isinstance(me, Me) and me.is_admin):
            status, reason = 404, "org"
        elif any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
            status, reason = 404, "http"
        else:
            status, reason = 400, "input"
        return render(request, "error.html", {"status": status, "reason": reason, **nav}, status)

    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(RequestValidationError, bad_input)
    app.add_exception_handler(AccountsUnavailable, accounts_down)
    app.add_exception_handler(BackendDown, service_down)
    app.add_exception_handler(OrgNotFound, org_not_found)
    app.add_exception_handler(BackendProblem, refused)
    app.add_exception_handler(StarletteHTTPException, http_error)
