"""HTTP transport of the ledger: top-ups, adjustments and the transactions list.

Top-ups and adjustments are platform-admin operations and require an
`Idempotency-Key` header: the key is claimed in the same transaction as the ledger
entry, so a retried or concurrent request is applied at most once.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from tollgate.billing import links
from tollgate.billing.config import CurrentSettings, Settings
from tollgate.billing.idempotency import service as idempotency
from tollgate.billing.ledger import repository, service
from tollgate.billing.ledger.schemas import (
    AdjustmentIn,
    EntryKind,
    KindTotal,
    LedgerEntryOut,
    TopUpIn,
    TransactionPage,
    TransactionTotals,
)
from tollgate.kit.auth import CurrentPrincipal, Principal, Role, authorize_org, require_admin
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import Cursor, int_cursor, next_cursor_of
from tollgate.kit.problems import BadRequest, Unprocessable, documented_problems
from tollgate.kit.requests import DateTimeText

router = APIRouter(tags=["ledger"])

_WRITE_ERRORS = documented_problems(
    {
        400: ("Missing Idempotency-Key.", ["idempotency-key-missing"]),
        401: "Missing or invalid token.",
        403: "Platform admins only.",
        409: (
            "A request with this Idempotency-Key is in progress.",
            ["idempotency-key-in-progress"],
        ),
        422: (
            "Invalid body, or Idempotency-Key reused for another request.",
            ["idempotency-key-reused", "balance-out-of-range"],
        ),
    }
)
_WRITTEN = {
    **_WRITE_ERRORS,
    201: links.to_org(
        "The ledger entry written (or, for a replay, the first answer).",
        GetBalance=links.BALANCE,
        ListTransactions=links.TRANSACTIONS,
    ),
}
_READ_ERRORS = documented_problems(
    {
        422: ("Invalid query, or a cursor that is not one of ours.", ["invalid-cursor"]),
        401: "Missing or invalid token.",
        404: "Not a member of this organisation.",
    }
)

_TOTALS_ERRORS = documented_problems(
    {
        422: "Invalid query.",
        401: "Missing or invalid token.",
        404: "Not a member of this organisation.",
    }
)

_KEY_PATTERN = r"^[\x21-\x7e]+$"
_KEY_DESCRIPTION = (
    "Unique per intended operation; retries with the same key and body get the first "
    "response. Kept for at least 24 h."
)
IdempotencyKey = Annotated[
    str | None,
    # Optional to FastAPI only so that a missing key is our 400, not a validation 422;
    # the document says what clients must send (`_REQUIRES_KEY`).
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=_KEY_PATTERN,
        include_in_schema=False,
    ),
]
_REQUIRES_KEY: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": _KEY_DESCRIPTION,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": _KEY_PATTERN},
        }
    ]
}


async def _apply_once(
    db: DbSession,
    settings: Settings,
    request: Request,
    principal: Principal,
    org_id: uuid.UUID,
    key: str | None,
    body: dict[str, Any],
    kind: service.CreditKind,
) -> Response:
    if not key:
        raise BadRequest(
            "idempotency-key-missing", "This operation requires an Idempotency-Key header."
        )
    print_ = idempotency.fingerprint(request.method, request.url.path, body)
    async with db.begin():
        stored = await idempotency.claim(db, org_id, key, print_)
        if stored is not None:
            return Response(
                stored.body,
                status_code=stored.status_code,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        ledger_key = service.credit_key(org_id, key)
        if await repository.has_entry_keyed(db, ledger_key):
            # Applied once, its stored answer since forgotten (kept for the retention).
            raise Unprocessable(
                "idempotency-key-reused",
                "This Idempotency-Key was used before, longer ago than its answer is "
                "kept; nothing was applied again. Use a new key for a new change.",
            )
        entry = await service.add_credits(
            db,
            org_id,
            settings,
            kind=kind,
            amount=body["amount"],
            actor=f"admin:{principal.user_id}",
            reason=body["reason"],
            idempotency_key=ledger_key,
        )
        out = LedgerEntryOut.model_validate(entry).model_dump_json().encode()
        await idempotency.remember(db, org_id, key, 201, out)
    return Response(out, status_code=201, media_type="application/json")


@router.post(
    "/orgs/{org_id}/credits",
    status_code=201,
    response_model=LedgerEntryOut,
    responses=_WRITTEN,
    openapi_extra=_REQUIRES_KEY,
)
async def top_up(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    body: TopUpIn,
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Add credits (platform admins). A blocked prepaid org is unblocked as soon as
    its balance is above its reserve again."""
    require_admin(principal)
    return await _apply_once(
        db,
        settings,
        request,
        principal,
        org_id,
        idempotency_key,
        body.model_dump(mode="json"),
        "top_up",
    )


@router.post(
    "/orgs/{org_id}/adjustments",
    status_code=201,
    response_model=LedgerEntryOut,
    responses=_WRITTEN,
    openapi_extra=_REQUIRES_KEY,
)
async def adjust(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    body: AdjustmentIn,
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Correct a balance (platform admins): an adjustment, refund or expiry entry."""
    require_admin(principal)
    data = body.model_dump(mode="json")
    return await _apply_once(
        db, settings, request, principal, org_id, idempotency_key, data, body.kind
    )


@router.get("/orgs/{org_id}/transactions", response_model=TransactionPage, responses=_READ_ERRORS)
async def list_transactions(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    kind: Annotated[list[EntryKind] | None, Query(description="Only these kinds.")] = None,
    api_id: Annotated[uuid.UUID | None, Query(description="Only debits of this API.")] = None,
    since: Annotated[DateTimeText | None, Query(description="Created at or after.")] = None,
    until: Annotated[DateTimeText | None, Query(description="Created before.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> TransactionPage:
    """The org's ledger entries, newest first, one page at a time."""
    authorize_org(principal, org_id, Role.viewer)
    before = int_cursor(cursor)
    async with db.begin():
        rows = await service.transactions(
            db,
            org_id,
            kinds=kind,
            api_id=api_id,
            since=since,
            until=until,
            before_seq=before,
            limit=limit + 1,
        )
    page, next_cursor = next_cursor_of(rows, limit, "seq")
    return TransactionPage(
        items=[LedgerEntryOut.model_validate(row) for row in page], next_cursor=next_cursor
    )


@router.get(
    "/orgs/{org_id}/transactions/totals",
    response_model=TransactionTotals,
    responses=_TOTALS_ERRORS,
)
async def transaction_totals(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    since: Annotated[DateTimeText | None, Query(description="Created at or after.")] = None,
    until: Annotated[DateTimeText | None, Query(description="Created before.")] = None,
) -> TransactionTotals:
    """The org's ledger entries created in the range, added up by kind: what the
    transactions list holds, without paging through it (the console's "Credits used" is
    the debits' total)."""
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        rows = await repository.totals_by_kind(db, org_id, since=since, until=until)
    return TransactionTotals(
        kinds=[
            KindTotal(kind=kind, entries=entries, amount=amount, request_count=requests)
            for kind, entries, amount, requests in rows
        ]
    )
