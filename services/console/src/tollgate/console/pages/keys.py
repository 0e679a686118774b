"""API keys: the filtered list, creating one (the raw key is shown once, with a `curl`
line calling an API the key may call), a key's page with its usage, and rotate,
disable/enable and revoke.

Write controls are shown to developers, owners and admins only, but the console does
not decide: accounts authorises every write, and a refusal is shown inline.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import Api, BackendDown, BackendProblem, IssuedKey, Key
from tollgate.console.config import Settings
from tollgate.console.web import (
    INTEGER,
    CurrentSession,
    OrgContext,
    Panel,
    backends,
    org_context,
    panel,
    render,
)

router = APIRouter()
STATUSES = ("active", "disabled", "revoked", "expired")
LIMIT_FIELDS = ("per_second", "per_minute", "per_hour", "per_day", "per_month")
GRACE_CHOICES = (0, 3600, 86_400)
PLACEHOLDER_PATH = "/<api-slug>/<path>"  # the curl line's, when no API can be named
CURL_PATH_SAFE = "/{}-._~:@,;=+*&()'%"  # a route path's characters kept as they are


@dataclass(frozen=True)
class ExampleCall:
    """The `curl` line of a key just shown: a call at the gateway it may make."""

    method: str
    url: str
    api: Api | None = None  # None: no API known to the key; the URL has a placeholder path


def example_call(gateway_url: str, key: Key, apis: list[Api] | None) -> ExampleCall:
    """A call `key` may make: an API it is allowed (every API when it names none), not
    retired, active ones first; of its routes, one the key has the scopes for, not
    deprecated, GET, without path parameters, in that order of preference (the first
    listed among equals); an API without routes takes any path, so its root. Nothing past
    its Sunset. No such API or route (or the APIs could not be read): a placeholder path."""
    gateway = gateway_url.rstrip("/")
    scopes = set(key.scopes)
    now = datetime.now(UTC)
    found: list[tuple[tuple[bool, bool, bool, bool, int], str, str, Api]] = []
    for order, api in enumerate(apis or []):
        if api.status == "retired" or (key.allowed_api_ids and api.id not in key.allowed_api_ids):
            continue
        if api.sunset_at is not None and api.sunset_at <= now:
            continue
        later = api.status != "active"
        if not api.routes:
            found.append(((later, False, False, False, order), "GET", "/", api))
        for route in api.routes:
            gone = route.sunset_at is not None and route.sunset_at <= now
            if gone or not set(route.required_scopes) <= scopes:
                continue
            method = "GET" if route.method == "*" else route.method
            path = route.path_template
            found.append(
                ((later, route.deprecated, method != "GET", "{" in path, order), method, path, api)
            )
    if not found:
        return ExampleCall("GET", gateway + PLACEHOLDER_PATH)
    _rank, method, path, api = min(found, key=lambda item: item[0])  # first listed among equals
    # The line is pasted into a shell inside double quotes, and a path comes from an
    # imported document: `"`, `$`, `` ` ``, `\` and `!` would run there (`$(…)` could send
    # the key anywhere). Percent-encoded, the gateway reads the same path.
    return ExampleCall(method, f"{gateway}/{api.slug}{quote(path, safe=CURL_PATH_SAFE)}", api)


def _split(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", text.strip()) if part]


def _nav(ctx: OrgContext) -> dict[str, Any]:
    return {"ctx": ctx, "me": ctx.me, "orgs": ctx.orgs, "org": ctx.org}


@router.get("/orgs/{org_id}/keys")
async def key_list(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    status: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    client = backends(request)
    needle = (q or "").strip().lower()
    # Accounts filters by status and name, so the pages of a big org are the filtered
    # ones; a search for a key's prefix (`tg_…`) is matched here, on the page read.
    by_name = needle if needle and not needle.startswith("tg_") else None
    ctx, page = await asyncio.gather(
        org_context(request, session, org_id),
        panel(
            client.keys(
                session.access_token,
                org_id,
                cursor,
                status=status if status in STATUSES else None,
                name_contains=by_name,
            )
        ),
    )
    now = datetime.now(UTC)
    shown: list[Key] = []
    if page.value is not None:
        shown = [
            k
            for k in page.value.items
            if (status not in STATUSES or k.status(now) == status)
            and (not needle or needle in k.name.lower() or needle in f"{k.prefix}{k.last4}".lower())
        ]
    template = "keys_table.html" if request.headers.get("hx-request") else "keys.html"
    return render(
        request,
        template,
        {
            **_nav(ctx),
            "page": page,
            "keys": shown,
            "now": now,
            "status": status if status in STATUSES else "",
            "statuses": STATUSES,
            "q": q or "",
            "filtered": bool(needle or status in STATUSES),
        },
    )


@router.get("/orgs/{org_id}/keys/new")
async def key_form(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    ctx, apis = await asyncio.gather(
        org_context(request, session, org_id), panel(backends(request).apis(session.access_token))
    )
    return render(
        request,
        "key_new.html",
        {**_nav(ctx), "apis": apis, "values": {}, "errors": {}, "limit_fields": LIMIT_FIELDS},
    )


def _key_body(form: dict[str, Any], api_ids: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The accounts request body from the form, and the fields the console itself
    could not read (accounts validates everything else)."""
    errors: dict[str, str] = {}
    limits: dict[str, int] = {}
    for name in LIMIT_FIELDS:
        raw = str(form.get(name) or "").strip()
        if raw:
            if INTEGER.fullmatch(raw):
                limits[name] = int(raw)
            else:
                errors[name] = "number"
    body: dict[str, Any] = {
        "name": str(form.get("name") or "").strip(),
        "environment": "test" if form.get("environment") == "test" else "live",
        "limits": limits,
        "scopes": _split(str(form.get("scopes") or "")),
        "allowed_api_ids": api_ids,
        "ip_allowlist": _split(str(form.get("ip_allowlist") or "")),
    }
    expires = str(form.get("expires_on") or "").strip()
    if expires:
        try:
            body["expires_at"] = datetime.combine(
                date.fromisoformat(expires), time(0, 0), tzinfo=UTC
            ).isoformat()
        except ValueError:
            errors["expires_on"] = "date"
    return body, errors


@router.post("/orgs/{org_id}/keys/new")
async def key_create(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    client = backends(request)
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    api_ids = [v for v in form.getlist("allowed_api_ids") if isinstance(v, str)]
    body, errors = _key_body(values, api_ids)
    problem: BackendProblem | None = None
    down = False
    issued: IssuedKey | None = None
    # The page's reads first: once the key exists, nothing may keep it from the page.
    ctx, apis = await asyncio.gather(
        org_context(request, session, org_id), panel(client.apis(session.access_token))
    )
    if not errors:
        try:
            issued = await client.create_key(session.access_token, org_id, body)
        except BackendProblem as exc:
            problem, errors = exc, exc.field_errors
        except BackendDown:
            down = True
    if issued is not None:
        return _issued_page(request, ctx, issued, apis)
    return render(
        request,
        "key_new.html",
        {
            **_nav(ctx),
            "apis": apis,
            "values": values,
            "selected_apis": api_ids,
            "errors": errors,
            "problem": problem,
            "down": down,
            "limit_fields": LIMIT_FIELDS,
        },
        status=problem.status if problem else (503 if down else 400 if errors else 200),
    )


def _issued_page(
    request: Request,
    ctx: OrgContext,
    issued: IssuedKey,
    apis: Panel[list[Api]],
    *,
    rotated: bool = False,
    grace: int = 0,
) -> Response:
    """The one page that shows the raw key, with a `curl` line that uses it."""
    settings: Settings = request.app.state.settings
    context = {
        **_nav(ctx),
        "issued": issued,
        "call": example_call(settings.gateway_url, issued, apis.value),
        "rotated": rotated,
        "grace": grace,
    }
    return render(request, "key_issued.html", context)


async def _org_key(
    request: Request, session: CurrentSession, org_id: uuid.UUID, key_id: uuid.UUID
) -> Key:
    """The key, when it is the org's: another org's key (which the user may be able to
    read too) is the 404 page under this org, never shown or changed under it."""
    key = await backends(request).key(session.access_token, key_id)
    if key.org_id != org_id:
        raise BackendProblem("accounts", 404, {"title": "Not Found"})
    return key


async def _key_page(
    request: Request,
    org_id: uuid.UUID,
    key_id: uuid.UUID,
    session: CurrentSession,
    *,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    client = backends(request)
    token = session.access_token
    ctx, key, stats, apis = await asyncio.gather(
        org_context(request, session, org_id),
        _org_key(request, session, org_id, key_id),
        panel(client.key_stats(token, key_id)),
        panel(client.apis(token)),
    )
    api_names = {str(a.id): a.name for a in apis.value or []}
    return render(
        request,
        "key.html",
        {
            **_nav(ctx),
            "key": key,
            "key_status": key.status(datetime.now(UTC)),
            "stats": stats,
            "api_names": api_names,
            "problem": problem,
            "down": down,
            "grace_choices": GRACE_CHOICES,
        },
        status=status,
    )


@router.get("/orgs/{org_id}/keys/{key_id}")
async def key_page(
    request: Request, org_id: uuid.UUID, key_id: uuid.UUID, session: CurrentSession
) -> Response:
    return await _key_page(request, org_id, key_id, session)


async def _key_action(
    request: Request,
    org_id: uuid.UUID,
    key_id: uuid.UUID,
    session: CurrentSession,
    action: str,
    grace_seconds: int = 0,
) -> Response:
    client = backends(request)
    token = session.access_token
    await _org_key(request, session, org_id, key_id)
    try:
        if action == "rotate":
            # The page's reads first: once the key is rotated, nothing may keep the new
            # one from the page.
            ctx, apis = await asyncio.gather(
                org_context(request, session, org_id), panel(client.apis(token))
            )
            issued = await client.rotate_key(token, key_id, grace_seconds)
            return _issued_page(request, ctx, issued, apis, rotated=True, grace=grace_seconds)
        if action == "revoke":
            await client.revoke_key(token, key_id)
        else:
            await client.update_key(token, key_id, {"enabled": action == "enable"})
    except BackendProblem as exc:
        if exc.status == 401:
            raise
        return await _key_page(request, org_id, key_id, session, problem=exc, status=exc.status)
    except BackendDown:
        return await _key_page(request, org_id, key_id, session, down=True, status=503)
    return RedirectResponse(f"/orgs/{org_id}/keys/{key_id}", status_code=303)


@router.post("/orgs/{org_id}/keys/{key_id}/enable")
async def key_enable(
    request: Request, org_id: uuid.UUID, key_id: uuid.UUID, session: CurrentSession
) -> Response:
    return await _key_action(request, org_id, key_id, session, "enable")


@router.post("/orgs/{org_id}/keys/{key_id}/disable")
async def key_disable(
    request: Request, org_id: uuid.UUID, key_id: uuid.UUID, session: CurrentSession
) -> Response:
    return await _key_action(request, org_id, key_id, session, "disable")


@router.post("/orgs/{org_id}/keys/{key_id}/rotate")
async def key_rotate(
    request: Request,
    org_id: uuid.UUID,
    key_id: uuid.UUID,
    session: CurrentSession,
    grace_seconds: Annotated[int, Form()] = 0,
) -> Response:
    grace = grace_seconds if grace_seconds in GRACE_CHOICES else 0
    return await _key_action(request, org_id, key_id, session, "rotate", grace)


@router.get("/orgs/{org_id}/keys/{key_id}/revoke")
async def key_revoke_confirm(
    request: Request, org_id: uuid.UUID, key_id: uuid.UUID, session: CurrentSession
) -> Response:
    ctx, key = await asyncio.gather(
        org_context(request, session, org_id), _org_key(request, session, org_id, key_id)
    )
    return render(request, "key_revoke.html", {**_nav(ctx), "key": key})


@router.post("/orgs/{org_id}/keys/{key_id}/revoke")
async def key_revoke(
    request: Request, org_id: uuid.UUID, key_id: uuid.UUID, session: CurrentSession
) -> Response:
    return await _key_action(request, org_id, key_id, session, "revoke")
