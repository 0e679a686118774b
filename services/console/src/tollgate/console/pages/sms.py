"""Outbound SMS: the org's message log (status filter, paged), one message with its
status timeline, the operator's price table (prefix → credits per segment) and the
operator's SMS providers (add, edit, delete, a test message, the balance) and the
operator's log of every org's outbound messages with each one's timeline.

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
from tollgate.console.web import (
    CurrentSession,
    OrgNotFound,
    backends,
    org_context,
    panel,
    refusal,
    render,
)

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
        "sms",
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
    except (BackendProblem, BackendDown) as exc:
        return await _prices_page(request, session, values=values, **refusal(exc))
    return RedirectResponse(
        "/admin/sms/prices?done=" + ("deleted" if deleting else "saved"), status_code=303
    )


# --- operator: SMS providers -------------------------------------------------------

KINDS = ("twilio", "http")
CREDENTIALS = {"twilio": ("auth_token",), "http": ("auth_value", "callback_secret")}
"""The secrets each kind of provider takes (write-only)."""
PROVIDER_NAME = re.compile(r"^[^\x00-\x1f]{1,64}$")
SMALL_INTEGER = re.compile(r"^[0-9]{1,5}$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
SENDER = re.compile(r"^[^\x00-\x1f]{1,32}$")


@router.get("/admin/sms/providers")
async def sms_providers(request: Request, session: CurrentSession) -> Response:
    """Providers, preferred first, each with a link to its edit form."""
    me, orgs = await require_operator(request, session)
    found = await panel(backends(request).sms_providers(session.access_token))
    return operator_page(
        request,
        "admin_sms_providers.html",
        me,
        orgs,
        "sms",
        providers=found,
        done=request.query_params.get("done", ""),
    )


async def _new_provider_page(
    request: Request,
    session: CurrentSession,
    kind: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    me, orgs = await require_operator(request, session)
    shown = values or {"rate_per_second": "10", "priority": "100", "enabled": "1", "config": ""}
    return operator_page(
        request,
        "admin_sms_provider_new.html",
        me,
        orgs,
        "sms",
        status=status,
        kind=kind,
        kinds=KINDS,
        secrets=CREDENTIALS[kind],
        values=shown,
        errors=errors or {},
        problem=problem,
        down=down,
    )


@router.get("/admin/sms/providers/new")
async def new_sms_provider(
    request: Request,
    session: CurrentSession,
    kind: Annotated[Literal["twilio", "http"], Query()] = "twilio",
) -> Response:
    """The form adding a provider of one kind (its credential fields differ)."""
    await require_operator(request, session)
    return await _new_provider_page(request, session, kind)


@router.post("/admin/sms/providers/new")
async def add_sms_provider(request: Request, session: CurrentSession) -> Response:
    """Add a provider; credentials go to notifier, which seals them, and are never shown."""
    await require_operator(request, session)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    kind = form.get("kind", "")
    if kind not in KINDS:
        raise OrgNotFound
    values, errors, body = _provider_form(form, kind)
    if errors:
        return await _new_provider_page(
            request, session, kind, values=values, errors=errors, status=400
        )
    try:
        await backends(request).add_sms_provider(session.access_token, {**body, "kind": kind})
    except (BackendProblem, BackendDown) as exc:
        refused = refusal(exc, _refusal_errors)
        return await _new_provider_page(request, session, kind, values=values, **refused)
    return RedirectResponse("/admin/sms/providers?done=added", status_code=303)


def _refusal_errors(exc: BackendProblem) -> dict[str, str]:
    """Notifier's refusal of a provider next to the field it is about: a taken name
    (409), a configuration that cannot work for the kind (422 `invalid-provider`)."""
    field = "name" if exc.status == 409 else "config"
    return exc.field_errors or ({field: exc.message} if exc.status in (409, 422) else {})


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
    test: dict[str, Any] | None = None,
) -> Response:
    """The provider's edit form, its balance (asked of the provider through notifier)
    and the test message form with the outcome of the last test (`test`)."""
    me, orgs = await require_operator(request, session)
    shown = values or {
        "name": provider.name,
        "rate_per_second": str(provider.rate_per_second),
        "priority": str(provider.priority),
        "enabled": "1" if provider.enabled else "",
        "config": json.dumps(provider.config, indent=2, sort_keys=True, ensure_ascii=False),
    }
    balance = await panel(backends(request).sms_provider_balance(session.access_token, provider.id))
    return operator_page(
        request,
        "admin_sms_provider.html",
        me,
        orgs,
        "sms",
        status=status,
        provider=provider,
        secrets=CREDENTIALS.get(provider.kind, ()),
        values=shown,
        errors=errors or {},
        problem=problem,
        down=down,
        balance=balance,
        test=test or {"values": {}, "errors": {}},
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
    except (ValueError, RecursionError):  # nested deeper than the parser goes
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
    except (BackendProblem, BackendDown) as exc:
        if isinstance(exc, BackendProblem) and exc.status == 404:
            raise OrgNotFound from exc
        refused = refusal(exc, _refusal_errors)
        return await _provider_page(request, session, provider, values=values, **refused)
    return RedirectResponse("/admin/sms/providers?done=saved", status_code=303)


@router.post("/admin/sms/providers/{provider_id}/test-send")
async def send_provider_test(
    request: Request, provider_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Send one test message through the provider and show what it answered (accepted
    with its message id, or its error code and message). Not billed, not logged."""
    await require_operator(request, session)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    provider = await _provider(request, session, provider_id)
    typed = {k: form.get(k, "").strip() for k in ("to", "from", "text")}
    errors: dict[str, str] = {}
    if not E164.fullmatch(typed["to"]):
        errors["to"] = "phone"
    if not SENDER.fullmatch(typed["from"]):
        errors["from"] = "sender"
    if not 1 <= len(typed["text"]) <= 1600:
        errors["text"] = "text"
    test: dict[str, Any] = {"values": typed, "errors": errors}
    if errors:
        return await _provider_page(request, session, provider, test=test, status=400)
    try:
        test["outcome"] = await backends(request).send_sms_provider_test(
            session.access_token, provider_id, typed
        )
    except BackendProblem as exc:
        if exc.status == 404:
            raise OrgNotFound from exc
        test["problem"] = exc
        test["errors"] = {k: v for k, v in exc.field_errors.items() if k in typed}
        return await _provider_page(request, session, provider, test=test, status=exc.status)
    except BackendDown:
        test["down"] = True
        return await _provider_page(request, session, provider, test=test, status=503)
    return await _provider_page(request, session, provider, test=test)


@router.get("/admin/sms/providers/{provider_id}/delete")
async def confirm_delete_sms_provider(
    request: Request, provider_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Ask before deleting a provider."""
    me, orgs = await require_operator(request, session)
    provider = await _provider(request, session, provider_id)
    return operator_page(
        request, "admin_sms_provider_delete.html", me, orgs, "sms", provider=provider
    )


@router.post("/admin/sms/providers/{provider_id}/delete")
async def delete_sms_provider(
    request: Request, provider_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Delete a provider: new messages go to the next enabled one (or wait queued)."""
    me, orgs = await require_operator(request, session)
    provider = await _provider(request, session, provider_id)
    try:
        await backends(request).delete_sms_provider(session.access_token, provider_id)
    except (BackendProblem, BackendDown) as exc:
        return operator_page(
            request,
            "admin_sms_provider_delete.html",
            me,
            orgs,
            "sms",
            provider=provider,
            **refusal(exc, errors=None),
        )
    return RedirectResponse("/admin/sms/providers?done=deleted", status_code=303)


# --- operator: every org's outbound log -----------------------------------------------


@router.get("/admin/sms")
async def operator_sms(request: Request, session: CurrentSession) -> Response:
    """The operator's SMS area opens on the message log."""
    await require_operator(request, session)
    return RedirectResponse("/admin/sms/log", status_code=303)


@router.get("/admin/sms/log")
async def operator_sms_log(
    request: Request,
    session: CurrentSession,
    org_id: Annotated[uuid.UUID | Literal[""], Query()] = "",
    status: Annotated[
        Literal["", "queued", "sent", "delivered", "undelivered", "failed"], Query()
    ] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Outbound messages of every org, newest first, by org and status; the orgs are
    named from the operator's org list (accounts answers admins with every org)."""
    me, orgs = await require_operator(request, session)
    page = await panel(
        backends(request).admin_sms_sent(
            session.access_token, org_id=org_id or None, status=status or None, cursor=cursor
        )
    )
    return operator_page(
        request,
        "admin_sms_log.html",
        me,
        orgs,
        "sms",
        page=page,
        names={o.id: o.name for o in orgs},
        org_filter=str(org_id),
        status_filter=status,
        statuses=STATUSES,
    )


@router.get("/admin/sms/log/{org_id}/{message_id}")
async def operator_sms_message(
    request: Request, org_id: uuid.UUID, message_id: uuid.UUID, session: CurrentSession
) -> Response:
    """One message of any org with its status timeline (notifier's per-org read, which
    answers admins; a message of another org than the one in the path: 404)."""
    me, orgs = await require_operator(request, session)
    message = await panel(backends(request).sms_message(session.access_token, org_id, message_id))
    if message.problem is not None and message.problem.status == 404:
        raise OrgNotFound
    return operator_page(
        request,
        "admin_sms_message.html",
        me,
        orgs,
        "sms",
        message=message,
        org_id=org_id,
        org_name=next((o.name for o in orgs if o.id == org_id), None),
    )
