"""Outbound SMS rules: accept and price a message, move it through its statuses.

Accepting a message (one transaction, the caller's): the recipient is E.164, the
sender a number assigned to the caller's org or an alphanumeric sender id the operator
approved for it (1-11 letters, digits, spaces, `.`, `&`, `-`, at least one letter),
the text at most `sms_max_segments` segments; the price is segments times the price of
the longest matching prefix of the operator's table (no matching prefix: refused,
nothing is sent unpriced). The message, its `queued` history row, `SmsCharged`
(billing debits it once per charge id) and the `queued` `SmsStatusChanged` go out
together through the outbox, and the org's conversation with the recipient is opened
or extended, so replies route back (not from a sender id: nobody can reply to one).
Then, as the transaction's last statements, a prepaid org's credits must cover it
(`credit.py`: the org's lock is held from there to the commit; a 402 rolls back all
of the above).

An `Idempotency-Key` makes a send repeatable: the org's first message with that key
is the answer to every later send with the same key and the same request (nothing is
sent or charged again); the same key with a different request is a 422. Keys live
as long as their message.

Statuses only move forward: queued → sent → delivered / undelivered / failed (a
late `sent` after `delivered` is recorded nowhere). Each change is a history row,
an `SmsStatusChanged` event and, when the sender asked for status callbacks, a
webhook to the org's endpoints subscribed to `tollgate.notifier.sms.status.v1`.
A message that ends `failed` (refused by the provider, retries exhausted, or reported
failed) is refunded once with `SmsRefunded`; `undelivered` is not refunded (the
provider carried and billed it). Never commits.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.events.notifier import (
    SmsCharged,
    SmsRefunded,
    SmsStatus,
    SmsStatusChanged,
)
from tollgate.contracts.ids import uuid7
from tollgate.kit.outbox import emit_many
from tollgate.kit.problems import Forbidden, Unprocessable
from tollgate.kit.upstream_identity import CallerIdentity
from tollgate.notifier.config import Settings
from tollgate.notifier.models import SmsOutbound
from tollgate.notifier.outbound import credit, repository
from tollgate.notifier.outbound.encoding import segment
from tollgate.notifier.sms import repository as inbound
from tollgate.notifier.sms.service import E164
from tollgate.notifier.webhooks import repository as webhook_endpoints
from tollgate.notifier.webhooks import service as webhooks

SENDER_ID_PATTERN = r"^(?:[0-9.&-][0-9 .&-]*)?[A-Za-z](?:[A-Za-z0-9 .&-]*[A-Za-z0-9.&-])?$"
"""An alphanumeric sender id (with at most 11 characters): letters, digits, spaces, `.`,
`&`, `-`, at least one letter, no space first or last."""
SENDER_ID = re.compile(SENDER_ID_PATTERN)
PREFIX = re.compile(r"^\+[0-9]{0,15}$")

_RANK = {
    SmsStatus.QUEUED: 0,
    SmsStatus.SENT: 1,
    SmsStatus.DELIVERED: 2,
    SmsStatus.UNDELIVERED: 2,
    SmsStatus.FAILED: 2,
}


@dataclass(frozen=True)
class SendRequest:
    """A customer's message, as validated by the schema."""

    to: str
    from_: str
    text: str
    client_reference: str | None
    status_callback: bool
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """Hash of what was asked (an idempotency key is bound to it)."""
        fields = [self.to, self.from_, self.text, self.client_reference, self.status_callback]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Forbidden(
            "identity-malformed", f"The gateway identity's {what} is not a UUID."
        ) from None


def valid_sender_id(sender_id: str) -> str:
    """An alphanumeric sender id, or 422."""
    if len(sender_id) > 11 or not SENDER_ID.fullmatch(sender_id):
        raise Unprocessable(
            "invalid-sender-id",
            "A sender id is 1 to 11 letters, digits, spaces, `.`, `&` or `-`, with at least "
            "one letter, not starting or ending with a space.",
        )
    return sender_id


def valid_test_message(to: str, sender: str) -> None:
    """An operator's test message: E.164 recipient, a number or sender id of the right
    shape (any: the operator may test any sender the provider allows); else 422."""
    if not E164.fullmatch(to):
        raise Unprocessable("invalid-phone-number", "`to` must be E.164, e.g. +14155550100.")
    if sender.startswith("+"):
        if not E164.fullmatch(sender):
            raise Unprocessable("invalid-phone-number", "`from` must be an E.164 number.")
    else:
        valid_sender_id(sender)


async def _check_sender(session: AsyncSession, org_id: uuid.UUID, sender: str) -> bool:
    """Whether `sender` is the org's: True for a number (replies can come back), False
    for an approved sender id; 422 for neither shape, 403 for another org's."""
    if sender.startswith("+"):
        if not E164.fullmatch(sender):
            raise Unprocessable("invalid-phone-number", "`from` must be an E.164 number.")
        owner = await inbound.org_of_number(session, sender)
        replies = True
    else:
        owner = await repository.org_of_sender_id(session, valid_sender_id(sender))
        replies = False
    if owner != org_id:
        raise Forbidden(
            "sender-not-owned", "`from` is not a number or sender id assigned to your org."
        )
    return replies


async def _earlier_send(
    session: AsyncSession, org_id: uuid.UUID, request: SendRequest
) -> SmsOutbound | None:
    """The org's message sent with this request's idempotency key, if any; 422 when
    that key was used for a different request. Holds the key's lock until the
    transaction ends, so concurrent retries of one key queue one message."""
    if request.idempotency_key is None:
        return None
    await repository.lock_idempotency_key(session, org_id, request.idempotency_key)
    earlier = await repository.message_by_idempotency_key(session, org_id, request.idempotency_key)
    if earlier is not None and earlier.request_hash != request.fingerprint():
        raise Unprocessable(
            "idempotency-key-reused",
            "This Idempotency-Key was used for a different message; use a new key.",
        )
    return earlier


async def accept(
    session: AsyncSession,
    caller: CallerIdentity,
    request: SendRequest,
    settings: Settings,
    now: datetime,
    balances: credit.OrgBalances,
) -> tuple[SmsOutbound, bool]:
    """Validate, price and queue one message for the caller's org; returns it and
    whether it was queued by an earlier send with the same idempotency key."""
    org_id = _uuid(caller.org_id, "org id")
    key_id = _uuid(caller.key_id, "key id")
    earlier = await _earlier_send(session, org_id, request)
    if earlier is not None:
        return earlier, True
    if not E164.fullmatch(request.to):
        raise Unprocessable("invalid-phone-number", "`to` must be E.164, e.g. +14155550100.")
    replies = await _check_sender(session, org_id, request.from_)
    shape = segment(request.text)
    if not request.text or shape.segments > settings.sms_max_segments:
        raise Unprocessable(
            "invalid-text",
            f"The text must be 1 to {settings.sms_max_segments} SMS segments long "
            f"(this one is {shape.segments}, {shape.encoding}).",
        )
    price = await repository.price_for(session, request.to)
    if price is None:
        raise Unprocessable("destination-not-priced", "Sending to this destination is not offered.")
    amount = shape.segments * price.price_per_segment
    message = SmsOutbound(
        id=uuid7(),
        org_id=org_id,
        key_id=key_id,
        from_number=request.from_,
        to_number=request.to,
        body=request.text,
        encoding=shape.encoding,
        segments=shape.segments,
        destination_prefix=price.prefix,
        price_per_segment=price.price_per_segment,
        amount=amount,
        charge_id=uuid7(),
        client_reference=request.client_reference,
        status_callback=request.status_callback,
        status=SmsStatus.QUEUED.value,
        send_state="pending",
        attempts=0,
        next_attempt_at=now,
        refunded=False,
        queued_at=now,
        updated_at=now,
        idempotency_key=request.idempotency_key,
        request_hash=request.fingerprint() if request.idempotency_key else None,
    )
    charge = SmsCharged(
        charge_id=message.charge_id,
        message_id=message.id,
        org_id=org_id,
        key_id=key_id,
        destination_prefix=price.prefix,
        segments=message.segments,
        price_per_segment=message.price_per_segment,
        amount=message.amount,
        charged_at=now,
    )
    await repository.insert_message(session, message)
    await _announce(session, [(message, SmsStatus.QUEUED)], [charge], now)
    if replies and settings.sms_conversation_hours > 0:
        await repository.open_conversation(
            session,
            org_id,
            request.to,
            request.from_,
            now,
            now + timedelta(hours=settings.sms_conversation_hours),
        )
    # Last: the credit check holds the lock on the org's charges until the commit.
    await credit.ensure_covered(session, balances, message)
    return message, False


def _status_event(message: SmsOutbound, status: SmsStatus, now: datetime) -> SmsStatusChanged:
    return SmsStatusChanged(
        message_id=message.id,
        org_id=message.org_id,
        key_id=message.key_id,
        client_reference=message.client_reference,
        from_number=message.from_number,
        to_number=message.to_number,
        segments=message.segments,
        status=status,
        provider=message.provider,
        provider_message_id=message.provider_message_id,
        error_code=message.error_code,
        error_message=message.error_message,
        changed_at=now,
    )


async def _announce(
    session: AsyncSession,
    reached: Sequence[tuple[SmsOutbound, SmsStatus]],
    ledger: Sequence[SmsCharged | SmsRefunded],
    now: datetime,
) -> None:
    """History rows, `SmsStatusChanged` (and the charges or refunds for billing) through
    the outbox in one INSERT, and status webhooks, for a batch: a few statements
    whatever its size."""
    repository.add_history(session, [(m.id, s.value, m.error_code) for m, s in reached], now)
    await session.flush()  # the messages' changes and their history, batched
    events = await emit_many(
        session,
        [(_status_event(m, s, now), str(m.id)) for m, s in reached]
        + [(e, str(e.message_id)) for e in ledger],
    )
    subscribed: dict[uuid.UUID, bool] = {}
    for (message, _), event in zip(reached, events, strict=False):
        if not message.status_callback:
            continue
        if message.org_id not in subscribed:  # most orgs have no endpoint: ask once
            subscribed[message.org_id] = bool(
                await webhook_endpoints.subscribed_endpoints(session, message.org_id, event.type)
            )
        if subscribed[message.org_id]:
            await webhooks.queue_for_event(session, event, now)


@dataclass(frozen=True)
class StatusChange:
    """A status reported for a (locked) message, with the provider's error if any."""

    message: SmsOutbound
    status: SmsStatus
    error_code: str | None = None
    error_message: str | None = None


def _move(change: StatusChange, now: datetime) -> bool:
    message, status = change.message, change.status
    if _RANK[status] <= _RANK[SmsStatus(message.status)]:
        return False
    message.status = status.value
    message.updated_at = now
    if change.error_code is not None:
        message.error_code = change.error_code[:32]
    if change.error_message is not None:
        message.error_message = change.error_message[:255]
    if status is SmsStatus.SENT:
        message.sent_at = now
    elif status is SmsStatus.DELIVERED:
        message.delivered_at = now
    else:  # failed or undelivered: when it ended
        message.failed_at = now
    if _RANK[status] == 2:
        message.send_state = "done"
        message.leased_until = None
    return True


async def advance_many(
    session: AsyncSession, changes: Sequence[StatusChange], now: datetime
) -> int:
    """Move each (locked) message to its reported status where that is forward (a
    duplicate or late report changes nothing); refunds messages that end failed.
    Returns how many moved."""
    moved = [c.message for c in changes if _move(c, now)]
    reached = [(m, SmsStatus(m.status)) for m in moved]
    refunds = []
    for message, status in reached:
        if status is SmsStatus.FAILED and not message.refunded and message.amount > 0:
            message.refunded = True
            refunds.append(
                SmsRefunded(
                    refund_id=uuid7(),
                    charge_id=message.charge_id,
                    message_id=message.id,
                    org_id=message.org_id,
                    amount=message.amount,
                    reason=message.error_code or "failed",
                    refunded_at=now,
                )
            )
    if reached:
        await _announce(session, reached, refunds, now)
    if refunds:  # last: the orgs' rows stay locked to the commit, as a send's does
        back: dict[uuid.UUID, int] = {}
        for refund in refunds:
            back[refund.org_id] = back.get(refund.org_id, 0) - refund.amount
        await repository.add_charges(session, back)
    return len(reached)


async def advance(
    session: AsyncSession,
    message: SmsOutbound,
    status: SmsStatus,
    now: datetime,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
) -> bool:
    """`advance_many` for one message; False when the status is not forward."""
    change = StatusChange(message, status, error_code, error_message)
    return await advance_many(session, [change], now) == 1


def valid_prefix(prefix: str) -> str:
    """A price-table prefix (`+`, then up to 15 digits), or 422."""
    if not PREFIX.fullmatch(prefix):
        raise Unprocessable("invalid-prefix", "A prefix is `+` followed by up to 15 digits.")
    return prefix
