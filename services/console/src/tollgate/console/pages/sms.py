"""Outbound SMS: the org's message log (status filter, paged), one message with its
status timeline, the operator's price table (prefix → credits per segment) and the
operator's SMS providers (edit name, throughput, preference, configuration and
credentials).

Messages are sent through the gateway with an API key, not from the console; these
pages only read notifier's log with the member's token. Another org's message id is a
404 (notifier answers 404 for it). Provider credentials are write-only: the form never
shows them (not even after a refused save), a blank field keeps the stored secret.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem, SmsProvider
from tollgate.console.pages.operator import operator_page, require_operator
from tollgate.console.web import CurrentSession, OrgNotFound, backends, org_context, panel, render

router = APIRouter()
STATUSES = ("queued", "sent", "delivered", "undelivered", "failed")
PREFIX = re.compile(r"^\+[0-9]{0,15}$")
INTEGER = re.compile(r"^[0-9]{1,13}$")


@router.get("/orgs/{org_id}/sms")
async def sms_log(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    status: Annotated[
        Literal["", "queued", "sent", "delivered", "undelivered", "failed"], Query()
    ] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    ctx = await org_context(request, session, org_id)
    page = await panel(
        backends(request).sms_sent(session.access_token, org_id, status or None, cursor)
    )
    return render(
        request,
        "sms.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "page": page,
            "status": status,
            "statuses": STATUSES,
        },
    )


@router.get("/orgs/{org_id}/sms/{message_id}")
async def sms_message(
    request: Request, org_id: uuid.UUID, message_id: uuid.UUID, session: CurrentSession
) -> Response:
    ctx = await org_context(request, session, org_id)
    message = await panel(backends(request).sms_message(session.access_token, org_id, message_id))
    if message.problem is not None and message.problem.status == 404:
        raise OrgNotFound
    return render(
        request,
        "sms_message.html",
        {"ctx": ctx, "me": ctx.me, "orgs": ctx.orgs, "org": ctx.org, "message": message},
    )


async def _prices_page(
    request: Request,
    session: CurrentSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    me, orgs = await require_operator(request, session)
    prices = await panel(backends(request).sms_prices(session.access_token))
    return operator_page(
        request,
        "admin_sms_prices.html",
        me,
        orgs,
        "sms-prices",
        status=status,
        prices=prices,
        values=values or {},
        errors=errors or {},
        problem=problem,
        down=down,
        done=request.query_params.get("done", ""),
    )


@router.get("/admin/sms/prices")
async def sms_prices(request: Request, session: CurrentSession) -> Response:
    return await _prices_page(request, session)


@router.post("/admin/sms/prices")
async def set_sms_price(request: Request, session: CurrentSession) -> Response:
    """Set (or, with `delete`, remove) the price per segment of one prefix."""
    await require_operator(request, session)
    form = await request.form()
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    prefix, price = values.get("prefix", ""), values.get("price_per_segment", "")
    errors: dict[str, str] = {}
    if not PREFIX.fullmatch(prefix):
        errors["prefix"] = "prefix"
    deleting = values.get("delete") == "1"
    if not deleting and not INTEGER.fullmatch(price):
        errors["price_per_segment"] = "number"
    if errors:
        return await _prices_page(request, session, values=values, errors=errors, status=400)
    client = backends(request)
    try:
        if deleting:
            await client.delete_sms_price(session.access_token, prefix)
        else:
            await client.set_sms_price(session.access_token, prefix, int(price))
    except BackendProblem as exc:
        return await _prices_page(
            request, session, values=values, errors=exc.field_errors, problem=exc, status=exc.status
        )
    except BackendDown:
        return await _prices_page(request, session, values=values, down=True, status=503)
    return RedirectResponse(
        "/admin/sms/prices?done=" + ("deleted" if deleting else "saved"), status_code=303
    )


# --- operator: SMS providers -------------------------------------------------------

CREDENTIALS = {"twilio": ("auth_token",), "http": ("auth_value", "callback_secret")}
"""The secrets each kind of provider takes (write-only)."""
PROVIDER_NAME = re.compile(r"^[^\x00-\x1f]{1,64}$")
SMALL_INTEGER = re.compile(r"^[0-9]{1,5}$")


@router.get("/admin/sms/providers")
async def sms_providers(request: Request, session: CurrentSession) -> Response:
    """Providers, preferred first, each with a link to its edit form."""
    me, orgs = await require_operator(request, session)
    found = await panel(backends(request).sms_providers(session.access_token))
    return operator_page(
        request,
        "sms_providers.html",
        me,
        orgs,
        "sms-prices",
        providers=found,
        done=request.query_params.get("done", ""),
    )


async def _provider(
    request: Request, session: CurrentSession, provider_id: uuid.UUID
) -> SmsProvider:
    """The provider with that id (notifier has no one-provider read); none: 404."""
    found = await backends(request).sms_providers(session.access_token)
    for provider in found:
        if provider.id == provider_id:
            return provider
    raise OrgNotFound


async def _provider_page(
    request: Request,
    session: CurrentSession,
    provider: SmsProvider,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    me, orgs = await require_operator(request, session)
    shown = values or {
        "name": provider.name,
        "rate_per_second": str(provider.rate_per_second),
        "priority": str(provider.priority),
        "enabled": "1" if provider.enabled else "",
        "config": json.dumps(provider.config, indent=2, sort_keys=True, ensure_ascii=False),
    }
    return operator_page(
        request,
        "sms_provider.html",
        me,
        orgs,
        "sms-prices",
        status=status,
        provider=provider,
        secrets=CREDENTIALS.get(provider.kind, ()),
        values=shown,
        errors=errors or {},
        problem=problem,
        down=down,
    )


@router.get("/admin/sms/providers/{provider_id}")
async def sms_provider(
    request: Request, provider_id: uuid.UUID, session: CurrentSession
) -> Response:
    await require_operator(request, session)
    return await _provider_page(request, session, await _provider(request, session, provider_id))


def _provider_form(
    form: dict[str, str], kind: str
) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """What the operator typed (secrets left out: they are never shown again), what is
    wrong with it, and the change to send: secrets only where a field was filled in."""
    values = {k: form.get(k, "").strip() for k in ("name", "rate_per_second", "priority")}
    values["enabled"] = "1" if form.get("enabled") == "1" else ""
    values["config"] = form.get("config", "")
    errors: dict[str, str] = {}
    if not PROVIDER_NAME.fullmatch(values["name"]):
        errors["name"] = "name"
    for name in ("rate_per_second", "priority"):
        if not SMALL_INTEGER.fullmatch(values[name]):
            errors[name] = "number"
    try:
        config = json.loads(values["config"] or "{}")
    except ValueError:
        config = None
    if not isinstance(config, dict):
        errors["config"] = "json"
    body: dict[str, Any] = {"name": values["name"], "enabled": bool(values["enabled"])}
    if not errors:
        body.update(
            config=config,
            rate_per_second=int(values["rate_per_second"]),
            priority=int(values["priority"]),
        )
    secrets = {k: form[k] for k in CREDENTIALS.get(kind, ()) if form.get(k, "").strip()}
    if secrets:
        body["credentials"] = secrets
    return values, errors, body


@router.post("/admin/sms/providers/{provider_id}")
async def edit_sms_provider(
    request: Request, provider_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Save a provider's settings; credentials only where a field was filled in."""
    await require_operator(request, session)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    provider = await _provider(request, session, provider_id)
    values, errors, body = _provider_form(form, provider.kind)
    if errors:
        return await _provider_page(
            request, session, provider, values=values, errors=errors, status=400
        )
    try:
        await backends(request).update_sms_provider(session.access_token, provider_id, body)
    except BackendProblem as exc:
        if exc.status == 404:
            raise OrgNotFound from exc
        field = "name" if exc.status == 409 else "config"
        refusal = exc.field_errors or ({field: exc.message} if exc.status in (409, 422) else {})
        return await _provider_page(
            request,
            session,
            provider,
            values=values,
            errors=refusal,
            problem=exc,
            status=exc.status,
        )
    except BackendDown:
        return await _provider_page(
            request, session, provider, values=values, down=True, status=503
        )
    return RedirectResponse("/admin/sms/providers?done=saved", status_code=303)
