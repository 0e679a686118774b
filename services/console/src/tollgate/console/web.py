"""What every page handler shares: rendering a template in the visitor's language, the
signed-in session (refreshed server side), the org context of the navigation, and
panels that survive a backing service being down.

Templates are autoescaped: every value a backing service returns is text, never markup.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, TypedDict, TypeVar
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from tollgate.console.backends import BackendDown, BackendProblem, Backends, Me, Org
from tollgate.console.i18n import LANGUAGE_NAMES, N_, Formats
from tollgate.console.refreshes import SessionRefreshes
from tollgate.console.session import Session, SessionCookies

T = TypeVar("T")

INTEGER = re.compile(r"^[0-9]{1,15}$")
"""A form field holding a whole number: ASCII digits (`str.isdigit` takes "²" too, which
`int` refuses), at most 15 of them."""

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)


def code_spans(text: str) -> Markup:
    """`text` escaped, its `backticked` parts as <code> (the services' descriptions
    name fields that way); text with an unpaired backtick is left as it is."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:
        return escape(text)
    return Markup("").join(
        escape(part) if n % 2 == 0 else Markup("<code>%s</code>") % part
        for n, part in enumerate(parts)
    )


TEMPLATES.filters["code_spans"] = code_spans
SERVICE_NAMES = {
    "accounts": N_("Accounts"),
    "usage": N_("Usage"),
    "billing": N_("Billing"),
    "notifier": N_("Notifier"),
}


class SignInRequired(Exception):
    """No valid session: the visitor is sent to the sign-in page."""


class AccountsUnavailable(Exception):
    """Accounts (identity) is down: no page that needs the user can render."""


def backends(request: Request) -> Backends:
    found: Backends = request.app.state.backends
    return found


def cookies(request: Request) -> SessionCookies:
    found: SessionCookies = request.app.state.cookies
    return found


def _here(request: Request) -> str:
    """Where the language and theme links come back to: this page (without its
    cursor); for the answer to a form, the page the form was on (a GET of a form's
    address is a 405), else the start page."""
    if request.method != "GET":
        came_from = urlsplit(request.headers.get("referer", ""))
        if came_from.netloc != request.url.netloc or not came_from.path.startswith("/"):
            return "/"
        return came_from.path + (f"?{came_from.query}" if came_from.query else "")
    query = {k: v for k, v in request.query_params.items() if k != "cursor"}
    return request.url.path + (("?" + urlencode(query)) if query else "")


def render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """A page in the visitor's language and theme."""
    language: str = request.state.language
    translations = request.app.state.catalogs[language]
    body = TEMPLATES.get_template(template).render(
        {
            "request": request,
            "_": translations.gettext,
            "ngettext": translations.ngettext,
            "fmt": Formats(language),
            "lang": language,
            "languages": LANGUAGE_NAMES,
            "theme": request.state.theme,
            "csrf_token": request.state.csrf_token,
            "here": _here(request),
            "service_names": SERVICE_NAMES,
            **context,
        }
    )
    return HTMLResponse(body, status_code=status)


async def signed_in(request: Request) -> Session:
    """The visitor's session, refreshed when its access token is about to expire (the
    new cookie goes out with the response); `SignInRequired` without one."""
    store = cookies(request)
    session = store.load(request)
    if session is None:
        raise SignInRequired
    if session.expiring:
        session = await refresh(request, session)
    return session


async def refresh(request: Request, session: Session) -> Session:
    """Exchange the refresh token now (also after a change of org roles, which the
    other services read from the access token), once per token however many requests
    ask for it (`SessionRefreshes`)."""
    client = backends(request)

    async def exchange(refresh_token: str) -> Session:
        tokens = await client.refresh(refresh_token)
        return Session(tokens.access_token, tokens.refresh_token, time.time() + tokens.expires_in)

    refreshes: SessionRefreshes = request.app.state.refreshes
    try:
        fresh = await refreshes.refreshed(session, exchange)
    except BackendProblem as exc:
        raise SignInRequired from exc
    except BackendDown as exc:
        raise AccountsUnavailable from exc
    request.state.session_update = fresh
    return fresh


CurrentSession = Annotated[Session, Depends(signed_in)]


@dataclass
class Panel(Generic[T]):
    """A part of a page fed by one backing call: its value, or why it is missing."""

    value: T | None = None
    down: str | None = None  # name of the service that did not answer
    problem: BackendProblem | None = None

    @property
    def ok(self) -> bool:
        return self.down is None and self.problem is None


async def panel(call: Awaitable[T]) -> Panel[T]:
    """Run a backing call; failures become the panel's state instead of the page's."""
    try:
        return Panel(value=await call)
    except BackendDown as exc:
        return Panel(down=exc.service)
    except BackendProblem as exc:
        if exc.status == 401:
            raise SignInRequired from exc
        return Panel(problem=exc)


class Refusal(TypedDict, total=False):
    """A form page's keyword arguments for a backing write that did not happen."""

    errors: dict[str, str]
    problem: BackendProblem
    down: bool
    status: int


def _own_field_errors(exc: BackendProblem) -> dict[str, str]:
    return exc.field_errors


def refusal(
    exc: BackendProblem | BackendDown,
    errors: Callable[[BackendProblem], dict[str, str]] | None = _own_field_errors,
) -> Refusal:
    """How the form page shows a write the backing service refused (its problem with
    its status, and `errors` of it by field; None: the page has no fields for them) or
    did not answer (`down`, 503): `await page(..., values=values, **refusal(exc))`. An
    expired session (401) signs in again instead."""
    if isinstance(exc, BackendDown):
        return {"down": True, "status": 503}
    if exc.status == 401:
        raise SignInRequired from exc
    if errors is None:
        return {"problem": exc, "status": exc.status}
    return {"errors": errors(exc), "problem": exc, "status": exc.status}


@dataclass
class OrgContext:
    """The navigation of an org page: who is signed in, their orgs, this org, role."""

    me: Me
    orgs: list[Org]
    org: Org
    role: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def can_write(self) -> bool:
        """Developers, owners and admins may change keys; viewers only look."""
        return self.me.is_admin or self.role in ("developer", "owner")


async def identity(request: Request, session: Session) -> tuple[Me, list[Org]]:
    """The user and their orgs (accounts must answer for any signed-in page)."""
    client = backends(request)
    try:
        return await asyncio.gather(
            client.me(session.access_token), client.orgs(session.access_token)
        )
    except BackendDown as exc:
        raise AccountsUnavailable from exc
    except BackendProblem as exc:
        if exc.status == 401:
            raise SignInRequired from exc
        raise


async def org_context(request: Request, session: Session, org_id: uuid.UUID) -> OrgContext:
    """The org context, or 404 when the user cannot see the org. The navigation lists
    the first page of the user's orgs (all orgs, for an admin); an org beyond it is
    read alone for a platform admin or a member."""
    me, orgs = await identity(request, session)
    org = next((o for o in orgs if o.id == org_id), None)
    if org is None and (me.is_admin or me.role_in(org_id) is not None):
        org = await _org(request, session, org_id)
    if org is None:
        raise OrgNotFound
    return OrgContext(me=me, orgs=orgs, org=org, role=me.role_in(org_id))


async def _org(request: Request, session: Session, org_id: uuid.UUID) -> Org | None:
    """One org as accounts shows it to the user; None when it answers 404."""
    try:
        return await backends(request).org(session.access_token, org_id)
    except BackendDown as exc:
        raise AccountsUnavailable from exc
    except BackendProblem as exc:
        if exc.status == 401:
            raise SignInRequired from exc
        if exc.status == 404:
            return None
        raise


class OrgNotFound(Exception):
    """The org does not exist or the user is not a member."""
