"""The operator's writes to the API registry (`/admin/apis…`, platform admins only):
register and edit an API (upstream, write-only credentials, price, limits, status with
its Sunset date, sandbox settings), delete it, add / edit / delete its routes (each may
override the API's sandbox settings, field by field, or inherit them, and be deprecated
with a Sunset date and time of its own), and import an
OpenAPI document from a file, pasted text or a URL (accounts fetches the URL under its
SSRF policy; the console never does).

Accounts validates and authorises every write; this module only turns the forms into
accounts' request bodies (numbers, dates and header lines it cannot send are reported
next to their field before any call) and shows accounts' problem+json answers next to
the fields they name. Upstream credentials are never read back: the edit form leaves
them as they are unless new ones are typed or "remove" is ticked.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from tollgate.console.backends import AdminApi, BackendDown, BackendProblem, Route
from tollgate.console.pages.operator import operator_page, require_operator
from tollgate.console.web import INTEGER, CurrentSession, OrgNotFound, backends, panel

router = APIRouter(prefix="/admin/apis")

STATUSES = ("active", "deprecated", "retired")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "*")
WINDOWS = ("per_second", "per_minute", "per_hour", "per_day", "per_month")
SANDBOX_FLAGS = ("mock", "mock_stateful", "validate_requests", "validate_responses")
SANDBOX_NUMBERS = ("mock_latency_ms", "mock_error_percent")
SANDBOX_FIELDS = (
    "mock",
    "mock_stateful",
    "mock_latency_ms",
    "mock_error_percent",
    "validate_requests",
    "validate_responses",
)
FLAG_CHOICES = {"on": True, "off": False}  # a route's flag; "" inherits the API's
# Problems of accounts that concern one field without naming it in `errors`.
SLUG_FIELDS = {
    "slug-taken": "slug",
    "header-not-allowed": "upstream_headers",
    "route-exists": "path_template",
}
# Problems shown next to a field as the console's own (translated) message.
SLUG_CODES = {"sunset-in-past": ("sunset_at", "future")}
Form = dict[str, Any]


def _values(form: Any) -> dict[str, str]:
    return {k: v.strip() for k, v in form.multi_items() if isinstance(v, str) and k != "csrf_token"}


def _integer(values: dict[str, str], name: str, errors: dict[str, str]) -> int | None:
    raw = values.get(name, "")
    if raw == "":
        return None
    if INTEGER.fullmatch(raw):
        return int(raw)
    errors[name] = "number"
    return None


def _limits(values: dict[str, str], errors: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for window in WINDOWS:
        n = _integer(values, f"limits.{window}", errors)
        if f"limits.{window}" in errors:
            errors.setdefault("limits", "number")
        elif n is not None:
            out[window] = n
    return out


def _headers(raw: str, errors: dict[str, str]) -> dict[str, str]:
    """`Name: value` lines as a dict; a line without a colon is a `headers` error."""
    out: dict[str, str] = {}
    for line in raw.splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            errors["upstream_headers"] = "headers"
            return {}
        out[name.strip()] = value.strip()
    return out


def api_body(values: dict[str, str], *, creating: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The API form as accounts' create (POST) or change (PATCH) body, or the fields
    that cannot be sent. A PATCH sends every field the form shows (the whole state)."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {
        "name": values.get("name", ""),
        "api_version": values.get("api_version", "") or "v1",
        "upstream_url": values.get("upstream_url", ""),
        "charge_failed_calls": values.get("charge_failed_calls") == "on",
        "limits": _limits(values, errors),
        "sandbox_url": values.get("sandbox_url") or None,
    }
    if creating:
        body["slug"] = values.get("slug", "")
    if values.get("status") in STATUSES:
        body["status"] = values["status"]
    for name in ("price", "timeout_ms"):
        n = _integer(values, name, errors)
        if n is not None:
            body[name] = n
    sunset = values.get("sunset_at", "")
    try:
        body["sunset_at"] = (
            f"{date.fromisoformat(sunset).isoformat()}T00:00:00Z" if sunset else None
        )
    except ValueError:
        errors["sunset_at"] = "date"
    sandbox: dict[str, Any] = {flag: True for flag in SANDBOX_FLAGS if values.get(flag) == "on"}
    for name in SANDBOX_NUMBERS:
        n = _integer(values, name, errors)
        if name in errors:
            errors.setdefault("sandbox", "number")
        elif n is not None:
            sandbox[name] = n
    body["sandbox"] = sandbox
    headers = _headers(values.get("upstream_headers", ""), errors)
    if values.get("remove_credentials") == "on" and not creating:
        body["upstream_headers"] = None
    elif headers:
        body["upstream_headers"] = headers
    return body, errors


def api_values(api: AdminApi) -> dict[str, str]:
    """An API's current state as the edit form's values (never its credentials)."""
    values = {
        "name": api.name,
        "slug": api.slug,
        "api_version": api.api_version,
        "upstream_url": api.upstream_url,
        "status": api.status,
        "price": str(api.price),
        "timeout_ms": str(api.timeout_ms or ""),
        "charge_failed_calls": "on" if api.charge_failed_calls else "",
        "sunset_at": api.sunset_at.date().isoformat() if api.sunset_at else "",
        "sandbox_url": api.sandbox_url or "",
    }
    values |= {f"limits.{w}": str(n) for w, n in api.limits.items()}
    values |= {f: "on" for f in SANDBOX_FLAGS if api.sandbox.get(f) is True}
    values |= {n: str(api.sandbox[n]) for n in SANDBOX_NUMBERS if api.sandbox.get(n) is not None}
    return values


def _route_sandbox(values: dict[str, str], errors: dict[str, str]) -> dict[str, Any] | None:
    """The route's sandbox overrides (`sandbox.<field>`): a flag is "on", "off" or ""
    (the API's), a number or empty (the API's). None when every field inherits."""
    out: dict[str, Any] = {}
    for flag in SANDBOX_FLAGS:
        choice = values.get(f"sandbox.{flag}", "")
        if choice in FLAG_CHOICES:
            out[flag] = FLAG_CHOICES[choice]
    for name in SANDBOX_NUMBERS:
        n = _integer(values, f"sandbox.{name}", errors)
        if n is not None:
            out[name] = n
    return out or None


def _sunset_text(moment: datetime | None) -> str:
    """A route's Sunset as the form's `datetime-local` value (UTC, to the minute)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if moment else ""


def _route_sunset(raw: str, errors: dict[str, str]) -> str | None:
    """The form's Sunset (a `datetime-local` value, read as UTC like every time the
    console shows, or a time with its offset) as RFC 3339; None when empty."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):  # overflow: year 1 east of UTC, 9999 west of it
        errors["sunset_at"] = "datetime"
        return None


def route_body(
    values: dict[str, str], current: Route | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The route form as accounts' body; an empty price is the API's (null), and so is
    every sandbox field left to inherit (`"sandbox": null` when all of them are).

    Deprecation: a new route sends `deprecated` and `sunset_at` only when set. An edit
    (`current`) always sends `deprecated` (accounts restamps `deprecated_at` only when it
    changes) and `sunset_at` only when it differs from the route's: emptied is null (no
    date), and an unchanged Sunset that has passed does not make every other change a 422
    `sunset-in-past`."""
    errors: dict[str, str] = {}
    scopes = [s for s in re.split(r"[\s,]+", values.get("required_scopes", "")) if s]
    body: dict[str, Any] = {
        "method": values.get("method", "GET"),
        "path_template": values.get("path_template", ""),
        "price": _integer(values, "price", errors),
        "limits": _limits(values, errors),
        "required_scopes": scopes,
        "sandbox": _route_sandbox(values, errors),
    }
    deprecated = values.get("deprecated") == "on"
    raw_sunset = values.get("sunset_at", "")
    sunset = _route_sunset(raw_sunset, errors)
    if current is None:
        if deprecated:
            body["deprecated"] = True
        if sunset is not None:
            body["sunset_at"] = sunset
    else:
        body["deprecated"] = deprecated
        if raw_sunset != _sunset_text(current.sunset_at):
            body["sunset_at"] = sunset
    return body, errors


def route_values(route: Route) -> dict[str, str]:
    """A route's current state as the edit form's values."""
    values = {
        "method": route.method,
        "path_template": route.path_template,
        "price": "" if route.price is None else str(route.price),
        "required_scopes": " ".join(route.required_scopes),
        "deprecated": "on" if route.deprecated else "",
        "sunset_at": _sunset_text(route.sunset_at),
    }
    values |= {f"limits.{w}": str(n) for w, n in route.limits.items()}
    overrides = route.sandbox or {}
    for flag in SANDBOX_FLAGS:
        if isinstance(overrides.get(flag), bool):
            values[f"sandbox.{flag}"] = "on" if overrides[flag] else "off"
    for name in SANDBOX_NUMBERS:
        if overrides.get(name) is not None:
            values[f"sandbox.{name}"] = str(overrides[name])
    return values


def effective_sandbox(api: AdminApi, route: Route) -> list[tuple[str, Any, bool]]:
    """What the gateway applies to a route, field by field: (field, value, set on the
    route). Fields that are off and not set on the route are left out."""
    overrides = route.sandbox or {}
    out: list[tuple[str, Any, bool]] = []
    for name in SANDBOX_FIELDS:
        own = overrides.get(name)
        value = own if own is not None else api.sandbox.get(name)
        if own is not None or value:
            out.append((name, value, own is not None))
    return out


def _problem_errors(exc: BackendProblem) -> dict[str, str]:
    errors = dict(exc.field_errors)
    # A sandbox field accounts names (`body.sandbox.mock_latency_ms`) goes next to it.
    for error in exc.body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        loc = [str(p) for p in error.get("loc", []) if p != "body"]
        if len(loc) > 1 and loc[0] == "sandbox" and loc[1] in SANDBOX_FIELDS:
            errors.setdefault(f"sandbox.{loc[1]}", str(error.get("msg", "")))
    named = SLUG_FIELDS.get(exc.slug)
    if named:
        errors.setdefault(named, exc.message)
    if exc.slug in SLUG_CODES:
        name, code = SLUG_CODES[exc.slug]
        errors[name] = code
    return errors


def _failed(values: dict[str, str], exc: BackendProblem | BackendDown) -> tuple[Form, int]:
    if isinstance(exc, BackendDown):
        return {"values": values, "errors": {}, "down": True}, 503
    if exc.status == 401:
        raise exc
    form = {"values": values, "errors": _problem_errors(exc), "problem": exc}
    return form, exc.status if exc.status in (400, 403, 404, 409, 413, 422) else 400


async def _api(request: Request, token: str, api_id: uuid.UUID) -> AdminApi:
    try:
        return await backends(request).admin_api(token, api_id)
    except BackendProblem as exc:
        if exc.status == 404:
            raise OrgNotFound from exc
        raise


async def _api_form(
    request: Request,
    session: CurrentSession,
    *,
    api: AdminApi | None,
    form: Form,
    status: int = 200,
) -> Response:
    me, orgs = await require_operator(request, session)
    return operator_page(
        request,
        "admin_api_form.html",
        me,
        orgs,
        "apis",
        status=status,
        api=api,
        form=form,
        statuses=STATUSES,
        windows=WINDOWS,
    )


@router.get("/new")
async def new_api(request: Request, session: CurrentSession) -> Response:
    form = {"values": {"status": "active", "api_version": "v1", "price": "1"}, "errors": {}}
    return await _api_form(request, session, api=None, form=form)


@router.post("/new")
async def create_api(request: Request, session: CurrentSession) -> Response:
    await require_operator(request, session)
    values = _values(await request.form())
    body, errors = api_body(values, creating=True)
    if errors:
        form = {"values": values, "errors": errors}
        return await _api_form(request, session, api=None, form=form, status=400)
    try:
        api = await backends(request).create_api(session.access_token, body)
    except (BackendProblem, BackendDown) as exc:
        form, status = _failed(values, exc)
        return await _api_form(request, session, api=None, form=form, status=status)
    return RedirectResponse(f"/admin/apis/{api.id}?done=created", status_code=303)


@router.get("/{api_id}/edit")
async def edit_api(request: Request, session: CurrentSession, api_id: uuid.UUID) -> Response:
    await require_operator(request, session)
    api = await _api(request, session.access_token, api_id)
    form = {"values": api_values(api), "errors": {}}
    return await _api_form(request, session, api=api, form=form)


@router.post("/{api_id}/edit")
async def update_api(request: Request, session: CurrentSession, api_id: uuid.UUID) -> Response:
    await require_operator(request, session)
    api = await _api(request, session.access_token, api_id)
    values = _values(await request.form())
    body, errors = api_body(values, creating=False)
    if errors:
        form = {"values": values, "errors": errors}
        return await _api_form(request, session, api=api, form=form, status=400)
    try:
        await backends(request).update_api(session.access_token, api_id, body)
    except (BackendProblem, BackendDown) as exc:
        form, status = _failed(values, exc)
        return await _api_form(request, session, api=api, form=form, status=status)
    return RedirectResponse(f"/admin/apis/{api_id}?done=saved", status_code=303)


@router.post("/{api_id}/delete")
async def delete_api(request: Request, session: CurrentSession, api_id: uuid.UUID) -> Response:
    await require_operator(request, session)
    await backends(request).delete_api(session.access_token, api_id)
    return RedirectResponse("/admin/apis?done=deleted", status_code=303)


async def api_page(
    request: Request,
    session: CurrentSession,
    api_id: uuid.UUID,
    *,
    route_form: Form | None = None,
    import_form: Form | None = None,
    status: int = 200,
) -> Response:
    """The API's page with its route and import forms (shown again after an error)."""
    me, orgs = await require_operator(request, session)
    api, notices = await asyncio.gather(
        _api(request, session.access_token, api_id),
        panel(backends(request).deprecation_notices(session.access_token, api_id)),
    )
    return operator_page(
        request,
        "admin_api.html",
        me,
        orgs,
        "apis",
        status=status,
        api=api,
        methods=METHODS,
        windows=WINDOWS,
        route_form=route_form or {"values": {"method": "GET"}, "errors": {}},
        import_form=import_form or {"values": {}, "errors": {}},
        done=request.query_params.get("done", ""),
        counts={k: request.query_params.get(k, "") for k in ("created", "kept", "removed")},
        sandbox_flags=SANDBOX_FLAGS,
        effective={r.id: effective_sandbox(api, r) for r in api.routes},
        notices=notices,
        route_names={r.id: f"{r.method} {r.path_template}" for r in api.routes},
    )


@router.get("/{api_id}")
async def api_detail(request: Request, session: CurrentSession, api_id: uuid.UUID) -> Response:
    return await api_page(request, session, api_id)


@router.post("/{api_id}/routes")
async def add_route(request: Request, session: CurrentSession, api_id: uuid.UUID) -> Response:
    await require_operator(request, session)
    values = _values(await request.form())
    body, errors = route_body(values)
    if errors:
        form = {"values": values, "errors": errors}
        return await api_page(request, session, api_id, route_form=form, status=400)
    try:
        await backends(request).add_route(session.access_token, api_id, body)
    except (BackendProblem, BackendDown) as exc:
        form, status = _failed(values, exc)
        return await api_page(request, session, api_id, route_form=form, status=status)
    return RedirectResponse(f"/admin/apis/{api_id}?done=route-added", status_code=303)


async def _route_form(
    request: Request,
    session: CurrentSession,
    api_id: uuid.UUID,
    route_id: uuid.UUID,
    form: Form | None = None,
    status: int = 200,
) -> Response:
    me, orgs = await require_operator(request, session)
    api = await _api(request, session.access_token, api_id)
    route = next((r for r in api.routes if r.id == route_id), None)
    if route is None:
        raise OrgNotFound
    if form is None:
        form = {"values": route_values(route), "errors": {}}
    return operator_page(
        request,
        "admin_route.html",
        me,
        orgs,
        "apis",
        status=status,
        api=api,
        route=route,
        methods=METHODS,
        windows=WINDOWS,
        form=form,
        sandbox_flags=SANDBOX_FLAGS,
    )


@router.get("/{api_id}/routes/{route_id}")
async def edit_route(
    request: Request, session: CurrentSession, api_id: uuid.UUID, route_id: uuid.UUID
) -> Response:
    return await _route_form(request, session, api_id, route_id)


@router.post("/{api_id}/routes/{route_id}")
async def update_route(
    request: Request, session: CurrentSession, api_id: uuid.UUID, route_id: uuid.UUID
) -> Response:
    await require_operator(request, session)
    api = await _api(request, session.access_token, api_id)
    route = next((r for r in api.routes if r.id == route_id), None)
    if route is None:
        raise OrgNotFound
    values = _values(await request.form())
    body, errors = route_body(values, route)
    if errors:
        form = {"values": values, "errors": errors}
        return await _route_form(request, session, api_id, route_id, form, status=400)
    try:
        await backends(request).update_route(session.access_token, api_id, route_id, body)
    except (BackendProblem, BackendDown) as exc:
        form, status = _failed(values, exc)
        return await _route_form(request, session, api_id, route_id, form, status=status)
    return RedirectResponse(f"/admin/apis/{api_id}?done=route-saved", status_code=303)


@router.post("/{api_id}/routes/{route_id}/delete")
async def delete_route(
    request: Request, session: CurrentSession, api_id: uuid.UUID, route_id: uuid.UUID
) -> Response:
    await require_operator(request, session)
    await backends(request).delete_route(session.access_token, api_id, route_id)
    return RedirectResponse(f"/admin/apis/{api_id}?done=route-deleted", status_code=303)


@router.post("/{api_id}/openapi")
async def import_openapi(request: Request, session: CurrentSession, api_id: uuid.UUID) -> Response:
    """An OpenAPI document from the file field, else from the text area, else from the
    URL field (fetched by accounts)."""
    await require_operator(request, session)
    form = await request.form()
    upload = form.get("file")
    document = b""
    if isinstance(upload, UploadFile):
        document = await upload.read()
        await upload.close()
    if not document.strip() and isinstance(form.get("document"), str):
        document = str(form.get("document")).encode()
    replace = form.get("replace") == "on"
    pasted, url = form.get("document"), form.get("url")
    values = {
        "replace": "on" if replace else "",
        "document": pasted if isinstance(pasted, str) else "",
        "url": url.strip() if isinstance(url, str) else "",
    }
    if not document.strip() and not values["url"]:
        state = {"values": values, "errors": {"document": "required"}}
        return await api_page(request, session, api_id, import_form=state, status=400)
    client, token = backends(request), session.access_token
    try:
        if document.strip():
            result = await client.import_openapi(token, api_id, document, replace=replace)
        else:
            result = await client.import_openapi_url(token, api_id, values["url"], replace=replace)
    except (BackendProblem, BackendDown) as exc:
        state, status = _failed(values, exc)
        if isinstance(exc, BackendProblem):
            field = "document" if document.strip() else "url"
            state["errors"].setdefault(field, exc.message)
        return await api_page(request, session, api_id, import_form=state, status=status)
    counts = f"created={result.created}&kept={result.kept}&removed={result.removed}"
    return RedirectResponse(f"/admin/apis/{api_id}?done=imported&{counts}", status_code=303)
