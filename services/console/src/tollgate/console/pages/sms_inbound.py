"""Inbound SMS of an org: the inbox (unread and sender filters, paged, mark read or
unread), a conversation with one number (its messages and the org's replies to it), and
the routing that brings messages to the org: its numbers and keyword rules.

Every member reads the inbox and marks messages (notifier allows viewers). Numbers and
keyword rules are platform settings at notifier: every member sees the org's numbers
and the rules routing to it (notifier's org-scoped reads), read-only; platform admins
also assign and release numbers and create, edit, reorder and delete rules here. A
number or rule of another org is a 404 here even for an admin, so one org's page never
changes another's routing.

Sending (and so replying) needs an API key through the gateway, never the console.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import (
    BackendDown,
    BackendProblem,
    InboundSms,
    KeywordRule,
    SmsMessage,
)
from tollgate.console.web import (
    CurrentSession,
    OrgContext,
    OrgNotFound,
    backends,
    org_context,
    panel,
    refusal,
    render,
)

router = APIRouter()
NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")
SENDER = re.compile(r"^[^\x00-\x1f]{1,32}$")
PRIORITY = re.compile(r"^[0-9]{1,5}$")
MAX_PRIORITY = 10_000  # notifier's bound
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


# --- routing: numbers and keyword rules (members read, platform admins write) --------


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
    client, token = backends(request), session.access_token
    if tab == "numbers":
        context["rows"] = await panel(client.org_sms_numbers(token, org_id))
    else:
        context["rows"] = await panel(client.org_keyword_rules(token, org_id))
    return render(request, f"sms_{tab}.html", context, status=status)


async def _refused(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    tab: Literal["numbers", "rules"],
    exc: BackendProblem | BackendDown,
) -> Response:
    """The routing page again, saying that notifier refused a change it has no form
    for (release, move, delete) or did not answer."""
    return await _routing_page(request, org_id, session, tab, **refusal(exc, errors=None))


def _refusal_errors(field: str) -> Callable[[BackendProblem], dict[str, str]]:
    """Notifier's refusal next to the field it concerns (its detail when it names none)."""
    return lambda exc: exc.field_errors or ({field: exc.message} if exc.status == 422 else {})


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
    except (BackendProblem, BackendDown) as exc:
        refused = refusal(exc, _refusal_errors("number"))
        return await _routing_page(request, org_id, session, "numbers", values=values, **refused)
    return RedirectResponse(f"/orgs/{org_id}/sms/numbers?done=assigned", status_code=303)


@router.post("/orgs/{org_id}/sms/numbers/release")
async def release_number(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Release one of this org's numbers (platform admins); another org's number: 404."""
    await _admin_ctx(request, org_id, session)
    number = str((await request.form()).get("number", ""))
    client = backends(request)
    try:
        owned = await client.org_sms_numbers(session.access_token, org_id)
        if not any(n.number == number for n in owned):
            raise OrgNotFound
        await client.release_sms_number(session.access_token, number)
    except (BackendProblem, BackendDown) as exc:
        return await _refused(request, org_id, session, "numbers", exc)
    return RedirectResponse(f"/orgs/{org_id}/sms/numbers?done=released", status_code=303)


@router.get("/orgs/{org_id}/sms/rules")
async def rules(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    return await _routing_page(request, org_id, session, "rules")


def _rule_form(form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The kind, pattern and priority of a rule form, and what is wrong with them."""
    values = {k: form.get(k, "") for k in ("kind", "pattern", "priority")}
    errors: dict[str, str] = {}
    if values["kind"] not in RULE_KINDS:
        errors["kind"] = "kind"
    if not values["pattern"].strip():
        errors["pattern"] = "required"
    values["priority"] = values["priority"].strip() or "100"
    if not PRIORITY.fullmatch(values["priority"]):
        errors["priority"] = "number"
    return values, errors


async def _form_of(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


@router.post("/orgs/{org_id}/sms/rules")
async def add_rule(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Create a keyword rule routing to this org (platform admins)."""
    await _admin_ctx(request, org_id, session)
    values, errors = _rule_form(await _form_of(request))
    if errors:
        return await _routing_page(
            request, org_id, session, "rules", values=values, errors=errors, status=400
        )
    body = {
        "org_id": str(org_id),
        "kind": values["kind"],
        "pattern": values["pattern"],
        "priority": int(values["priority"]),
    }
    try:
        await backends(request).add_keyword_rule(session.access_token, body)
    except (BackendProblem, BackendDown) as exc:
        refused = refusal(exc, _refusal_errors("pattern"))
        return await _routing_page(request, org_id, session, "rules", values=values, **refused)
    return RedirectResponse(f"/orgs/{org_id}/sms/rules?done=added", status_code=303)


async def _org_rules(
    request: Request, org_id: uuid.UUID, session: CurrentSession, rule_id: uuid.UUID
) -> tuple[list[KeywordRule], int]:
    """The org's rules in evaluation order and where `rule_id` is among them; another
    org's rule (or none): 404."""
    found = await backends(request).org_keyword_rules(session.access_token, org_id)
    for index, rule in enumerate(found):
        if rule.id == rule_id:
            return found, index
    raise OrgNotFound


async def _rule_page(
    request: Request,
    ctx: OrgContext,
    rule: KeywordRule,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    shown = values or {"kind": rule.kind, "pattern": rule.pattern, "priority": str(rule.priority)}
    context = {
        **_context(ctx, "rules"),
        "rule": rule,
        "values": shown,
        "errors": errors or {},
        "problem": problem,
        "down": down,
        "rule_kinds": RULE_KINDS,
    }
    return render(request, "sms_rule.html", context, status=status)


@router.get("/orgs/{org_id}/sms/rules/{rule_id}")
async def edit_rule_page(
    request: Request, org_id: uuid.UUID, rule_id: uuid.UUID, session: CurrentSession
) -> Response:
    """The edit form of one of this org's rules (platform admins); another org's: 404."""
    ctx = await _admin_ctx(request, org_id, session)
    try:
        found, index = await _org_rules(request, org_id, session, rule_id)
    except (BackendProblem, BackendDown) as exc:
        return await _refused(request, org_id, session, "rules", exc)
    return await _rule_page(request, ctx, found[index])


@router.post("/orgs/{org_id}/sms/rules/{rule_id}")
async def edit_rule(
    request: Request, org_id: uuid.UUID, rule_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Change one of this org's rules: its kind, pattern or priority (platform admins)."""
    ctx = await _admin_ctx(request, org_id, session)
    try:
        found, index = await _org_rules(request, org_id, session, rule_id)
    except (BackendProblem, BackendDown) as exc:
        return await _refused(request, org_id, session, "rules", exc)
    rule = found[index]
    values, errors = _rule_form(await _form_of(request))
    if errors:
        return await _rule_page(request, ctx, rule, values=values, errors=errors, status=400)
    body = {
        "kind": values["kind"],
        "pattern": values["pattern"],
        "priority": int(values["priority"]),
    }
    try:
        await backends(request).update_keyword_rule(session.access_token, rule_id, body)
    except (BackendProblem, BackendDown) as exc:
        if isinstance(exc, BackendProblem) and exc.status == 404:
            raise OrgNotFound from exc
        refused = refusal(exc, _refusal_errors("pattern"))
        return await _rule_page(request, ctx, rule, values=values, **refused)
    return RedirectResponse(f"/orgs/{org_id}/sms/rules?done=saved", status_code=303)


def _moves(
    found: list[KeywordRule], index: int, direction: Literal["up", "down"]
) -> list[tuple[KeywordRule, int]]:
    """The priority changes that move `found[index]` past its neighbour in the org's
    evaluation order: the two swap priorities; when they share one, the rule moves one
    above (below) the neighbour's. Nothing at either end of the list."""
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(found):
        return []
    rule, neighbour = found[index], found[other]
    if rule.priority != neighbour.priority:
        return [(rule, neighbour.priority), (neighbour, rule.priority)]
    step = -1 if direction == "up" else 1
    if 0 <= neighbour.priority + step <= MAX_PRIORITY:
        return [(rule, neighbour.priority + step)]
    return [(neighbour, neighbour.priority - step)]


@router.post("/orgs/{org_id}/sms/rules/{rule_id}/move")
async def move_rule(
    request: Request, org_id: uuid.UUID, rule_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Move one of this org's rules up (evaluated earlier) or down among the org's rules
    by changing priorities (platform admins); another org's rule: 404."""
    await _admin_ctx(request, org_id, session)
    asked = (await request.form()).get("direction")
    direction: Literal["up", "down"]
    if asked == "up":
        direction = "up"
    elif asked == "down":
        direction = "down"
    else:
        raise OrgNotFound
    client = backends(request)
    try:
        found, index = await _org_rules(request, org_id, session, rule_id)
        for rule, priority in _moves(found, index, direction):
            await client.update_keyword_rule(session.access_token, rule.id, {"priority": priority})
    except (BackendProblem, BackendDown) as exc:
        return await _refused(request, org_id, session, "rules", exc)
    return RedirectResponse(f"/orgs/{org_id}/sms/rules?done=moved", status_code=303)


@router.post("/orgs/{org_id}/sms/rules/{rule_id}/delete")
async def delete_rule(
    request: Request, org_id: uuid.UUID, rule_id: uuid.UUID, session: CurrentSession
) -> Response:
    """Delete one of this org's rules (platform admins); another org's rule: 404."""
    await _admin_ctx(request, org_id, session)
    client = backends(request)
    try:
        await _org_rules(request, org_id, session, rule_id)
        await client.delete_keyword_rule(session.access_token, rule_id)
    except (BackendProblem, BackendDown) as exc:
        return await _refused(request, org_id, session, "rules", exc)
    return RedirectResponse(f"/orgs/{org_id}/sms/rules?done=deleted", status_code=303)
