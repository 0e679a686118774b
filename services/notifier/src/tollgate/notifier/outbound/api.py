"""HTTP transport of outbound SMS.

- Customers (through the gateway, with their API key): `POST /v1/sms/messages`,
  `GET /v1/sms/messages`, `GET /v1/sms/messages/{id}`. These routes trust only the
  gateway's signed identity headers (`tollgate.kit.upstream_identity`): no user token,
  and a missing, forged, stale or replayed header set is a 401.
- Providers: `POST /v1/sms/status/{kind}/{provider_id}` delivery reports, verified
  with the provider's own signature (Twilio's `X-Twilio-Signature`, or the generic
  `X-Tollgate-Signature`); a forged report is a 403 and changes nothing.
- Org members (JWT): `GET /v1/orgs/{org_id}/sms/sent[/{id}]`, the message log, and
  `GET /v1/orgs/{org_id}/sms/sender-ids`.
- Admins (JWT): every org's outbound message log, the price table, approved sender
  ids, providers (credentials sealed, never shown; an edit replaces only the secrets it
  sends, and its audit record says that they changed, never what to), a provider's
  balance, per-org usage and spend.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from tollgate.contracts.ids import uuid7
from tollgate.kit.audit import RecordedChange
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org, require_admin
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import Cursor, Page, decode_cursor, page_of
from tollgate.kit.problems import (
    Conflict,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
)
from tollgate.kit.requests import DateTimeText
from tollgate.kit.upstream_identity import CallerIdentity, IdentityRefused
from tollgate.notifier.models import SmsProvider
from tollgate.notifier.outbound import providers, repository, service
from tollgate.notifier.outbound.balance_watch import below_alert
from tollgate.notifier.outbound.schemas import (
    BalanceOut,
    MessageOut,
    PriceIn,
    PriceOut,
    ProviderIn,
    ProviderOut,
    ProviderPatch,
    SenderIdIn,
    SenderIdOut,
    SendIn,
    TestSendIn,
    TestSendOut,
    UsageOut,
)
from tollgate.notifier.sms.api import invalid_signature, provider_url
from tollgate.notifier.state import Notifier

router = APIRouter(tags=["sms-outbound"])

Limit = Annotated[int, Query(ge=1, le=500)]
Status = Annotated[str | None, Query(pattern="^(queued|sent|delivered|undelivered|failed)$")]


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("latin-1").partition("?")[0]
    return request.url.path


async def gateway_caller(request: Request, notifier: Notifier) -> CallerIdentity:
    """The caller the gateway vouches for; 401 when the headers do not verify."""
    try:
        return notifier.identity.verify(
            request.method, _raw_path(request), request.headers, notifier.clock.now().timestamp()
        )
    except IdentityRefused as exc:
        raise Unauthorized(exc.reason, exc.detail) from None


Caller = Annotated[CallerIdentity, Depends(gateway_caller)]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a send safely: the same key with the same request answers with "
        "the first message (nothing sent or charged again); with a different request, 422.",
    ),
]


@router.post("/sms/messages", status_code=202)
async def send_message(
    body: SendIn,
    caller: Caller,
    db: DbSession,
    notifier: Notifier,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> MessageOut:
    """Queue an SMS from your org's number or sender id; it is charged segments times the
    destination's price per segment at once (402 when your credits cannot cover it), and
    refunded if it fails before reaching the network."""
    request = service.SendRequest(
        to=body.to,
        from_=body.from_,
        text=body.text,
        client_reference=body.client_reference,
        status_callback=body.status_callback,
        idempotency_key=idempotency_key,
    )
    async with db.begin():
        message, replayed = await service.accept(
            db, caller, request, notifier.settings, notifier.clock.now(), notifier.sms_balances
        )
        out = MessageOut.of(message)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        notifier.sms_queued()
    return out


@router.get("/sms/messages")
async def list_sent(
    caller: Caller,
    db: DbSession,
    status: Status = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[MessageOut]:
    """Your org's outbound messages, newest first."""
    return await _log(db, uuid.UUID(caller.org_id), status, limit, cursor)


@router.get("/sms/messages/{message_id}")
async def get_sent(message_id: uuid.UUID, caller: Caller, db: DbSession) -> MessageOut:
    """One of your org's messages with its status timeline; 404 for another org's."""
    return await _one(db, uuid.UUID(caller.org_id), message_id)


async def _log(
    db: DbSession, org_id: uuid.UUID | None, status: str | None, limit: int, cursor: str | None
) -> Page[MessageOut]:
    before = decode_cursor(cursor, datetime, uuid.UUID) if cursor else None
    rows = await repository.sent_messages(db, org_id, status=status, limit=limit + 1, before=before)
    page, next_cursor = page_of(rows, limit, lambda m: (m.queued_at, m.id))
    return Page[MessageOut](items=[MessageOut.of(m) for m in page], next_cursor=next_cursor)


async def _one(db: DbSession, org_id: uuid.UUID, message_id: uuid.UUID) -> MessageOut:
    message = await repository.message_of_org(db, org_id, message_id)
    if message is None:
        raise NotFound("not-found", "No such message.")
    return MessageOut.of(message, await repository.history(db, message.id))


@router.get("/orgs/{org_id}/sms/sent")
async def org_sent(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    status: Status = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[MessageOut]:
    """The org's outbound message log, newest first."""
    authorize_org(principal, org_id, Role.viewer)
    return await _log(db, org_id, status, limit, cursor)


@router.get("/orgs/{org_id}/sms/sent/{message_id}")
async def org_sent_one(
    org_id: uuid.UUID, message_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> MessageOut:
    """One outbound message with its status timeline."""
    authorize_org(principal, org_id, Role.viewer)
    return await _one(db, org_id, message_id)


@router.get("/admin/sms/sent")
async def admin_sent(
    principal: CurrentPrincipal,
    db: DbSession,
    org_id: uuid.UUID | None = None,
    status: Status = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[MessageOut]:
    """Every org's outbound messages, newest first (platform admins): the operator's
    log, optionally of one org (`org_id`) and one status. One message with its timeline
    is its org's `GET /v1/orgs/{org_id}/sms/sent/{id}`."""
    require_admin(principal)
    return await _log(db, org_id, status, limit, cursor)


# ------------------------------------------------------------------ delivery reports


@router.post("/sms/status/{kind}/{provider_id}", status_code=204)
async def delivery_report(
    kind: Annotated[str, Path(pattern="^(twilio|http)$")],
    provider_id: uuid.UUID,
    request: Request,
    db: DbSession,
    notifier: Notifier,
) -> Response:
    """A provider's delivery report: verified with the provider's signature, applied
    once (a repeated or late report changes nothing). 404 for a message the provider
    reports before its send was recorded (providers retry)."""
    raw = await request.body()
    async with db.begin():
        row = await repository.provider(db, provider_id)
    if row is None or row.kind != kind:
        raise invalid_signature()
    form: dict[str, list[str]] = {}
    if kind == "twilio":
        try:
            for name, value in parse_qsl(raw.decode(), keep_blank_values=True):
                form.setdefault(name, []).append(value)
        except UnicodeDecodeError as exc:
            raise Unprocessable("invalid-payload", "Invalid form body.") from exc
    client = providers.client_for(row.kind, row.config, _credentials(row, notifier))
    try:
        report = client.report(
            url=provider_url(request, notifier),
            headers=request.headers,
            body=raw,
            form=form,
            now=notifier.clock.now().timestamp(),
        )
    except providers.CallbackRefused as exc:
        if str(exc) == "invalid signature":
            raise invalid_signature() from None
        raise Unprocessable("invalid-payload", "Not a delivery report.") from None
    finally:
        await client.close()
    async with db.begin():
        message = await repository.lock_by_provider_id(db, row.id, report.provider_message_id)
        if message is None:
            raise NotFound("unknown-message", "No message with that provider id (yet).")
        if report.status is not None:
            await service.advance(
                db,
                message,
                report.status,
                notifier.clock.now(),
                error_code=report.error_code,
            )
    return Response(status_code=204)


def _credentials(row: SmsProvider, notifier: Notifier) -> dict[str, str]:
    """The provider's credentials; 503 when they were sealed with a key no longer
    configured (an administrator enters them again: `PATCH` with `credentials`)."""
    credentials = providers.stored_credentials(notifier.sealer, row.credentials_sealed)
    if credentials is None:
        raise ServiceUnavailable(
            "provider-credentials-unreadable",
            "This provider's credentials were sealed with a key no longer configured; "
            "an administrator must enter them again.",
        )
    return credentials


# ------------------------------------------------------------------ admin


@router.get("/admin/sms/prices")
async def list_prices(principal: CurrentPrincipal, db: DbSession) -> list[PriceOut]:
    """The price table; the longest prefix matching a recipient prices its segments."""
    require_admin(principal)
    return [PriceOut.of(p) for p in await repository.prices(db)]


@router.put("/admin/sms/prices")
async def set_price(
    body: PriceIn,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
    change: RecordedChange,
) -> list[PriceOut]:
    """Set the price per segment of a prefix (`+` alone: every other destination)."""
    require_admin(principal)
    prefix = service.valid_prefix(body.prefix)
    async with db.begin():
        previous = await repository.upsert_price(
            db, prefix, body.price_per_segment, notifier.clock.now()
        )
        prices = [PriceOut.of(p) for p in await repository.prices(db)]
    change.note({"price_per_segment": previous}, {"price_per_segment": body.price_per_segment})
    return prices


@router.delete("/admin/sms/prices", status_code=204)
async def delete_price(
    prefix: Annotated[str, Query(max_length=16, pattern=r"^\+[0-9]{0,15}$")],
    principal: CurrentPrincipal,
    db: DbSession,
) -> Response:
    """Remove a prefix (`?prefix=%2B41`); destinations it priced fall back to shorter
    prefixes, or are no longer offered."""
    require_admin(principal)
    async with db.begin():
        await repository.delete_price(db, prefix)
    return Response(status_code=204)


@router.get("/orgs/{org_id}/sms/sender-ids")
async def org_sender_ids(
    org_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> list[SenderIdOut]:
    """The alphanumeric sender ids the operator approved for the org."""
    authorize_org(principal, org_id, Role.viewer)
    return [SenderIdOut.of(s) for s in await repository.sender_ids(db, org_id)]


@router.get("/admin/sms/sender-ids")
async def list_sender_ids(principal: CurrentPrincipal, db: DbSession) -> list[SenderIdOut]:
    """Every approved sender id."""
    require_admin(principal)
    return [SenderIdOut.of(s) for s in await repository.sender_ids(db)]


@router.put("/admin/sms/sender-ids")
async def approve_sender_id(
    body: SenderIdIn,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
    change: RecordedChange,
) -> SenderIdOut:
    """Approve an alphanumeric sender id for an org (taking it from any other org)."""
    require_admin(principal)
    sender_id = service.valid_sender_id(body.sender_id)
    now = notifier.clock.now()
    async with db.begin():
        previous = await repository.upsert_sender_id(db, sender_id, body.org_id, now)
    change.note({"org_id": previous}, {"org_id": body.org_id})
    return SenderIdOut(sender_id=sender_id, org_id=body.org_id, created_at=now)


@router.delete("/admin/sms/sender-ids", status_code=204)
async def withdraw_sender_id(
    sender_id: Annotated[
        str, Query(min_length=1, max_length=11, pattern=service.SENDER_ID_PATTERN)
    ],
    principal: CurrentPrincipal,
    db: DbSession,
) -> Response:
    """Withdraw a sender id (`?sender_id=ACME%20Shop`); the org's queued messages keep
    it."""
    require_admin(principal)
    async with db.begin():
        await repository.delete_sender_id(db, sender_id)
    return Response(status_code=204)


@router.get("/admin/sms/providers")
async def list_providers(principal: CurrentPrincipal, db: DbSession) -> list[ProviderOut]:
    """Providers, preferred first (credentials are never shown)."""
    require_admin(principal)
    return [ProviderOut.of(p) for p in await repository.providers(db)]


@router.post("/admin/sms/providers", status_code=201)
async def add_provider(
    body: ProviderIn, principal: CurrentPrincipal, db: DbSession, notifier: Notifier
) -> ProviderOut:
    """Add a provider; its credentials are sealed at once."""
    require_admin(principal)
    notifier.require_sealing()
    config = body.config.model_dump(mode="json", exclude_none=True)
    credentials = body.credentials.model_dump(exclude_none=True)
    problem = providers.check_config(body.kind, config, credentials)
    if problem is not None:
        raise Unprocessable("invalid-provider", problem)
    row = SmsProvider(
        id=uuid7(),
        name=body.name,
        kind=body.kind,
        config=config,
        credentials_sealed=notifier.sealer.seal(json.dumps(credentials)),
        rate_per_second=body.rate_per_second,
        priority=body.priority,
        enabled=body.enabled,
        created_at=notifier.clock.now(),
    )
    async with db.begin():
        if any(p.name == body.name for p in await repository.providers(db)):
            raise Conflict("provider-exists", "A provider with that name exists.")
        await repository.add_provider(db, row)
    return ProviderOut.of(row)


@router.patch(
    "/admin/sms/providers/{provider_id}",
    responses={404: {"description": "No such provider."}, 409: {"description": "Name taken."}},
)
async def update_provider(
    provider_id: uuid.UUID,
    body: ProviderPatch,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
    change: RecordedChange,
) -> ProviderOut:
    """Change a provider's name, configuration, credentials, throughput, preference or
    whether it is enabled; only what is sent changes. Credentials are write-only: the
    secrets sent replace the stored ones, the others are kept, none is ever answered.
    Messages already given to the provider keep it."""
    require_admin(principal)
    notifier.require_sealing()
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise Unprocessable("validation", "Fields cannot be set to null.")
    async with db.begin():
        row = await repository.provider(db, provider_id, for_update=True)
        if row is None:
            raise NotFound("not-found", "No such provider.")
        before = _provider_settings(row)
        if body.name is not None and body.name != row.name:
            if await repository.provider_named(db, body.name) is not None:
                raise Conflict("provider-exists", "A provider with that name exists.")
            row.name = body.name
        config = row.config
        if body.config is not None:
            config = body.config.model_dump(mode="json", exclude_none=True)
        # Sealed with a key no longer configured: the secrets sent replace them (all of
        # them, or `check_config` refuses).
        stored = providers.stored_credentials(notifier.sealer, row.credentials_sealed) or {}
        credentials = dict(stored)
        if body.credentials is not None:
            credentials.update(body.credentials.model_dump(exclude_none=True))
        problem = providers.check_config(row.kind, config, credentials)
        if problem is not None:
            raise Unprocessable("invalid-provider", problem)
        row.config = config
        if credentials != stored:
            row.credentials_sealed = notifier.sealer.seal(json.dumps(credentials))
        for name in ("rate_per_second", "priority", "enabled"):
            if name in changes:
                setattr(row, name, changes[name])
        await db.flush()
        out = ProviderOut.of(row)
        change.note(before, _provider_settings(row))
    return out


def _provider_settings(row: SmsProvider) -> dict[str, object]:
    """What an edit can change, for its audit record. The credentials stand as their
    sealed form: it changes exactly when they are replaced, and the record masks it."""
    names = ("name", "config", "rate_per_second", "priority", "enabled")
    return {**{n: getattr(row, n) for n in names}, "credentials": row.credentials_sealed}


@router.delete("/admin/sms/providers/{provider_id}", status_code=204)
async def delete_provider(
    provider_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> Response:
    require_admin(principal)
    async with db.begin():
        await repository.delete_provider(db, provider_id)
    return Response(status_code=204)


@router.post("/admin/sms/providers/{provider_id}/test-send")
async def test_send(
    provider_id: uuid.UUID,
    body: TestSendIn,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> TestSendOut:
    """Send one message through this provider at once, to check its configuration: not
    billed, not in any message log; the answer says what the provider said."""
    require_admin(principal)
    service.valid_test_message(body.to, body.from_)
    async with db.begin():
        row = await repository.provider(db, provider_id)
    if row is None:
        raise NotFound("not-found", "No such provider.")
    client = providers.client_for(row.kind, row.config, _credentials(row, notifier))
    sms = providers.OutgoingSms(
        message_id=str(uuid7()),
        to=body.to,
        from_=body.from_,
        text=body.text,
        reference=None,
        status_callback_url=None,
    )
    try:
        accepted = await client.send(sms)
    except providers.ProviderError as exc:
        return TestSendOut(
            accepted=False,
            provider_message_id=None,
            error_code=exc.code,
            error_message=exc.message,
        )
    finally:
        await client.close()
    return TestSendOut(
        accepted=True,
        provider_message_id=accepted.provider_message_id,
        error_code=None,
        error_message=None,
    )


@router.get("/admin/sms/providers/{provider_id}/balance")
async def provider_balance(
    provider_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession, notifier: Notifier
) -> BalanceOut:
    """The provider's account balance where it offers one; `low` compares it with the
    provider's `config.balance_alert_below`."""
    require_admin(principal)
    async with db.begin():
        row = await repository.provider(db, provider_id)
    if row is None:
        raise NotFound("not-found", "No such provider.")
    client = providers.client_for(row.kind, row.config, _credentials(row, notifier))
    try:
        balance = await client.balance()
    except providers.ProviderError as exc:
        raise ServiceUnavailable(
            "provider-unavailable", f"The provider answered {exc.code}."
        ) from None
    finally:
        await client.close()
    if balance is None:
        return BalanceOut(provider_id=row.id, balance=None, currency=None, low=None)
    return BalanceOut(
        provider_id=row.id,
        balance=balance.balance,
        currency=balance.currency,
        low=below_alert(balance.balance, row),
    )


@router.get("/admin/sms/usage")
async def sms_usage(
    principal: CurrentPrincipal,
    db: DbSession,
    since: DateTimeText | None = None,
    until: DateTimeText | None = None,
) -> list[UsageOut]:
    """Outbound SMS per org in [since, until) (default: the last 30 days): messages,
    segments, credits charged and refunded."""
    require_admin(principal)
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=30)
    rows = await repository.usage_by_org(db, since, until)
    return [
        UsageOut(
            org_id=org,
            messages=messages,
            segments=segments,
            credits_charged=charged,
            credits_refunded=refunded,
        )
        for org, messages, segments, charged, refunded in rows
    ]
