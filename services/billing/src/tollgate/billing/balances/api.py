"""HTTP transport of balances and billing settings: validate, authorize, delegate.

`GET /balances` is the operator's list of every org's balance (platform admins only);
everything else is one org's and needs a role in it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from tollgate.billing import links
from tollgate.billing.balances import service
from tollgate.billing.balances.schemas import BalanceOut, BillingSettingsOut, BillingSettingsPatch
from tollgate.billing.config import CurrentSettings
from tollgate.contracts.events.billing import BalanceStatus
from tollgate.kit.audit import RecordedChange
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org, require_admin
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import Cursor, Page, PageSize, page_of, uuid_cursor
from tollgate.kit.problems import documented_problems

router = APIRouter(tags=["balances"])

_AUTH_ERRORS = documented_problems(
    {
        401: "Missing or invalid token.",
        403: "Role too low.",
        404: "Not a member of this organisation.",
    }
)


@router.get(
    "/orgs/{org_id}/balance",
    response_model=BalanceOut,
    responses={
        **_AUTH_ERRORS,
        200: links.to_org("The balance.", GetSettings=links.SETTINGS),
    },
)
async def get_balance(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
) -> BalanceOut:
    """The org's current balance and status (an org billing never charged reads as a
    new account: balance 0 with the default settings)."""
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        account = await service.peek_account(db, org_id, settings)
    return _balance_out(account)


def _balance_out(account: service.AccountState) -> BalanceOut:
    return BalanceOut(
        org_id=account.org_id,
        balance=account.balance,
        status=account.status,
        mode=account.mode,
        low_threshold=account.low_threshold,
        reserve=account.reserve,
        version=account.version,
        updated_at=account.published_at if account.version else None,
    )


@router.get(
    "/balances",
    response_model=Page[BalanceOut],
    responses=documented_problems(
        {401: "Missing or invalid token.", 403: "Platform admins only.", 422: "Invalid cursor."}
    ),
)
async def list_balances(
    principal: CurrentPrincipal,
    db: DbSession,
    status: Annotated[BalanceStatus | None, Query(description="only orgs with this status")] = None,
    org_id: Annotated[
        list[uuid.UUID] | None,
        Query(max_length=200, description="only these orgs (repeat the parameter)"),
    ] = None,
    cursor: Cursor = None,
    limit: PageSize = 50,
) -> Page[BalanceOut]:
    """Every org billing keeps an account for (each org gets one when it is created),
    in org id order, one page at a time (platform admins only)."""
    require_admin(principal)
    after = uuid_cursor(cursor)
    async with db.begin():
        accounts = await service.list_accounts(
            db, status=status, org_ids=org_id or [], after=after, limit=limit + 1
        )
    page, next_cursor = page_of(accounts, limit, lambda account: (account.org_id,))
    return Page[BalanceOut](items=[_balance_out(a) for a in page], next_cursor=next_cursor)


def _settings_out(account: service.AccountState) -> BillingSettingsOut:
    return BillingSettingsOut(
        org_id=account.org_id,
        mode=account.mode,
        low_threshold=account.low_threshold,
        reserve=account.reserve,
    )


@router.get(
    "/orgs/{org_id}/billing-settings", response_model=BillingSettingsOut, responses=_AUTH_ERRORS
)
async def get_billing_settings(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
) -> BillingSettingsOut:
    """The org's billing mode, low-balance threshold and reserve."""
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        account = await service.peek_account(db, org_id, settings)
    return _settings_out(account)


@router.patch(
    "/orgs/{org_id}/billing-settings",
    response_model=BillingSettingsOut,
    responses={
        **_AUTH_ERRORS,
        200: links.to_org(
            "The settings now.", GetSettings=links.SETTINGS, GetBalance=links.BALANCE
        ),
    },
)
async def patch_billing_settings(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    body: BillingSettingsPatch,
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    change: RecordedChange,
) -> BillingSettingsOut:
    """Change the low-balance threshold (owners) or the mode and reserve (admins); the
    new state is published to the gateway at once."""
    authorize_org(principal, org_id, Role.owner)
    if body.mode is not None or body.reserve is not None:
        require_admin(principal)
    async with db.begin():
        account = await service.update_settings(
            db,
            org_id,
            settings,
            mode=body.mode,
            low_threshold=body.low_threshold,
            reserve=body.reserve,
            change=change,
        )
    return _settings_out(account)
