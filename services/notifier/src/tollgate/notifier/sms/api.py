"""HTTP transport of inbound SMS: the provider webhook (verify, store, answer fast;
routing happens in the background), per-org inboxes, admin APIs for numbers, keyword
rules and the admin inbox, and the org's read-only view of what routes SMS to it (its
numbers and the keyword rules targeting it; any member, another org's is a 404)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError

from tollgate.kit.audit import RecordedChange
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org, require_admin
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    MAX_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    decode_cursor,
    page_after,
    page_of,
)
from tollgate.kit.problems import Forbidden, NotFound, Problem, Unprocessable
from tollgate.kit.requests import NUL_FREE, DateTimeText
from tollgate.notifier.parameters import PhoneNumber
from tollgate.notifier.sms import repository, service, signatures
from tollgate.notifier.sms.schemas import (
    InboundAccepted,
    InboundPayload,
    NumberIn,
    NumberOut,
    ReadChange,
    RuleIn,
    RuleOut,
    RulePatch,
    SmsOut,
)
from tollgate.notifier.state import Notifier, NotifierState

router = APIRouter(tags=["sms"])

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def provider_url(request: Request, notifier: NotifierState) -> str:
    """The URL a provider called, as it signed it: behind a proxy, `sms_public_url`
    stands for the scheme and host (inbound messages and delivery reports alike)."""
    base = notifier.settings.sms_public_url.rstrip("/")
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base}{request.url.path}{query}"


def invalid_signature() -> Problem:
    """The answer to a provider request whose signature does not verify."""
    return Forbidden("invalid-signature", "Invalid provider signature.")


def _inbound_sms(provider: str, raw: bytes | dict[str, str | None]) -> service.InboundSms:
    try:
        if isinstance(raw, bytes):
            payload = InboundPayload.model_validate_json(raw)
        else:
            payload = InboundPayload.model_validate(raw)
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
        detail = f"Invalid SMS payload: {', '.join(fields)}." if fields else "Invalid SMS payload."
        raise Unprocessable("invalid-payload", detail) from exc
    return service.InboundSms(
        provider=provider,
        provider_message_id=payload.message_id,
        from_number=payload.from_,
        to_number=payload.to,
        body=payload.body,
    )


async def _store(
    sms: service.InboundSms, db: DbSession, notifier: NotifierState
) -> tuple[uuid.UUID, bool]:
    async with db.begin():
        message_id, new = await service.receive(db, sms, notifier.clock.now())
    if new:
        notifier.sms_received()
    return message_id, new


# The provider routes read the raw body themselves (the signature covers its exact
# bytes), so their request bodies are documented here rather than parsed by FastAPI.
_TWILIO_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "MessageSid": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 128,
                            "pattern": NUL_FREE,
                        },
                        "From": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 32,
                            "pattern": NUL_FREE,
                        },
                        "To": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 32,
                            "pattern": NUL_FREE,
                        },
                        "Body": {"type": "string", "maxLength": 1600},
                    },
                    "required": ["MessageSid", "From", "To"],
                }
            }
        },
    }
}
_GENERIC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": InboundPayload.model_json_schema(by_alias=True)}
        },
    }
}


@router.post(
    "/sms/inbound/twilio",
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}, "description": "Empty TwiML: stored."}},
    openapi_extra=_TWILIO_BODY,
)
async def inbound_twilio(request: Request, db: DbSession, notifier: Notifier) -> Response:
    """Twilio's webhook: verify `X-Twilio-Signature`, store once, answer with empty
    TwiML; routing is asynchronous."""
    raw = await request.body()
    params: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise Unprocessable("invalid-payload", "Invalid form body.") from exc
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    token = notifier.settings.sms_twilio_auth_token.get_secret_value()
    signature = request.headers.get("X-Twilio-Signature")
    if not signatures.twilio_valid(token, provider_url(request, notifier), params, signature):
        raise invalid_signature()
    first = {name: values[0] for name, values in params.items()}
    sms = _inbound_sms(
        "twilio",
        {
            "message_id": first.get("MessageSid"),
            "from": first.get("From"),
            "to": first.get("To"),
            "body": first.get("Body", ""),
        },
    )
    await _store(sms, db, notifier)
    return Response(TWIML_EMPTY, media_type="text/xml")


@router.post("/sms/inbound/generic", openapi_extra=_GENERIC_BODY)
async def inbound_generic(request: Request, db: DbSession, notifier: Notifier) -> InboundAccepted:
    """The generic HMAC-signed webhook: verify `X-Tollgate-Signature`, store once,
    answer; routing is asynchronous."""
    raw = await request.body()
    secret = notifier.settings.sms_hmac_secret.get_secret_value()
    header = request.headers.get("X-Tollgate-Signature")
    if not signatures.generic_valid(secret, header, raw, notifier.clock.now().timestamp()):
        raise invalid_signature()
    message_id, new = await _store(_inbound_sms("generic", raw), db, notifier)
    return InboundAccepted(message_id=message_id, duplicate=not new)


Unread = Annotated[bool | None, Query(description="true: unread only; false: read only")]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/orgs/{org_id}/sms/messages")
async def org_inbox(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    unread: Unread = None,
    from_number: PhoneNumber = None,
    since: DateTimeText | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[SmsOut]:
    """The org's inbox, newest first, one page at a time."""
    authorize_org(principal, org_id, Role.viewer)
    return await _inbox(db, org_id, unread, from_number, since, limit, cursor)


async def _inbox(
    db: DbSession,
    org_id: uuid.UUID | None,
    unread: bool | None,
    from_number: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[SmsOut]:
    before = decode_cursor(cursor, datetime, uuid.UUID) if cursor else None
    rows = await repository.list_messages(
        db,
        org_id=org_id,
        unread=unread,
        from_number=from_number,
        since=since,
        limit=limit + 1,
        before=before,
    )
    page, next_cursor = page_of(rows, limit, lambda m: (m.received_at, m.id))
    return Page[SmsOut](items=[SmsOut.of(m) for m in page], next_cursor=next_cursor)


@router.get("/orgs/{org_id}/sms/messages/{message_id}")
async def org_message(
    org_id: uuid.UUID, message_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> SmsOut:
    authorize_org(principal, org_id, Role.viewer)
    message = await repository.message_in_inbox(db, org_id, message_id)
    if message is None:
        raise NotFound("not-found", "No such message.")
    return SmsOut.of(message)


@router.post("/orgs/{org_id}/sms/messages/{message_id}/read")
async def mark_org_message(
    org_id: uuid.UUID,
    message_id: uuid.UUID,
    body: ReadChange,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> SmsOut:
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        message = await service.mark_read(db, org_id, message_id, body.read, notifier.clock.now())
        return SmsOut.of(message)


@router.get("/admin/sms/messages")
async def admin_inbox(
    principal: CurrentPrincipal,
    db: DbSession,
    unread: Unread = None,
    from_number: PhoneNumber = None,
    since: DateTimeText | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[SmsOut]:
    """Messages no rule routed to an org, newest first, one page at a time."""
    require_admin(principal)
    return await _inbox(db, None, unread, from_number, since, limit, cursor)


@router.post("/admin/sms/messages/{message_id}/read")
async def mark_admin_message(
    message_id: uuid.UUID,
    body: ReadChange,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> SmsOut:
    require_admin(principal)
    async with db.begin():
        message = await service.mark_read(db, None, message_id, body.read, notifier.clock.now())
        return SmsOut.of(message)


@router.get("/admin/sms/numbers")
async def list_numbers(
    principal: CurrentPrincipal,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = MAX_PAGE_SIZE,
) -> Page[NumberOut]:
    """The assigned numbers, in number order, one page at a time."""
    require_admin(principal)
    numbers = await repository.numbers(db)
    page, next_cursor = page_after(numbers, cursor, limit, lambda n: (n.number,), (str,))
    return Page[NumberOut](items=[NumberOut.of(n) for n in page], next_cursor=next_cursor)


@router.put("/admin/sms/numbers")
async def assign_number(
    body: NumberIn,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
    change: RecordedChange,
) -> Page[NumberOut]:
    """Assign (or reassign) a number to an org; answers every assigned number."""
    require_admin(principal)
    number = service.valid_number(body.number)
    async with db.begin():
        previous = await repository.upsert_number(db, number, body.org_id, notifier.clock.now())
        numbers = await repository.numbers(db)
    change.note({"org_id": previous}, {"org_id": body.org_id})
    return Page[NumberOut](items=[NumberOut.of(n) for n in numbers])


@router.delete("/admin/sms/numbers/{number}", status_code=204)
async def unassign_number(
    number: Annotated[str, Path(max_length=32, pattern=NUL_FREE)],
    principal: CurrentPrincipal,
    db: DbSession,
) -> Response:
    require_admin(principal)
    async with db.begin():
        # Unassigning a number that is not assigned is the state asked for: 204.
        await repository.delete_number(db, number)
    return Response(status_code=204)


@router.get("/admin/sms/keyword-rules")
async def list_rules(
    principal: CurrentPrincipal,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = MAX_PAGE_SIZE,
) -> Page[RuleOut]:
    """The keyword rules in evaluation order, one page at a time."""
    require_admin(principal)
    rules = await repository.keyword_rules(db)
    page, next_cursor = page_after(
        rules, cursor, limit, lambda r: (r.priority, r.created_at, r.id), (int, datetime, uuid.UUID)
    )
    return Page[RuleOut](items=[RuleOut.of(r) for r in page], next_cursor=next_cursor)


@router.post("/admin/sms/keyword-rules", status_code=201)
async def add_rule(
    body: RuleIn, principal: CurrentPrincipal, db: DbSession, notifier: Notifier
) -> RuleOut:
    require_admin(principal)
    async with db.begin():
        rule = await service.add_keyword_rule(
            db,
            org_id=body.org_id,
            kind=body.kind,
            pattern=body.pattern,
            priority=body.priority,
            now=notifier.clock.now(),
        )
        return RuleOut.of(rule)


@router.patch(
    "/admin/sms/keyword-rules/{rule_id}",
    responses={404: {"description": "No such keyword rule."}},
)
async def update_rule(
    rule_id: uuid.UUID,
    body: RulePatch,
    principal: CurrentPrincipal,
    db: DbSession,
    change: RecordedChange,
) -> RuleOut:
    """Change a keyword rule's org, kind, pattern or priority (a lower priority moves it
    earlier in the evaluation order); only the fields sent change."""
    require_admin(principal)
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise Unprocessable("validation", "Fields cannot be set to null.")
    async with db.begin():
        rule = await service.edit_keyword_rule(db, rule_id, changes, change)
        return RuleOut.of(rule)


@router.delete("/admin/sms/keyword-rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession) -> Response:
    require_admin(principal)
    async with db.begin():
        # Deleting a rule that is not there (a retried delete) is the state asked for.
        await repository.delete_rule(db, rule_id)
    return Response(status_code=204)


# ------------------------------------------------------------------ the org's routing


@router.get("/orgs/{org_id}/sms/numbers")
async def org_numbers(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = MAX_PAGE_SIZE,
) -> Page[NumberOut]:
    """The numbers assigned to the org (SMS to them are the org's), in number order."""
    authorize_org(principal, org_id, Role.viewer)
    numbers = await repository.numbers(db, org_id)
    page, next_cursor = page_after(numbers, cursor, limit, lambda n: (n.number,), (str,))
    return Page[NumberOut](items=[NumberOut.of(n) for n in page], next_cursor=next_cursor)


@router.get("/orgs/{org_id}/sms/keyword-rules")
async def org_rules(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = MAX_PAGE_SIZE,
) -> Page[RuleOut]:
    """The keyword rules routing SMS to the org, in evaluation order (other orgs' rules
    are evaluated among them but not shown)."""
    authorize_org(principal, org_id, Role.viewer)
    rules = await repository.keyword_rules(db, org_id)
    page, next_cursor = page_after(
        rules, cursor, limit, lambda r: (r.priority, r.created_at, r.id), (int, datetime, uuid.UUID)
    )
    return Page[RuleOut](items=[RuleOut.of(r) for r in page], next_cursor=next_cursor)
