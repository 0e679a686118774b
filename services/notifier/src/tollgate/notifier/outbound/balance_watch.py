"""The provider balance watch: operators hear once when a provider's prepaid balance
falls below its alert level, before sends start failing for want of it.

Every `sms_provider_balance_poll_seconds` each enabled provider with a
`config.balance_alert_below` is asked for its balance (where its API offers one). A
crossing below the level, and the recovery above it, is recorded on the provider
(`balance_low`, shown to admins) by a conditional UPDATE, so only one replica reports
it: a WARNING log line `sms provider balance low` and the counter
`tollgate_notifier_sms_provider_balance_low_total{provider}` (alert on its increase);
the gauge `tollgate_notifier_sms_provider_balance_below_alert{provider}` says where
each provider stands now. A provider that cannot be asked is skipped until the next
round (logged); nothing is alerted on an unknown balance.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from prometheus_client import Counter, Gauge

from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every
from tollgate.kit.sealing import Sealer
from tollgate.notifier.models import SmsProvider
from tollgate.notifier.outbound import repository
from tollgate.notifier.outbound.providers import ProviderError, client_for, stored_credentials

log = logging.getLogger(__name__)

BALANCE_LOW = Counter(
    "tollgate_notifier_sms_provider_balance_low_total",
    "SMS provider balances that fell below their alert level (once per crossing)",
    ["provider"],
)
BELOW_ALERT = Gauge(
    "tollgate_notifier_sms_provider_balance_below_alert",
    "1 while the provider's balance is below its alert level",
    ["provider"],
)


def below_alert(balance: str, row: SmsProvider) -> bool | None:
    """Whether `balance` is below the provider's alert level; None without a level or
    for a balance that is not a number."""
    threshold = row.config.get("balance_alert_below")
    if threshold is None:
        return None
    try:
        return Decimal(balance) < Decimal(str(threshold))
    except InvalidOperation:
        return None


class BalanceWatch:
    """Polls provider balances until cancelled."""

    def __init__(self, *, sessions: SessionMaker, sealer: Sealer, interval: float) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._interval = interval

    async def check_once(self) -> int:
        """One round over the providers; returns how many crossings it reported."""
        async with self._sessions() as session:
            rows = [
                p
                for p in await repository.providers(session)
                if p.enabled and p.config.get("balance_alert_below") is not None
            ]
        crossings = 0
        for row in rows:
            credentials = stored_credentials(self._sealer, row.credentials_sealed)
            if credentials is None:  # the send worker logs it; the others are watched
                continue
            client = client_for(row.kind, row.config, credentials)
            try:
                balance = await client.balance()
            except ProviderError as exc:
                log.warning(
                    "sms provider balance unavailable",
                    extra={"provider": row.name, "code": exc.code},
                )
                continue
            finally:
                await client.close()
            low = below_alert(balance.balance, row) if balance is not None else None
            if low is None:
                continue
            BELOW_ALERT.labels(row.name).set(int(low))
            async with self._sessions() as session, session.begin():
                changed = await repository.mark_balance_low(session, row.id, low)
            if not changed:
                continue
            extra = {
                "provider": row.name,
                "balance": balance.balance if balance else None,
                "currency": balance.currency if balance else None,
                "alert_below": row.config["balance_alert_below"],
            }
            if low:
                crossings += 1
                BALANCE_LOW.labels(row.name).inc()
                log.warning("sms provider balance low", extra=extra)
            else:
                log.info("sms provider balance recovered", extra=extra)
        return crossings

    async def run(self) -> None:
        async def step() -> bool:
            await self.check_once()
            return False

        await every(self._interval, step, name="sms provider balance watch")
