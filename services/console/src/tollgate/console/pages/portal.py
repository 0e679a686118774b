"""The developer portal (`/portal`): the API catalog, each API's documentation (Scalar,
from the consumer document accounts builds), a test key for the try-it panel, and
the visitor's own numbers per API.

Every visitor reads the catalog and the consumer documents from accounts' catalog
(`/v1/catalog`, which builds the consumer document and holds no upstream, credential or
sandbox in its answers), with the user's token when signed in; the console holds no
credential of its own. Anonymous visitors get the catalog and the docs with "sign up to
try it" in place of the key controls and no numbers. `portal_public = false` sends them
to the sign-in page instead (so does a catalog accounts keeps closed).

Onboarding: a signed-in customer whose org has no key yet gets a checklist on the catalog
(email verified, org, first key, first call); the first key is created from it and shown
once with a ready `curl` line, and a small fragment, polled by htmx, asks usage for the
org's successful requests since the key was created until one shows up.

Raw keys: a test key is created with the user's token and returned in that one response
(like the key page); a pasted key stays in the browser's session storage and goes only to
the gateway. Neither is ever logged by the console.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from tollgate.console.backends import (
    BackendDown,
    BackendProblem,
    CatalogApi,
    IssuedKey,
    Me,
    Org,
    TopItem,
)
from tollgate.console.config import Settings
from tollgate.console.session import Session
from tollgate.console.web import (
    Panel,
    SignInRequired,
    backends,
    cookies,
    identity,
    panel,
    refresh,
    render,
)

router = APIRouter(prefix="/portal")
T = TypeVar("T")

NUMBERS_DAYS = 7
TEST_KEY_HOURS = 24
TEST_KEY_LIMITS = {"per_second": 2, "per_minute": 30, "per_day": 500}
FIRST_CALL_POLL_SECONDS = 3
FIRST_CALL_WINDOW = timedelta(days=7)  # the fragment looks no further back than this
DOCS_CSP = (
    # Scalar injects its own <style> elements: styles may be inline on this page only;
    # scripts stay 'self'. connect-src adds the gateway, which the try-it panel calls.
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self' {gateway}; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _visitor(request: Request) -> Session | None:
    """The session when signed in; None for an anonymous visitor the portal admits."""
    session = cookies(request).load(request)
    if session is None:
        if not _settings(request).portal_public:
            raise SignInRequired
        return None
    if session.expiring:
        session = await refresh(request, session)
    return session


async def _read(call: Awaitable[T]) -> T:
    """A catalog read; accounts refusing the visitor (a closed catalog) means sign in, and
    its per-address limit is this page's 429 (with accounts' Retry-After)."""
    try:
        return await call
    except BackendProblem as exc:
        if exc.status == 401:
            raise SignInRequired from exc
        if exc.status == 429:
            retry = str(exc.body.get("retry_after") or 60)
            raise HTTPException(429, headers={"Retry-After": retry}) from exc
        raise


def _numbers_org(orgs: list[Org], wanted: str | None) -> Org | None:
    chosen = next((o for o in orgs if str(o.id) == wanted), None)
    return chosen or (orgs[0] if orgs else None)


async def _numbers(
    request: Request, token: str, org: Org | None, mode: str = "live"
) -> Panel[dict[str, TopItem]]:
    """The org's requests per API over the last days; `mode` test counts `tg_test_` keys
    (usage keeps them apart from live traffic)."""
    if org is None:
        return Panel(value={})
    end = datetime.now(UTC)
    start = end - timedelta(days=NUMBERS_DAYS)
    filters = {"mode": mode} if mode != "live" else {}
    top = await panel(
        backends(request).usage_top_by(token, org.id, "api", start, end, filters, limit=100)
    )
    return Panel(
        value={i.value: i for i in top.value or [] if i.value}, down=top.down, problem=top.problem
    )


@dataclass(frozen=True)
class FirstCall:
    """The `curl` line of the onboarding: the API's first GET operation at the gateway."""

    api: CatalogApi
    method: str
    url: str


@dataclass(frozen=True)
class Onboarding:
    """The checklist of a customer whose org has no key yet (`org` None: no org yet)."""

    org: Org | None
    verified: bool
    environment: str
    issued: IssuedKey | None = None
    first_call: FirstCall | None = None


def _may_create_keys(me: Me, org: Org) -> bool:
    return me.is_admin or me.role_in(org.id) in ("developer", "owner")


async def _onboarding(request: Request, token: str, me: Me, org: Org | None) -> Onboarding | None:
    """The checklist when the org has no key yet (or the user has no org); None otherwise,
    and when the org's keys cannot be read (the catalog still renders)."""
    environment = "live" if me.email_verified else "test"
    if org is None:
        return Onboarding(org=None, verified=me.email_verified, environment=environment)
    if not _may_create_keys(me, org):
        return None
    try:
        keys = await backends(request).keys(token, org.id, None, limit=1)
    except (BackendDown, BackendProblem):
        return None
    if keys.items:
        return None
    return Onboarding(org=org, verified=me.email_verified, environment=environment)


def _first_get(document: dict[str, Any]) -> tuple[bool, str] | None:
    """The GET path of a consumer document a new key can call first: one that needs no
    key scope (the onboarding key has none) and is not deprecated, then one without path
    parameters; the document's order among equals. With it, whether the new key should
    rather not call it (it needs a scope or is deprecated)."""
    candidates: list[tuple[bool, bool, str]] = []
    for path, item in (document.get("paths") or {}).items():
        operation = item.get("get") if isinstance(item, dict) else None
        if isinstance(operation, dict):
            avoid = bool(operation.get("x-tollgate-scopes")) or bool(operation.get("deprecated"))
            candidates.append((avoid, "{" in str(path), str(path)))
    if not candidates:
        return None
    avoid, _, path = min(candidates, key=lambda c: (c[0], c[1]))
    return avoid, path


async def _first_call(request: Request, token: str, listed: list[CatalogApi]) -> FirstCall | None:
    """A GET operation of the catalog's first APIs (active ones first) the new key can
    call; failing that, the first GET found, or the first API's root."""
    gateway = _settings(request).gateway_url.rstrip("/")
    ordered = sorted(listed, key=lambda a: a.status != "active")
    fallback: FirstCall | None = None
    for api in ordered[:5]:  # a document each: a catalog without GETs is not walked whole
        try:
            document = await backends(request).catalog_document(token, api.slug)
        except (BackendDown, BackendProblem):
            continue
        found = _first_get(document)
        if found is None:
            continue
        avoid, path = found
        call = FirstCall(api=api, method="GET", url=f"{gateway}/{api.slug}{path}")
        if not avoid:
            return call
        fallback = fallback or call
    if fallback is None and ordered:
        fallback = FirstCall(api=ordered[0], method="GET", url=f"{gateway}/{ordered[0].slug}/")
    return fallback


@dataclass(frozen=True)
class CatalogReads:
    """What a catalog page needs accounts to answer (`me` None: an anonymous visitor),
    read before any write the page shows the result of."""

    me: Me | None
    orgs: list[Org]
    listed: list[CatalogApi]


async def _catalog_reads(request: Request, session: Session | None) -> CatalogReads:
    client = backends(request)
    if session is None:
        return CatalogReads(me=None, orgs=[], listed=await _read(client.catalog(None)))
    (me, orgs), listed = await asyncio.gather(
        identity(request, session), _read(client.catalog(session.access_token))
    )
    return CatalogReads(me=me, orgs=orgs, listed=listed)


async def _catalog_page(
    request: Request,
    session: Session | None,
    reads: CatalogReads,
    *,
    q: str = "",
    tag: str = "",
    org: str | None = None,
    onboarding: Onboarding | None = None,
    problem: BackendProblem | None = None,
    status: int = 200,
) -> Response:
    """The catalog; what it reads here beside `reads` may fail without failing the page."""
    me, orgs, listed = reads.me, reads.orgs, reads.listed
    numbers: Panel[dict[str, TopItem]] = Panel(value={})
    numbers_org = _numbers_org(orgs, org)
    if session is not None and me is not None:
        token = session.access_token
        if onboarding is None:
            numbers, onboarding = await asyncio.gather(
                _numbers(request, token, numbers_org),
                _onboarding(request, token, me, numbers_org),
            )
        else:
            numbers = await _numbers(request, token, numbers_org)
    entries = []
    all_tags: set[str] = set()
    needle = q.strip().casefold()
    for api in listed:
        all_tags.update(api.tags)
        haystack = " ".join([api.name, api.slug, api.description, *api.tags]).casefold()
        if needle and needle not in haystack:
            continue
        if tag and tag not in api.tags:
            continue
        entries.append({"api": api, "numbers": (numbers.value or {}).get(str(api.id))})
    context = {
        "anonymous": session is None,
        "me": me,
        "orgs": orgs,
        "entries": entries,
        "all_tags": sorted(all_tags),
        "q": q,
        "tag": tag,
        "numbers_org": numbers_org,
        "numbers": numbers,
        "days": NUMBERS_DAYS,
        "section": "catalog",
        "onboarding": onboarding,
        "problem": problem,
        "poll_seconds": FIRST_CALL_POLL_SECONDS,
    }
    return render(request, "portal_catalog.html", context, status=status)


@router.get("")
async def catalog(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    tag: Annotated[str, Query(max_length=100)] = "",
    org: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    session = await _visitor(request)
    reads = await _catalog_reads(request, session)
    return await _catalog_page(request, session, reads, q=q, tag=tag, org=org)


def _member_org(orgs: list[Org], org_id: uuid.UUID) -> Org:
    """One of the user's orgs; 404 for an org they are not in."""
    found = next((o for o in orgs if o.id == org_id), None)
    if found is None:
        raise BackendProblem("accounts", 404, {"title": "Not Found", "status": 404})
    return found


@router.post("/onboarding/key")
async def create_first_key(request: Request, org_id: Annotated[uuid.UUID, Form()]) -> Response:
    """The org's first key, from the onboarding checklist: a live key once the email is
    verified (accounts refuses live keys before), a `tg_test_` key until then. Shown once,
    with a `curl` line for the catalog's first GET operation."""
    session = await _visitor(request)
    if session is None:
        raise SignInRequired
    token = session.access_token
    # Everything the page needs accounts for is read first: once the key exists, nothing
    # may keep it from the page.
    reads = await _catalog_reads(request, session)
    me = reads.me
    assert me is not None  # signed in
    org = _member_org(reads.orgs, org_id)
    environment = "live" if me.email_verified else "test"
    body = {
        "name": "first key" if environment == "live" else "first test key",
        "environment": environment,
        "metadata": {"created_by": "developer-portal-onboarding"},
    }
    onboarding = Onboarding(org=org, verified=me.email_verified, environment=environment)
    try:
        issued = await backends(request).create_key(token, org.id, body)
    except BackendProblem as exc:
        if exc.status == 401:
            raise SignInRequired from exc
        return await _catalog_page(
            request,
            session,
            reads,
            org=str(org.id),
            onboarding=onboarding,
            problem=exc,
            status=exc.status,
        )
    first_call = await _first_call(request, token, reads.listed)  # None when it cannot tell
    done = Onboarding(
        org=org,
        verified=me.email_verified,
        environment=environment,
        issued=issued,
        first_call=first_call,
    )
    return await _catalog_page(request, session, reads, org=str(org.id), onboarding=done)


@router.get("/onboarding/first-call")
async def first_call(
    request: Request,
    org_id: uuid.UUID,
    since: datetime,
    mode: Literal["live", "test"] = "live",
) -> Response:
    """The onboarding's "first call" fragment (htmx polls it): waiting, or celebrating the
    org's first successful request since `since` (the key's creation), which stops it."""
    session = await _visitor(request)
    if session is None:
        raise SignInRequired
    _me, orgs = await identity(request, session)
    org = _member_org(orgs, org_id)
    now = datetime.now(UTC)
    start = max(since if since.tzinfo else since.replace(tzinfo=UTC), now - FIRST_CALL_WINDOW)
    successes: int | None = None
    try:
        by_status = await backends(request).usage_top_by(
            session.access_token, org.id, "status", start, now, {"mode": mode}, limit=50
        )
        successes = sum(i.requests for i in by_status if (i.value or "")[:1] in ("2", "3"))
    except BackendDown:
        successes = None  # usage did not answer: keep waiting
    except BackendProblem as exc:
        if exc.status == 401:
            raise SignInRequired from exc
        raise
    context = {
        "org": org,
        "since": start,
        "mode": mode,
        "successes": successes or 0,
        "poll_seconds": FIRST_CALL_POLL_SECONDS,
    }
    return render(request, "portal_first_call.html", context)


@router.get("/apis/{slug}/openapi.json")
async def openapi_json(request: Request, slug: str) -> Response:
    session = await _visitor(request)
    token = session.access_token if session else None
    language = request.state.language
    document = await _read(backends(request).catalog_document(token, slug, language))
    # The same URL answers in the visitor's language (their cookie or Accept-Language).
    return JSONResponse(document, headers={"vary": "Cookie, Accept-Language"})


def _writable_orgs(me: Me, orgs: list[Org]) -> list[Org]:
    return [o for o in orgs if me.is_admin or me.role_in(o.id) in ("developer", "owner")]


def _docs_response(request: Request, context: dict[str, object], status: int = 200) -> Response:
    gateway = _settings(request).gateway_url.rstrip("/")
    response = render(request, "portal_docs.html", {**context, "gateway": gateway}, status=status)
    response.headers["content-security-policy"] = DOCS_CSP.format(gateway=_origin(gateway))
    return response


@dataclass(frozen=True)
class DocsReads:
    """What a signed-in docs page needs accounts to answer, read before any write the
    page shows the result of."""

    me: Me
    orgs: list[Org]
    api: CatalogApi


async def _docs_reads(request: Request, session: Session, slug: str) -> DocsReads:
    (me, orgs), api = await asyncio.gather(
        identity(request, session),
        _read(backends(request).catalog_api(session.access_token, slug)),
    )
    return DocsReads(me=me, orgs=orgs, api=api)


async def _docs_page(
    request: Request,
    session: Session,
    reads: DocsReads,
    *,
    org: str | None = None,
    issued_key: str | None = None,
    problem: BackendProblem | None = None,
    status: int = 200,
) -> Response:
    """A signed-in docs page; what it reads here beside `reads` may fail without failing
    the page."""
    token = session.access_token
    me, orgs, api = reads.me, reads.orgs, reads.api
    numbers_org = _numbers_org(orgs, org)
    # Try-it calls use test keys: their numbers are shown beside the live ones.
    numbers, test_numbers = await asyncio.gather(
        _numbers(request, token, numbers_org), _numbers(request, token, numbers_org, "test")
    )
    context = {
        "anonymous": False,
        "me": me,
        "orgs": orgs,
        "api": api,
        "writable_orgs": _writable_orgs(me, orgs),
        "numbers_org": numbers_org,
        "numbers": numbers,
        "mine": (numbers.value or {}).get(str(api.id)),
        "mine_test": (test_numbers.value or {}).get(str(api.id)),
        "days": NUMBERS_DAYS,
        "issued_key": issued_key,
        "problem": problem,
        "test_key_hours": TEST_KEY_HOURS,
        "section": "docs",
    }
    return _docs_response(request, context, status)


def _origin(url: str) -> str:
    match = re.match(r"^(https?://[^/]+)", url)
    return match.group(1) if match else ""


@router.get("/apis/{slug}")
async def docs(
    request: Request, slug: str, org: Annotated[str | None, Query(max_length=40)] = None
) -> Response:
    session = await _visitor(request)
    if session is None:
        api = await _read(backends(request).catalog_api(None, slug))
        return _docs_response(request, {"anonymous": True, "api": api, "section": "docs"})
    return await _docs_page(request, session, await _docs_reads(request, session, slug), org=org)


@router.post("/apis/{slug}/test-key")
async def create_test_key(
    request: Request, slug: str, org_id: Annotated[uuid.UUID, Form()]
) -> Response:
    """A `tg_test_` key for this API only, low limits, expiring in a day, shown once."""
    session = await _visitor(request)
    if session is None:
        raise SignInRequired
    token = session.access_token
    # Everything the page needs accounts for is read first: once the key exists, nothing
    # may keep it from the page.
    reads = await _docs_reads(request, session, slug)
    api = reads.api
    expires = datetime.now(UTC) + timedelta(hours=TEST_KEY_HOURS)
    body = {
        "name": f"portal test key · {api.slug}",
        "environment": "test",
        "expires_at": expires.isoformat(),
        "allowed_api_ids": [str(api.id)],
        "limits": TEST_KEY_LIMITS,
        "metadata": {"created_by": "developer-portal"},
    }
    try:
        issued = await backends(request).create_key(token, org_id, body)
    except BackendProblem as exc:
        if exc.status == 401:
            raise SignInRequired from exc
        return await _docs_page(
            request, session, reads, org=str(org_id), problem=exc, status=exc.status
        )
    return await _docs_page(request, session, reads, org=str(org_id), issued_key=issued.key)


@router.get("/apis/{slug}/changelog")
async def changelog(
    request: Request, slug: str, cursor: Annotated[str | None, Query(max_length=500)] = None
) -> Response:
    """What each OpenAPI import changed in the operations customers can call, newest
    first, breaking changes flagged: accounts' public changelog, read like the catalog
    (anonymous visitors without a token, signed-in ones with theirs)."""
    session = await _visitor(request)
    client = backends(request)
    me: Me | None = None
    orgs: list[Org] = []
    if session is None:
        api, entries = await asyncio.gather(
            _read(client.catalog_api(None, slug)),
            _read(client.catalog_changelog(None, slug, cursor)),
        )
    else:
        token = session.access_token
        (me, orgs), api, entries = await asyncio.gather(
            identity(request, session),
            _read(client.catalog_api(token, slug)),
            _read(client.catalog_changelog(token, slug, cursor)),
        )
    context = {
        "anonymous": session is None,
        "me": me,
        "orgs": orgs,
        "api": api,
        "entries": entries,
        "section": "changelog",
    }
    return render(request, "portal_changelog.html", context)
