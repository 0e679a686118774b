"""Email rules: which events become which mails, to whom, and the retry policy.

Never commits (the transport owns the transaction). Mails are queued with a dedupe
key derived from the event id, so a redelivered event never queues twice. Tokens
stay sealed in the queue; they are unsealed only when the mail is composed for
sending (`compose`), and never logged.

Recipients: user mails (password reset, email verification, invitation) go to the address in the
event. Org-level mails (credits, plan payment failed or suspended, auto top-up failed,
usage, deprecation of an API or route the org called, disabled webhook endpoint) go to the org's
notification contacts, managed by the org's owners through this service's API (the notifier
does not own users; an org without contacts gets no org-level mail).

The org's owner is its contact until someone sets the list: accounts' `OrgCreated`
(name, the creating owner's address and locale) seeds the owner as the only contact
while the org's list was never set (`contact_lists` remembers the first setting, by the
seeding or by a PUT). Billing sends a new prepaid org's `CreditsExhausted` within ~100
ms of its creation, on another topic, so it may be taken in before the org has anyone
to mail: each credits notice (low, exhausted, topped up) is kept as the org's latest
(`balance_notices`), and the first setting of the contacts mails a kept low/exhausted
notice to them, unless the replayed balance state (billing's balances topic, when known
and not older) says the org has moved on. Both sides take the org's advisory lock first,
so whichever transaction commits second sees the other's rows; and the catch-up mail
uses the notice's own dedupe key (`event:<notice id>:<address>`), so either order, a
redelivery or a later PUT mails each address at most once per notice.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.envelope import CloudEvent
from tollgate.contracts.events.accounts import (
    EmailVerificationRequested,
    MemberInvited,
    OrgCreated,
    PasswordResetRequested,
)
from tollgate.contracts.events.billing import (
    AutoTopUpFailed,
    BalanceState,
    BalanceStatus,
    CreditsExhausted,
    CreditsLow,
    CreditsToppedUp,
    PlanPaymentFailed,
    PlanSuspended,
)
from tollgate.contracts.events.usage import (
    ApiDeprecationAnnounced,
    RouteDeprecationAnnounced,
    UsageThresholdCrossed,
)
from tollgate.kit.audit import AuditChange
from tollgate.kit.problems import Conflict, NotFound, Unprocessable
from tollgate.kit.sealing import Sealer
from tollgate.notifier.email import repository
from tollgate.notifier.email.backends import SendResult
from tollgate.notifier.email.templates import RenderedEmail, render
from tollgate.notifier.models import BalanceNotice, EmailMessage, NotificationContact

RETRY_DELAYS = (10, 30, 120, 600, 1800, 3600, 7200, 14400)
"""Seconds before retry n (after the n-th failed try), with jitter."""


@dataclass(frozen=True)
class Contact:
    """Someone who receives an org's notification mails."""

    email: str
    locale: str


class BalanceStates(Protocol):
    """The notifier's replay of billing's balances topic (`outbound.credit.OrgBalances`)."""

    def of(self, org_id: uuid.UUID) -> BalanceState | None:
        """The org's latest balance state, or None when billing published none yet."""


async def queue_email(
    session: AsyncSession,
    *,
    kind: str,
    locale: str,
    to: str,
    context: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    org_id: uuid.UUID | None = None,
) -> bool:
    """Queue one mail; False when the same dedupe key was queued before."""
    return await repository.insert_email(
        session,
        {
            "id": uuid.uuid4(),
            "dedupe_key": dedupe_key,
            "kind": kind,
            "locale": locale,
            "to_address": to,
            "org_id": org_id,
            "context": context,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )


async def queue_for_org(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    kind: str,
    context: dict[str, Any],
    dedupe_key: str,
    now: datetime,
) -> int:
    """Queue a mail to each of the org's contacts; returns how many were queued."""
    queued = 0
    for contact in await repository.contacts_of_org(session, org_id):
        queued += await queue_email(
            session,
            kind=kind,
            locale=contact.locale,
            to=contact.email,
            context=context,
            dedupe_key=f"{dedupe_key}:{contact.email}",
            now=now,
            org_id=org_id,
        )
    return queued


async def queue_for_event(
    session: AsyncSession,
    event: CloudEvent[Any],
    now: datetime,
    balances: BalanceStates | None = None,
) -> int:
    """Queue the mails an event calls for (none for most types). An `OrgCreated` seeds
    the owner as the org's contact (and mails it a credits notice that came first); a
    credits notice is kept as the org's latest. Callers holding several orgs' events
    take `lock_orgs(orgs_concerned(events))` first."""
    data = event.data
    key = f"event:{event.id}"
    if isinstance(data, OrgCreated):
        return await seed_owner_contact(session, data, now, balances)
    await _remember_balance_notice(session, event)
    if isinstance(data, PasswordResetRequested):
        context = {
            "token_sealed": data.reset_token_sealed,
            "expires_at": _utc(data.expires_at),
        }
        return int(
            await queue_email(
                session,
                kind="password_reset",
                locale=data.locale,
                to=data.email,
                context=context,
                dedupe_key=key,
                now=now,
            )
        )
    if isinstance(data, EmailVerificationRequested):
        context = {
            "token_sealed": data.verification_token_sealed,
            "expires_at": _utc(data.expires_at),
        }
        return int(
            await queue_email(
                session,
                kind="email_verification",
                locale=data.locale,
                to=data.email,
                context=context,
                dedupe_key=key,
                now=now,
            )
        )
    if isinstance(data, MemberInvited):
        context = {
            "token_sealed": data.invitation_token_sealed,
            "org_name": data.org_name,
            "role": data.role.value,
            "expires_at": _utc(data.expires_at),
        }
        return int(
            await queue_email(
                session,
                kind="org_invitation",
                locale=data.locale,
                to=data.email,
                context=context,
                dedupe_key=key,
                now=now,
                org_id=data.org_id,
            )
        )
    org_mail = _ORG_MAILS.get(type(data))
    if org_mail is not None:
        kind, context_of = org_mail
        return await queue_for_org(
            session, data.org_id, kind=kind, context=context_of(data), dedupe_key=key, now=now
        )
    return 0


def _sunset(data: ApiDeprecationAnnounced | RouteDeprecationAnnounced) -> str:
    """The retirement date as mailed; `none` (put in words by the template) when unset."""
    return _utc(data.sunset_at) if data.sunset_at else "none"


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _credits_low(data: CreditsLow) -> dict[str, Any]:
    return {"balance": data.balance, "threshold": data.threshold}


def _credits_exhausted(data: CreditsExhausted) -> dict[str, Any]:
    return {"balance": data.balance, "mode": data.mode.value}


def _plan_payment_failed(data: PlanPaymentFailed) -> dict[str, Any]:
    return {
        "plan_name": data.plan_name,
        "invoice_id": data.invoice_id,
        "grace_until": _utc(data.grace_until),
    }


def _plan_suspended(data: PlanSuspended) -> dict[str, Any]:
    return {"plan_name": data.plan_name, "reason": data.reason}


def _auto_top_up_failed(data: AutoTopUpFailed) -> dict[str, Any]:
    return {"reason": data.reason, "balance": data.balance}


def _usage_threshold(data: UsageThresholdCrossed) -> dict[str, Any]:
    return {
        "key_id": str(data.key_id),
        "period": data.period.value,
        "threshold_percent": data.threshold_percent,
        "used": data.used,
        "limit": data.limit,
    }


def _api_deprecated(data: ApiDeprecationAnnounced) -> dict[str, Any]:
    return {
        "api_name": data.api_name,
        "api_version": data.api_version,
        "api_slug": data.api_slug,
        "requests": data.requests,
        "sunset": _sunset(data),
    }


def _route_deprecated(data: RouteDeprecationAnnounced) -> dict[str, Any]:
    path = data.path_template
    return {
        "api_name": data.api_name,
        "api_version": data.api_version,
        "api_slug": data.api_slug,
        # `*` routes answer every method: named by their path alone.
        "route": path if data.method == "*" else f"{data.method} {path}",
        "path_template": data.path_template,
        "requests": data.requests,
        "sunset": _sunset(data),
    }


_ORG_MAILS: dict[type[Any], tuple[str, Callable[[Any], dict[str, Any]]]] = {
    CreditsLow: ("credits_low", _credits_low),
    CreditsExhausted: ("credits_exhausted", _credits_exhausted),
    PlanPaymentFailed: ("plan_payment_failed", _plan_payment_failed),
    PlanSuspended: ("plan_suspended", _plan_suspended),
    AutoTopUpFailed: ("auto_top_up_failed", _auto_top_up_failed),
    UsageThresholdCrossed: ("usage_threshold", _usage_threshold),
    ApiDeprecationAnnounced: ("api_deprecated", _api_deprecated),
    RouteDeprecationAnnounced: ("route_deprecated", _route_deprecated),
}
"""Event type -> (mail template, its context) of every mail to an org's contacts; each
of the org's contacts gets one, in their own language."""


_LINK_PATHS = {
    "password_reset": "reset-password",
    "email_verification": "verify-email",
    "org_invitation": "accept-invitation",
}
"""Console page each token-carrying mail links to."""


def compose(message: EmailMessage, sealer: Sealer, console_url: str) -> RenderedEmail:
    """Render a queued mail, unsealing its token into the console link if it has one."""
    context = dict(message.context)
    link: str | None = None
    sealed = context.pop("token_sealed", None)
    base = console_url.rstrip("/")
    if sealed is not None:
        token = quote(sealer.unseal(str(sealed)).decode(), safe="")
        path = _LINK_PATHS[message.kind]
        link = f"{base}/{path}?token={token}"
    return render(message.kind, message.locale, context, link)


@dataclass(frozen=True)
class NextStep:
    """What the queue does with a mail after a try."""

    state: str
    next_attempt_at: datetime | None
    error: str | None


def after_send(
    result: SendResult, attempts: int, max_attempts: int, now: datetime, rng: random.Random
) -> NextStep:
    """Sent, retry later (429/5xx/network, backoff with jitter, Retry-After honoured),
    or failed for good (other 4xx, or out of attempts)."""
    if result.sent:
        return NextStep("sent", None, None)
    if not result.retryable or attempts >= max_attempts:
        return NextStep("failed", None, result.error)
    delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1] * rng.uniform(0.8, 1.2)
    if result.retry_after_seconds is not None:
        delay = max(delay, min(result.retry_after_seconds, 86_400.0))
    return NextStep("pending", now + timedelta(seconds=delay), result.error)


def deliverable_address(email: str) -> str:
    """`email` normalised, or a 422 when no mail could be delivered to it (the API
    documents only its shape: deliverability is not a JSON Schema matter)."""
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise Unprocessable("invalid-email", f"Invalid email address: {exc}") from exc


def check_contacts(contacts: list[Contact]) -> None:
    """At most 20 distinct contacts per org."""
    if len(contacts) > 20:
        raise Unprocessable("too-many-contacts", "At most 20 notification contacts.")
    if len({c.email.lower() for c in contacts}) != len(contacts):
        raise Unprocessable("duplicate-contact", "Duplicate contact email.")


async def replace_contacts(
    session: AsyncSession,
    org_id: uuid.UUID,
    contacts: list[Contact],
    now: datetime,
    change: AuditChange | None = None,
    balances: BalanceStates | None = None,
) -> list[NotificationContact]:
    """Make `contacts` the org's notification contacts (`change` receives the list
    before and after, for the audit record). The first time an org's list is set, its
    contacts are mailed a low/exhausted notice that arrived before them."""
    check_contacts(contacts)
    await repository.lock_org_contacts(session, [org_id])
    before = _contact_list(await repository.contacts_of_org(session, org_id))
    first = await repository.mark_contacts_set(session, org_id, "api", now)
    await repository.replace_contacts(
        session,
        org_id,
        [
            {"org_id": org_id, "email": c.email.lower(), "locale": c.locale, "created_at": now}
            for c in contacts
        ],
    )
    stored = await repository.contacts_of_org(session, org_id)
    if change is not None:
        change.note({"contacts": before}, {"contacts": _contact_list(stored)})
    if first and not before:
        await _catch_up(session, org_id, stored, now, balances)
    return stored


def _contact_list(contacts: list[NotificationContact]) -> list[dict[str, str]]:
    return [{"email": c.email, "locale": c.locale} for c in contacts]


_BALANCE_STATUS: dict[type[Any], BalanceStatus] = {
    CreditsLow: BalanceStatus.LOW,
    CreditsExhausted: BalanceStatus.EXHAUSTED,
    CreditsToppedUp: BalanceStatus.OK,
}
"""Credits notices and the balance status each leaves the org in."""


def orgs_concerned(events: Sequence[CloudEvent[Any]]) -> list[uuid.UUID]:
    """Orgs whose contacts or latest credits notice these events set."""
    concerning: tuple[type[Any], ...] = (OrgCreated, *_BALANCE_STATUS)
    return [e.data.org_id for e in events if isinstance(e.data, concerning)]


async def lock_orgs(session: AsyncSession, org_ids: list[uuid.UUID]) -> None:
    """Hold these orgs' contact lock until the transaction ends (see the module)."""
    await repository.lock_org_contacts(session, org_ids)


async def _remember_balance_notice(session: AsyncSession, event: CloudEvent[Any]) -> None:
    """Keep a credits notice as its org's latest, with the mail it makes."""
    data = event.data
    status = _BALANCE_STATUS.get(type(data))
    if status is None:
        return
    kind, context = "", {}
    if status is not BalanceStatus.OK:
        kind, context_of = _ORG_MAILS[type(data)]
        context = context_of(data)
    await repository.record_balance_notice(
        session,
        {
            "org_id": data.org_id,
            "event_id": event.id,
            "status": status.value,
            "kind": kind,
            "context": context,
            "occurred_at": data.occurred_at,
        },
    )


async def seed_owner_contact(
    session: AsyncSession, data: OrgCreated, now: datetime, balances: BalanceStates | None
) -> int:
    """Make the new org's owner its notification contact, unless the org's contacts were
    set before; returns the credits notices this mailed the owner (0 or 1)."""
    await repository.lock_org_contacts(session, [data.org_id])
    if await repository.contacts_of_org(session, data.org_id):
        return 0
    if not await repository.mark_contacts_set(session, data.org_id, "owner", now):
        return 0
    owner = {"org_id": data.org_id, "email": data.owner_email.lower(), "created_at": now}
    await repository.replace_contacts(
        session, data.org_id, [{**owner, "locale": data.owner_locale}]
    )
    stored = await repository.contacts_of_org(session, data.org_id)
    return await _catch_up(session, data.org_id, stored, now, balances)


async def _catch_up(
    session: AsyncSession,
    org_id: uuid.UUID,
    contacts: list[NotificationContact],
    now: datetime,
    balances: BalanceStates | None,
) -> int:
    """Mail the org's first contacts its kept low/exhausted notice, unless the balance
    state says the org has moved on since; same dedupe keys as the notice's own mails."""
    notice = await repository.balance_notice_of(session, org_id)
    if notice is None or notice.status == BalanceStatus.OK.value or _moved_on(notice, balances):
        return 0
    queued = 0
    for contact in contacts:
        queued += await queue_email(
            session,
            kind=notice.kind,
            locale=contact.locale,
            to=contact.email,
            context=notice.context,
            dedupe_key=f"event:{notice.event_id}:{contact.email}",
            now=now,
            org_id=org_id,
        )
    return queued


def _moved_on(notice: BalanceNotice, balances: BalanceStates | None) -> bool:
    """Whether a balance state no older than the notice has another status."""
    state = balances.of(notice.org_id) if balances is not None else None
    return (
        state is not None
        and state.as_of >= notice.occurred_at
        and state.status.value != notice.status
    )


async def retry_failed(session: AsyncSession, email_id: uuid.UUID, now: datetime) -> EmailMessage:
    """Put a failed mail back in the queue (admins)."""
    message = await repository.email_by_id(session, email_id)
    if message is None:
        raise NotFound("not-found", "No such email.")
    if message.state != "failed":
        raise Conflict("not-retryable", "Only failed emails can be retried.")
    await repository.update_email(
        session, email_id, state="pending", attempts=0, next_attempt_at=now, leased_until=None
    )
    await session.refresh(message)
    return message
