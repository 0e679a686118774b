"""Throttles of credential checks and password reset requests, counted in Postgres.

A credential check (a password or one-time code at sign-in, TOTP verify, TOTP disable)
first takes a slot in three counters of the current fixed window: the (client IP,
account) pair, the account, and the client IP. Each slot is one atomic upsert that
refuses once the limit is reached, so replicas share the counts, a restart lifts
nothing, and a burst of concurrent guesses gets exactly `limit` checks: the rest are
refused before any password is looked at. A check that succeeds gives its slot back,
so only failures stay counted; a refused attempt is never counted.

The shape keeps one address from locking out an office behind it: guessing one
account's password from one address locks that pair first (small limit); the account
limit (across addresses) caps a distributed attack; the per-IP ceiling (much higher)
stops spraying many accounts from one address.

Slots are taken in a transaction of their own, committed before the check, so the
counter rows are locked for one statement, not for a bcrypt run. Within it the rows are
taken in one fixed order (pair, account, IP), so concurrent takers cannot deadlock.
Services never commit: the HTTP handler owns both transactions.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.config import Settings
from tollgate.accounts.identity import repository as repo
from tollgate.kit.clientip import parse_address
from tollgate.kit.problems import TooManyRequests

PAIR = "ip_account"
ACCOUNT = "account"
IP = "ip"
RESET_IP = "reset_ip"
REGISTER_IP = "register_ip"
VERIFY_RESEND = "verify_resend"


@dataclass(frozen=True)
class Counter:
    """One counter a check counts in: its scope (the limit's name), subject and limit."""

    scope: str
    subject: str
    limit: int


@dataclass(frozen=True)
class Slot:
    """Slots taken for one check, in the window that starts at `window_start`."""

    counters: tuple[Counter, ...]
    window_start: datetime


@dataclass(frozen=True)
class Throttled:
    """The check was refused unchecked: `limit` names the full counter."""

    limit: str
    retry_after: int


def window_of(now: datetime, seconds: int) -> datetime:
    """Start of the fixed window (aligned to the Unix epoch) that `now` falls in."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _retry_after(window_start: datetime, seconds: int, now: datetime) -> int:
    end = window_start + timedelta(seconds=seconds)
    return max(1, math.ceil((end - now).total_seconds()))


IPV6_SUBJECT_PREFIX = 64
"""IPv6 clients are counted per /64: one subscriber line or host gets at least a /64
and picks any address in it, so a per-address count would give it 2^64 budgets."""


def address_subject(ip: str | None) -> str:
    """The subject that per-address throttles count a client under: an IPv4 address (an
    IPv4-mapped one too) as it is, an IPv6 address as its /64 network
    (`2001:db8:1:2::/64`); text that is no address as it is (at most 64 characters)."""
    address = parse_address(ip or "")
    if address is None:
        return (ip or "unknown")[:64]
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_SUBJECT_PREFIX), strict=False))
    return str(address)


def credential_counters(settings: Settings, email: str, ip: str) -> tuple[Counter, ...]:
    """The counters of a password or code check for `email` from `ip`, in taking order."""
    return (
        Counter(PAIR, f"{email}|{ip}", settings.login_max_failures_per_ip_account),
        Counter(ACCOUNT, email, settings.login_max_failures_per_account),
        Counter(IP, ip, settings.login_max_failures_per_ip),
    )


async def take(
    session: AsyncSession, counters: tuple[Counter, ...], window_seconds: int
) -> Slot | Throttled:
    """Count one attempt in every counter, or in none when one of them is full."""
    now = datetime.now(UTC)
    window_start = window_of(now, window_seconds)
    taken: list[Counter] = []
    for counter in counters:
        if not await repo.take_throttle_slot(
            session,
            scope=counter.scope,
            subject=counter.subject,
            window_start=window_start,
            limit=counter.limit,
        ):
            # A refused attempt is not counted anywhere.
            await give_back(session, Slot(tuple(taken), window_start))
            return Throttled(counter.scope, _retry_after(window_start, window_seconds, now))
        taken.append(counter)
    await repo.purge_throttle_counters(session, window_start - timedelta(seconds=window_seconds))
    return Slot(tuple(taken), window_start)


async def take_or_refuse(
    session: AsyncSession,
    counter: Counter,
    window_seconds: int,
    *,
    slug: str,
    detail: str,
    limit: str,
) -> Slot:
    """`take` one counter, or 429 `slug` with Retry-After (`limit`: what it counts, "ip"
    or "account") when it is full."""
    taken = await take(session, (counter,), window_seconds)
    if isinstance(taken, Throttled):  # not counted: Retry-After stays true
        raise TooManyRequests(
            slug,
            detail,
            headers={"Retry-After": str(taken.retry_after)},
            limit=limit,
            retry_after=taken.retry_after,
        )
    return taken


async def give_back(session: AsyncSession, slot: Slot) -> None:
    """Uncount an attempt that was not a failed check (a refused one, or a right password
    whose one-time code is still to come)."""
    for counter in slot.counters:
        await repo.give_back_throttle_slot(
            session, scope=counter.scope, subject=counter.subject, window_start=slot.window_start
        )


async def succeeded(session: AsyncSession, slot: Slot) -> None:
    """The check passed: the account's failures from this address and overall are
    forgotten; the address's own count drops by this attempt only (other accounts
    behind it may still be guessed at). Same row order as `take`."""
    for counter in slot.counters:
        if counter.scope in (PAIR, ACCOUNT):
            await repo.drop_throttle_count(
                session,
                scope=counter.scope,
                subject=counter.subject,
                window_start=slot.window_start,
            )
        else:
            await repo.give_back_throttle_slot(
                session,
                scope=counter.scope,
                subject=counter.subject,
                window_start=slot.window_start,
            )


async def forget_account(session: AsyncSession, email: str) -> None:
    """Forget an account's failures from every address (its password was reset);
    the per-IP counts stay. Pair rows before the account row, as `take` locks them."""
    await repo.drop_throttle_counts(session, scope=PAIR, subject_prefix=f"{email}|")
    await repo.drop_throttle_counts(session, scope=ACCOUNT, subject=email)
