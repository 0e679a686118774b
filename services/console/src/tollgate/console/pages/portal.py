"""The developer portal (`/portal`): the API catalog, each API's documentation (Scalar,
from the consumer document of `consumer_openapi`), a test key for the try-it panel, and
the visitor's own numbers per API.

Accounts serves the registry to org members only (no anonymous read), and the console
holds no credential of its own: an anonymous visitor gets the portal's public layout with
a sign-in prompt, never a catalog read through a side door. `portal_public = false` sends
anonymous visitors to the sign-in page instead.

Raw keys: a test key is created with the user's token and returned in that one response
(like the key page); a pasted key stays in the browser's session storage and goes only to
the gateway. Neither is ever logged by the console.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, Response

from tollgate.console.backends import Api, BackendProblem, Me, Org, TopItem
from tollgate.console.config import Settings
from tollgate.console.consumer_openapi import ApiFacts, RouteFacts, consumer_document
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

LISTED = ("active", "deprecated")
NUMBERS_DAYS = 7
TEST_KEY_HOURS = 24
TEST_KEY_LIMITS = {"per_second": 2, "per_minute": 30, "per_day": 500}
DOCS_CSP = (
    # Scalar injects its own <style> elements: styles may be inline on this page only;
    # scripts stay 'self'. connect-src adds the gateway, which the try-it panel calls.
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self' {gateway}; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_TAGS = re.compile(r"\s+")


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


def _facts(api: Api) -> ApiFacts:
    return ApiFacts(
        slug=api.slug,
        name=api.name,
        api_version=api.api_version,
        status=api.status,
        price=api.price,
        upstream_url=api.upstream_url,
        sunset_at=api.sunset_at,
        limits=api.limits,
        upstream_header_names=api.upstream_header_names,
        routes=[
            RouteFacts(
                method=r.method,
                path_template=r.path_template,
                price=r.price,
                limits=r.limits,
                required_scopes=r.required_scopes,
                operation_id=r.operation_id,
            )
            for r in api.routes
        ],
    )


def _summary(doc: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The document's description (first paragraph) and its tags."""
    if not doc:
        return "", []
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    description = info.get("description") if isinstance(info, dict) else None
    text = description.strip().split("\n\n")[0][:300] if isinstance(description, str) else ""
    tags: list[str] = []
    for tag in doc.get("tags") or []:
        if isinstance(tag, dict) and isinstance(tag.get("name"), str):
            tags.append(_TAGS.sub(" ", tag["name"]))
    for item in (doc.get("paths") or {}).values():
        if isinstance(item, dict):
            for operation in item.values():
                if isinstance(operation, dict):
                    tags.extend(t for t in operation.get("tags") or [] if isinstance(t, str))
    return text, sorted(set(tags))[:20]


def _prices(api: Api) -> tuple[int, int]:
    """Lowest and highest price per call over the API's routes (the API's own price for
    routes without one, or when it has none)."""
    prices = [api.price if r.price is None else r.price for r in api.routes] or [api.price]
    return min(prices), max(prices)


def _numbers_org(me: Me, orgs: list[Org], wanted: str | None) -> Org | None:
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


@router.get("")
async def catalog(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    tag: Annotated[str, Query(max_length=100)] = "",
    org: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    session = await _visitor(request)
    if session is None:
        return render(request, "portal_catalog.html", {"anonymous": True, "section": "catalog"})
    client = backends(request)
    token = session.access_token
    (me, orgs), apis = await asyncio.gather(identity(request, session), client.apis(token))
    listed = [a for a in apis if a.status in LISTED]
    documents = await asyncio.gather(
        *(panel(client.api_document(token, a.id)) for a in listed if a.has_openapi_document)
    )
    by_id = dict(
        zip(
            [a.id for a in listed if a.has_openapi_document],
            [d.value for d in documents],
            strict=True,
        )
    )
    numbers_org = _numbers_org(me, orgs, org)
    numbers = await _numbers(request, token, numbers_org)
    entries = []
    all_tags: set[str] = set()
    needle = q.strip().casefold()
    for api in listed:
        description, tags = _summary(by_id.get(api.id))
        all_tags.update(tags)
        haystack = " ".join([api.name, api.slug, description, *tags]).casefold()
        if needle and needle not in haystack:
            continue
        if tag and tag not in tags:
            continue
        low, high = _prices(api)
        entries.append(
            {
                "api": api,
                "description": description,
                "tags": tags,
                "price_low": low,
                "price_high": high,
                "numbers": (numbers.value or {}).get(str(api.id)),
            }
        )
    context = {
        "anonymous": False,
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
    }
    return render(request, "portal_catalog.html", context)


async def _api_by_slug(request: Request, token: str, slug: str) -> Api:
    apis = await backends(request).apis(token)
    found = next((a for a in apis if a.slug == slug and a.status in LISTED), None)
    if found is None:
        raise BackendProblem("accounts", 404, {"title": "Not Found", "status": 404})
    return found


async def _document(request: Request, token: str, api: Api) -> dict[str, Any]:
    imported = (
        await backends(request).api_document(token, api.id) if api.has_openapi_document else None
    )
    return consumer_document(_facts(api), imported, _settings(request).gateway_url)


@router.get("/apis/{slug}/openapi.json")
async def openapi_json(request: Request, slug: str) -> Response:
    session = await _visitor(request)
    if session is None:
        raise SignInRequired
    api = await _api_by_slug(request, session.access_token, slug)
    document = await _document(request, session.access_token, api)
    return JSONResponse(document)


def _writable_orgs(me: Me, orgs: list[Org]) -> list[Org]:
    return [o for o in orgs if me.is_admin or me.role_in(o.id) in ("developer", "owner")]


async def _docs_page(
    request: Request,
    session: Session,
    slug: str,
    *,
    org: str | None = None,
    issued_key: str | None = None,
    problem: BackendProblem | None = None,
    status: int = 200,
) -> Response:
    token = session.access_token
    (me, orgs), api = await asyncio.gather(
        identity(request, session), _api_by_slug(request, token, slug)
    )
    numbers_org = _numbers_org(me, orgs, org)
    # Try-it calls use test keys: their numbers are shown beside the live ones.
    numbers, test_numbers = await asyncio.gather(
        _numbers(request, token, numbers_org), _numbers(request, token, numbers_org, "test")
    )
    low, high = _prices(api)
    gateway = _settings(request).gateway_url.rstrip("/")
    context = {
        "me": me,
        "orgs": orgs,
        "api": api,
        "price_low": low,
        "price_high": high,
        "gateway": gateway,
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
    response = render(request, "portal_docs.html", context, status=status)
    response.headers["content-security-policy"] = DOCS_CSP.format(gateway=_origin(gateway))
    return response


def _origin(url: str) -> str:
    match = re.match(r"^(https?://[^/]+)", url)
    return match.group(1) if match else ""


@router.get("/apis/{slug}")
async def docs(
    request: Request, slug: str, org: Annotated[str | None, Query(max_length=40)] = None
) -> Response:
    session = await _visitor(request)
    if session is None:
        return render(request, "portal_catalog.html", {"anonymous": True, "section": "docs"})
    return await _docs_page(request, session, slug, org=org)


@router.post("/apis/{slug}/test-key")
async def create_test_key(
    request: Request, slug: str, org_id: Annotated[uuid.UUID, Form()]
) -> Response:
    """A `tg_test_` key for this API only, low limits, expiring in a day, shown once."""
    session = await _visitor(request)
    if session is None:
        raise SignInRequired
    token = session.access_token
    api = await _api_by_slug(request, token, slug)
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
            request, session, slug, org=str(org_id), problem=exc, status=exc.status
        )
    return await _docs_page(request, session, slug, org=str(org_id), issued_key=issued.key)


@router.get("/apis/{slug}/changelog")
async def changelog(
    request: Request, slug: str, cursor: Annotated[str | None, Query(max_length=500)] = None
) -> Response:
    """What each OpenAPI import changed in the API, newest first, breaking changes
    flagged (accounts serves the changelog to org members and admins: sign-in needed)."""
    session = await _visitor(request)
    if session is None:
        raise SignInRequired
    token = session.access_token
    (me, orgs), apis = await asyncio.gather(
        identity(request, session), backends(request).apis(token)
    )
    api = next((a for a in apis if a.slug == slug and a.status in ("active", "deprecated")), None)
    if api is None:
        raise BackendProblem("accounts", 404, {"title": "Not Found", "status": 404})
    entries = await backends(request).api_changelog(token, api.id, cursor)
    context = {"me": me, "orgs": orgs, "api": api, "entries": entries, "section": "changelog"}
    return render(request, "portal_changelog.html", context)
