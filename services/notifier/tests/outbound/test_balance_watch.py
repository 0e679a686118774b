"""The provider balance watch against the fake Twilio's balance: an operator hears
once when it falls below the provider's alert level, again only after it recovered
and fell again, and admins see where it stands."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from tollgate.kit.sealing import Sealer
from tollgate.notifier.outbound.balance_watch import BalanceWatch

from ..factories import SEALING_KEY
from .test_send import environment


async def test_a_low_provider_balance_is_alerted_once_per_crossing(
    database_factory: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    async with environment(database_factory) as env:
        listed = await env.client.get("/v1/admin/sms/providers", headers=env.admin)
        provider = listed.json()[0]
        assert provider["balance_low"] is False
        added = await env.client.post(
            "/v1/admin/sms/providers",
            json={
                "name": "twilio-watched",
                "kind": "twilio",
                "config": {
                    "base_url": env.fake.base_url,
                    "account_sid": env.fake.account_sid,
                    "balance_alert_below": "20",
                },
                "credentials": {"auth_token": env.fake.auth_token},
            },
            headers=env.admin,
        )
        assert added.status_code == 201, added.text
        watch = BalanceWatch(sessions=env.sessions, sealer=Sealer(SEALING_KEY), interval=60)

        def alerts() -> float:
            sample = REGISTRY.get_sample_value(
                "tollgate_notifier_sms_provider_balance_low_total", {"provider": "twilio-watched"}
            )
            return sample or 0.0

        before = alerts()

        caplog.set_level(logging.INFO, "tollgate.notifier.outbound.balance_watch")
        env.fake.balance = "12.50"
        assert await watch.check_once() == 1
        assert await watch.check_once() == 0  # still low: no second alert
        env.fake.balance = "35.00"
        assert await watch.check_once() == 0  # recovered
        env.fake.balance = "3.10"
        assert await watch.check_once() == 1  # a new crossing
        assert alerts() - before == 2
        messages = [r.getMessage() for r in caplog.records]
        assert messages.count("sms provider balance low") == 2
        assert messages.count("sms provider balance recovered") == 1

        shown = await env.client.get("/v1/admin/sms/providers", headers=env.admin)
        by_name = {p["name"]: p for p in shown.json()}
        assert by_name["twilio-watched"]["balance_low"] is True
        assert by_name["twilio-main"]["balance_low"] is False  # no alert level: not watched
        assert env.fake.auth_token not in shown.text
