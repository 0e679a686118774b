"""Inbound SMS of an org: the inbox (unread and sender filters, paged, mark read or
unread), a conversation with one number (its messages and the org's replies to it), and
the routing that brings messages to the org: its numbers and keyword rules.

Every member reads the inbox and marks messages (notifier allows viewers). Numbers and
keyword rules are platform settings at notifier (admin-only routes): platform admins
see, assign and release the org's numbers and create and delete its rules here, every
other member is told that an operator sets them up. A number or rule of another org is
a 404 here even for an admin, so one org's page never changes another's routing.

Sending (and so replying) needs an API key through the gateway, never the console.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem, InboundSms, SmsMessage
from tollgate.console.web import (
    CurrentSession,
    OrgContext,
    OrgNotFound,
    backends,
    org_context,
    panel,
    render,
)

router = APIRouter()
NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")
SENDER = re.compile(r"^[^\x00-\x1f]{1,32}$")
PRIORITY = re.compile(r"^[0-9]{1,5}$")
RULE_KINDS = ("first_word", "regex")
# The org's replies shown in a conversation come from its newest sent messages.
REPLIES_SCANNED = 200


def _context(ctx: OrgContext, tab: str) -> dict[str, object]:
    return {"ctx": ctx, "me": ctx.me, "orgs": ctx.orgs, "org": ctx.org, "tab": tab}


def _back(org_id: uuid.UUID, back: str) -> str:
    """Only a path inside this org's SMS pages is a place to go back to."""
    prefix = f"/orgs/{org_id}/sms/"
    return back if back.startswith(prefix) and "//" not in back else prefix + "inbox"


@router.get("/orgs/{org_id}/sms/inbox")
async def inbox(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    unread: Annotated[Literal["", "true"], Query()] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    ctx = await org_context(request, session, org_id)
    page = await panel(
        backends(request).sms_inbox(
            session.access_token,
            org_id,
            unread=True if unread else None,
            from_number=None,
            cursor=cursor,
        )
    )
    return render(
        request,
        "sms_inbox.html",
        {**_context(ctx, "inbox"), "page": page, "unread": bool(unread)},
    )


@router.post("/orgs/{org_id}/sms/inbox/{message_id}/read")
async def mark_read(
    request: Request, org_id: uuid.UUID, message_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Mark one inbound message read (`read=1`) or unread; another org's message: 404."""
    await org_context(request, session, org_id)
    form = await request.form()
    read = form.get("read") == "1"
    try:
        await backends(request).mark_inbound_sms(session.access_token, org_id, message_id, read)
    except BackendProblem as exc:
        if exc.status == 404:
            raise OrgNotFound from exc
        raise
    return RedirectResponse(_back(org_id, str(form.get("back", ""))), status_code=303)


@router.get("/orgs/{org_id}/sms/conversation")
async def conversation(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    number: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    """The messages from `number` and the org's recent messages to it, oldest first."""
    ctx = await org_context(request, session, org_id)
    if not SENDER.fullmatch(number):
        raise OrgNotFound
    client, token = backends(request), session.access_token
    received, sent = await asyncio.gather(
        panel(
            client.sms_inbox(token, org_id, unread=None, from_number=number, cursor=None, limit=100)
        ),
        panel(client.sms_sent(token, org_id, None, None, limit=REPLIES_SCANNED)),
    )
    entries: list[tuple[datetime, str, InboundSms | SmsMessage]] = []
    for message in received.value.items if received.value else []:
        entries.append((message.received_at, "in", message))
    for reply in sent.value.items if sent.value else []:
        if reply.to == number:
            entries.append((reply.queued_at, "out", reply))
    entries.sort(key=lambda e: e[0])
    return render(
        request,
        "sms_conversation.html",
        {
            **_context(ctx, "inbox"),
            "number": number,
            "received": received,
            "sent": sent,
            "entries": entries,
            "scanned": REPLIES_SCANNED,
        },
    )


# --- routing: numbers and keyword rules (platform admins) ----------------------------


async def _routing_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    tab: Literal["numbers", "rules"],
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    ctx = await org_context(request, session, org_id)
    context = {
        **_context(ctx, tab),
        "values": values or {},
        "errors": errors or {},
        "problem": problem,
        "down": down,
        "done": request.query_params.get("done", ""),
        "rule_kinds": RULE_KINDS,
    }
    if ctx.me.is_admin:
        client, token = backends(request), session.access_token
        if tab == "numbers":
            found_numbers = await panel(client.sms_numbers(token))
            if found_numbers.value is not None:
                found_numbers.value = [n for n in found_numbers.value if n.org_id == org_id]
            context["rows"] = found_numbers
        else:
            found_rules = await panel(client.keyword_rules(token))
            if found_rules.value is not None:
                found_rules.value = [r for r in found_rules.value if r.org_id == org_id]
            context["rows"] = found_rules
    return render(request, f"sms_{tab}.html", context, status=status)


def _refusal_errors(exc: BackendProblem, field: str) -> dict[str, str]:
    """Notifier's refusal next to the field it concerns (its detail when it names none)."""
    return exc.field_errors or ({field: exc.message} if exc.status == 422 else {})


async def _admin_ctx(request: Request, org_id: uuid.UUID, session: CurrentSession) -> OrgContext:
    ctx = await org_context(request, session, org_id)
    if not ctx.me.is_admin:
        raise OrgNotFound
    return ctx


@router.get("/orgs/{org_id}/sms/numbers")
async def numbers(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    return await _routing_page(request, org_id, session, "numbers")


@router.post("/orgs/{org_id}/sms/numbers")
async def assign_number(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Assign a number to this org (platform admins; a number of another org moves)."""
    await _admin_ctx(request, org_id, session)
    number = str((await request.form()).get("number", "")).strip().replace(" ", "")
    values = {"number": number}
    if not NUMBER.fullmatch(number):
        return await _routing_page(
            request,
            org_id,
            session,
            "numbers",
            values=values,
            errors={"number": "e164"},
            status=400,
        )
    try:
        await backends(request).assign_sms_number(session.access_token, number, org_id)
    except BackendProblem as exc:
        errors = _refusal_errors(exc, "number")
        return await _routing_page(
            request,
            org_id,
            session,
            "numbers",
            values=values,
            errors=errors,
            problem=exc,
            status=exc.status,
        )
    except BackendDown:
        return await _routing_page(
            request, org_id, session, "numbers", values=values, down=True, status=503
        )
    return RedirectResponse(f"/orgs/{org_id}/sms/numbers?done=assigned", status_code=303)


@router.post("/orgs/{org_id}/sms/numbers/release")
async def release_number(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Release one of this org's numbers (platform admins); another org's number: 404."""
    await _admin_ctx(request, org_id, session)
    number = str((await request.form()).get("number", ""))
    client = backends(request)
    try:
        owned = await client.sms_numbers(session.access_token)
        if not any(n.number == number and n.org_id == org_id for n in owned):
            raise OrgNotFound
        await client.release_sms_number(session.access_token, number)
    except (BackendProblem, BackendDown) as exc:
        if isinstance(exc, BackendProblem) and exc.status == 401:
            raise
        return await _routing_page(
            request,
            org_id,
            session,
            "numbers",
            problem=exc if isinstance(exc, BackendProblem) else None,
            down=isinstance(exc, BackendDown),
            status=exc.status if isinstance(exc, BackendProblem) else 503,
        )
    return RedirectResponse(f"/orgs/{org_id}/sms/numbers?done=released", status_code=303)


@router.get("/orgs/{org_id}/sms/rules")
async def rules(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    return await _routing_page(request, org_id, session, "rules")


@router.post("/orgs/{org_id}/sms/rules")
async def add_rule(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Create a keyword rule routing to this org (platform admins)."""
    await _admin_ctx(request, org_id, session)
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("kind", "pattern", "priority")}
    errors: dict[str, str] = {}
    if values["kind"] not in RULE_KINDS:
        errors["kind"] = "kind"
    if not values["pattern"].strip():
        errors["pattern"] = "required"
    priority = values["priority"].strip() or "100"
    if not PRIORITY.fullmatch(priority):
        errors["priority"] = "number"
    if errors:
        return await _routing_page(
            request, org_id, session, "rules", values=values, errors=errors, status=400
        )
    body = {
        "org_id": str(org_id),
        "kind": values["kind"],
        "pattern": values["pattern"],
        "priority": int(priority),
    }
    try:
        await backends(request).add_keyword_rule(session.access_token, body)
    except BackendProblem as exc:
        return await _routing_page(
            request,
            org_id,
            session,
            "rules",
            values=values,
            errors=_refusal_errors(exc, "pattern"),
            problem=exc,
            status=exc.status,
        )
    except BackendDown:
        return await _routing_page(
            request, org_id, session, "rules", values=values, down=True, status=503
        )
    return RedirectResponse(f"/orgs/{org_id}/sms/rules?done=added", status_code=303)


@router.post("/orgs/{org_id}/sms/rules/{rule_id}/delete")
async def delete_rule(
    request: Request, org_id: uuid.UUID, rule_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Delete one of this org's rules (platform admins); another org's rule: 404."""
    await _admin_ctx(request, org_id, session)
    client = backends(request)
    try:
        found = await client.keyword_rules(session.access_token)
        if not any(r.id == rule_id and r.org_id == org_id for r in found):
            raise OrgNotFound
        await client.delete_keyword_rule(session.access_token, rule_id)
    except (BackendProblem, BackendDown) as exc:
        if isinstance(exc, BackendProblem) and exc.status == 401:
            raise
        return await _routing_page(
            request,
            org_id,
            session,
            "rules",
            problem=exc if isinstance(exc, BackendProblem) else None,
            down=isinstance(exc, BackendDown),
            status=exc.status if isinstance(exc, BackendProblem) else 503,
        )
    return RedirectResponse(f"/orgs/{org_id}/sms/rules?done=deleted", status_code=303)
