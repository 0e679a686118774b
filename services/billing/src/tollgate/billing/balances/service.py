"""Balance rules: an org's status, its crossings, and the events that announce them.

The status of an account is a pure function of its balance, mode, low threshold and
reserve (`balance_status`). Callers lock accounts (`lock_accounts`), change balances
or settings, then `settle` them: `settle` computes the new status, enqueues
`BalanceState` on `tollgate.billing.balances.v1` when the status changed (or when
asked to), `CreditsLow` / `CreditsExhausted` on `tollgate.billing.events.v1` once per
crossing, and writes the accounts back. All of it joins the caller's transaction;
nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.balances import repository
from tollgate.billing.config import Settings
from tollgate.billing.payments import auto_top_up_crossings as crossings
from tollgate.contracts.events.billing import (
    BalanceMode,
    BalanceState,
    BalanceStatus,
    CreditsExhausted,
    CreditsLow,
)
from tollgate.kit.audit import AuditChange
from tollgate.kit.outbox import emit


@dataclass
class AccountState:
    """An org's account as loaded (and locked) in the current transaction."""

    org_id: uuid.UUID
    mode: BalanceMode
    low_threshold: int
    reserve: int
    balance: int
    status: BalanceStatus
    version: int
    published_balance: int | None
    published_at: datetime | None
    sms_charged: int = 0
    """The net of the SMS charges and refunds in `balance` (see `BalanceState`)."""

    @classmethod
    def from_row(cls, row: Any) -> AccountState:
        return cls(
            org_id=row.org_id,
            mode=BalanceMode(row.mode),
            low_threshold=row.low_threshold,
            reserve=row.reserve,
            balance=row.balance,
            status=BalanceStatus(row.status),
            version=row.version,
            published_balance=row.published_balance,
            published_at=row.published_at,
            sms_charged=row.sms_charged,
        )

    def as_row(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "mode": self.mode.value,
            "low_threshold": self.low_threshold,
            "reserve": self.reserve,
            "balance": self.balance,
            "status": self.status.value,
            "version": self.version,
            "published_balance": self.published_balance,
            "published_at": self.published_at,
            "sms_charged": self.sms_charged,
            "updated_at": datetime.now(UTC),
        }


def balance_status(
    balance: int, *, mode: BalanceMode, low_threshold: int, reserve: int
) -> BalanceStatus:
    """Where a balance stands: exhausted at or below zero (for prepaid orgs: at or below
    their reserve, so the gateway stops them before they cross zero), low at or below
    the low threshold, ok above it."""
    floor = reserve if mode is BalanceMode.PREPAID else 0
    if balance <= floor:
        return BalanceStatus.EXHAUSTED
    if balance <= low_threshold:
        return BalanceStatus.LOW
    return BalanceStatus.OK


def new_account(org_id: uuid.UUID, settings: Settings) -> AccountState:
    """The account of an org billing has not heard of: balance 0, default settings."""
    mode = settings.default_mode
    return AccountState(
        org_id=org_id,
        mode=mode,
        low_threshold=settings.default_low_threshold,
        reserve=settings.default_reserve,
        balance=0,
        status=balance_status(
            0,
            mode=mode,
            low_threshold=settings.default_low_threshold,
            reserve=settings.default_reserve,
        ),
        version=0,
        published_balance=None,
        published_at=None,
    )


async def lock_accounts(
    session: AsyncSession, org_ids: Iterable[uuid.UUID], settings: Settings
) -> dict[uuid.UUID, AccountState]:
    """Lock the accounts of `org_ids` for this transaction, creating missing ones with
    the defaults (balance 0). Locks are taken in org id order."""
    wanted = sorted(set(org_ids))
    if not wanted:
        return {}
    rows = await repository.lock(session, wanted)
    if len(rows) < len(wanted):
        present = {row.org_id for row in rows}
        missing = [new_account(org_id, settings) for org_id in wanted if org_id not in present]
        await repository.create_missing(
            session, [{k: v for k, v in a.as_row().items() if k != "updated_at"} for a in missing]
        )
        rows = await repository.lock(session, wanted)
    return {row.org_id: AccountState.from_row(row) for row in rows}


async def open_accounts(
    session: AsyncSession, org_ids: Iterable[uuid.UUID], settings: Settings
) -> list[uuid.UUID]:
    """Open the accounts of orgs billing has not heard of (an org was just created):
    balance 0 with the defaults, and their first `BalanceState` published at once, so
    a prepaid org with nothing to spend is exhausted at the gateway from its first
    call; its `CreditsExhausted` notice goes out like any other org's. Orgs billing
    knows already are left alone; returns the org ids opened now."""
    wanted = sorted(set(org_ids))
    fresh = [new_account(org_id, settings) for org_id in wanted]
    opened = await repository.create_new(
        session, [{k: v for k, v in a.as_row().items() if k != "updated_at"} for a in fresh]
    )
    if not opened:
        return []
    accounts = await lock_accounts(session, opened, settings)
    now = datetime.now(UTC)
    for account in accounts.values():
        if account.status is BalanceStatus.EXHAUSTED:
            exhausted = CreditsExhausted(
                org_id=account.org_id, balance=account.balance, mode=account.mode, occurred_at=now
            )
            await emit(session, exhausted, subject=exhausted.kafka_key())
        await publish_state(session, account, settings, now)
    await repository.save(session, [a.as_row() for a in accounts.values()])
    return sorted(opened)


async def peek_account(
    session: AsyncSession, org_id: uuid.UUID, settings: Settings
) -> AccountState:
    """The account as it stands (not locked); an unknown org reads as a new account."""
    row = await repository.get(session, org_id)
    return AccountState.from_row(row) if row is not None else new_account(org_id, settings)


async def list_accounts(
    session: AsyncSession,
    *,
    status: BalanceStatus | None,
    org_ids: list[uuid.UUID],
    after: uuid.UUID | None,
    limit: int,
) -> list[AccountState]:
    """Every org billing has an account for, in org id order (the operator's list);
    `org_ids` (when not empty) keeps only those orgs."""
    rows = await repository.list_after(
        session,
        status=status.value if status else None,
        org_ids=org_ids,
        after=after,
        limit=limit,
    )
    return [AccountState.from_row(row) for row in rows]


async def publish_state(
    session: AsyncSession, account: AccountState, settings: Settings, now: datetime
) -> None:
    """Enqueue the account's current `BalanceState` with the next version."""
    account.version += 1
    account.published_balance = account.balance
    account.published_at = now
    state = BalanceState(
        org_id=account.org_id,
        balance=account.balance,
        status=account.status,
        mode=account.mode,
        low_threshold=account.low_threshold,
        version=account.version,
        as_of=now,
        sms_charged=account.sms_charged,
    )
    await emit(session, state, subject=state.kafka_key())


async def settle(
    session: AsyncSession,
    accounts: Iterable[AccountState],
    settings: Settings,
    *,
    publish: bool,
    auto_top_up: bool = True,
) -> None:
    """Recompute the status of changed accounts, announce crossings, write them back.

    `BalanceState` is enqueued when the status changed or `publish` is true; otherwise
    the periodic publisher sends the new balance later. `CreditsLow` goes out when an
    account leaves `ok` (once, until it is back above the threshold), `CreditsExhausted`
    when it becomes `exhausted`. An account at or below its auto top-up threshold gets
    a charge queued, unless `auto_top_up` is false (see `crossings.queue_crossings`).
    """
    now = datetime.now(UTC)
    changed = list(accounts)
    for account in changed:
        before = account.status
        account.status = balance_status(
            account.balance,
            mode=account.mode,
            low_threshold=account.low_threshold,
            reserve=account.reserve,
        )
        if before is BalanceStatus.OK and account.status is not BalanceStatus.OK:
            low = CreditsLow(
                org_id=account.org_id,
                balance=account.balance,
                threshold=account.low_threshold,
                occurred_at=now,
            )
            await emit(session, low, subject=low.kafka_key())
        if before is not BalanceStatus.EXHAUSTED and account.status is BalanceStatus.EXHAUSTED:
            exhausted = CreditsExhausted(
                org_id=account.org_id, balance=account.balance, mode=account.mode, occurred_at=now
            )
            await emit(session, exhausted, subject=exhausted.kafka_key())
        if publish or before is not account.status:
            await publish_state(session, account, settings, now)
    await repository.save(session, [a.as_row() for a in changed])
    await crossings.queue_crossings(
        session, {a.org_id: a.balance for a in changed}, settings, charge=auto_top_up
    )


async def publish_due_balances(session: AsyncSession, settings: Settings, limit: int = 500) -> int:
    """Publish the balance of accounts whose balance moved without a status change and
    was last published more than the publish interval ago; returns how many."""
    now = datetime.now(UTC)
    before = now - timedelta(seconds=settings.balance_publish_interval_seconds)
    rows = await repository.lock_due_for_publish(session, before, limit)
    accounts = [AccountState.from_row(row) for row in rows]
    for account in accounts:
        await publish_state(session, account, settings, now)
    await repository.save(session, [a.as_row() for a in accounts])
    return len(accounts)


async def update_settings(
    session: AsyncSession,
    org_id: uuid.UUID,
    settings: Settings,
    *,
    mode: BalanceMode | None,
    low_threshold: int | None,
    reserve: int | None,
    change: AuditChange | None = None,
) -> AccountState:
    """Change an org's billing settings; the new state is published at once. `change`
    receives the settings before and after, for the audit record."""
    account = (await lock_accounts(session, [org_id], settings))[org_id]
    before = _settings_of(account)
    if mode is not None:
        account.mode = mode
    if low_threshold is not None:
        account.low_threshold = low_threshold
    if reserve is not None:
        account.reserve = reserve
    await settle(session, [account], settings, publish=True)
    if change is not None:
        change.note(before, _settings_of(account))
    return account


def _settings_of(account: AccountState) -> dict[str, Any]:
    names = ("mode", "low_threshold", "reserve")
    return {name: getattr(account, name) for name in names}
