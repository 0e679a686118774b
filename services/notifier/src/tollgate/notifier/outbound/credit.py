"""Whether an org's credits cover one more SMS, judged from billing's balance state.

Billing publishes each org's balance on the compacted `tollgate.billing.balances.v1`
(`BalanceState`, highest `version` wins); the notifier replays and follows it into
memory (`OrgBalances`, fed by the kit's `StateFollower`, no consumer group), as the
gateway does. That balance lags the notifier's own charges by the outbox relay and
billing's consumer. Both sides keep a running total of the org's SMS charges less its
refunds: the notifier's (`sms_org_charges`) moves with every charge and refund it
issues, billing's (`BalanceState.sms_charged`) with every one it applies, in the same
transaction as the balance. Their difference is exactly the charges that balance does
not include yet (less the refunds it does not include yet), so a send is let through
when `balance - difference` covers it: never unpaid, however far billing lags, and
refused only when the credits left after the charges on their way do not cover it. A
difference below zero (refunds on their way) counts as zero: those credits come back
once billing applies them.

A balance state from a billing version that did not count `sms_charged` yet (it stays
on the compacted topic until billing publishes the org again, or `python -m
tollgate.billing republish` does) is judged by the rule before it: every charge queued
since `LEGACY_SETTLE` before the balance, and not refunded, counts as not applied yet.
Conservative while billing lags less than that; it can refuse a message that fits.

Sends of one org are serialised for the check by the lock on its `sms_org_charges`
row, so across replicas too: two concurrent sends cannot both spend the last credits.
The lock is held until the commit, so it is taken last: a send writes its message,
events and conversation first, then adds its charge to the total (taking the lock)
and commits or raises 402 (rolling everything back). One org's sends then wait on
each other for one statement and a commit, not for the whole request. Postpaid orgs,
and orgs billing has published no state for yet, are not checked here (the gateway's
prepaid check decides for those); their charges are counted all the same. Never
commits.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts import topics
from tollgate.contracts.decoding import decode_as
from tollgate.contracts.events.billing import BalanceMode, BalanceState
from tollgate.kit.problems import PaymentRequired
from tollgate.kit.replay import StateFollower, record_key
from tollgate.kit.settings import ServiceSettings
from tollgate.notifier.models import SmsOutbound
from tollgate.notifier.outbound import repository

log = logging.getLogger(__name__)

LEGACY_SETTLE = timedelta(seconds=10)
"""How long before a balance without `sms_charged` charges count as not applied yet."""


class OrgBalances:
    """The latest `BalanceState` of every org, by org id."""

    def __init__(self) -> None:
        self._states: dict[uuid.UUID, BalanceState] = {}

    def apply(self, state: BalanceState) -> None:
        """Keep `state` unless a newer version is held."""
        held = self._states.get(state.org_id)
        if held is None or state.version > held.version:
            self._states[state.org_id] = state

    def forget(self, org_id: uuid.UUID) -> None:
        self._states.pop(org_id, None)

    def of(self, org_id: uuid.UUID) -> BalanceState | None:
        return self._states.get(org_id)

    def apply_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """One record of the balances topic (a tombstone forgets the org); an unkeyed
        or undecodable record is logged and skipped."""
        key = record_key(record)
        try:
            if record.value is None:
                if key is not None:
                    self.forget(uuid.UUID(key))
                return
            self.apply(decode_as(record.value, BalanceState).data)
        except (ValidationError, ValueError):
            log.warning("skipped a balance record", extra={"offset": record.offset})


def balance_follower(settings: ServiceSettings, balances: OrgBalances) -> StateFollower:
    """The follower that keeps `balances` current."""
    return StateFollower(
        settings,
        client="notifier-balances",
        appliers={topics.BILLING_BALANCES: balances.apply_record},
    )


async def ensure_covered(
    session: AsyncSession, balances: OrgBalances, message: SmsOutbound
) -> None:
    """Count `message`'s charge in its org's total and raise 402 `insufficient-credits`
    when a prepaid org's balance, less its charges billing has not applied yet, is
    below it. This transaction has already written the message with everything that
    goes with it (a 402 rolls it all back).

    Takes the lock on the org's total, held until the transaction ends: call it as the
    last statement before the commit, so the org's sends are serialised only for that
    statement and the commit, not for the whole request."""
    if message.amount <= 0:
        return  # a free message is no charge for billing either
    charged = (await repository.add_charges(session, {message.org_id: message.amount}))[
        message.org_id
    ]
    state = balances.of(message.org_id)
    if state is None or state.mode is not BalanceMode.PREPAID:
        return
    if state.sms_charged is None:
        since = state.as_of - LEGACY_SETTLE
        unapplied = await repository.charged_since(
            session, message.org_id, since, excluding=message.id
        )
    else:
        unapplied = max(charged - message.amount - state.sms_charged, 0)
    available = state.balance - unapplied
    if available < message.amount:
        raise PaymentRequired(
            "insufficient-credits",
            f"This message costs {message.amount} credits; "
            f"your org has {max(available, 0)} available.",
        )
