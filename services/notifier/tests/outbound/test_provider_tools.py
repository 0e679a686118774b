"""Operator tools for SMS providers, against the fake Twilio: the balance watch (an
operator hears once when the balance falls below the provider's alert level, again
only after it recovered and fell again) and the test-send (straight through the
provider, not billed, not logged)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from tollgate.kit.sealing import Sealer
from tollgate.notifier.models import SmsOutbound
from tollgate.notifier.outbound.balance_watch import BalanceWatch

from ..factories import SEALING_KEY
from .test_send import environment, outbox_types


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


async def test_an_operator_test_send_goes_straight_through_the_provider(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        provider = (await env.client.get("/v1/admin/sms/providers", headers=env.admin)).json()[0]
        path = f"/v1/admin/sms/providers/{provider['id']}/test-send"
        body = {"to": "+41791234567", "from": "Tollgate", "text": "Test from the console"}
        sent = await env.client.post(path, json=body, headers=env.admin)
        assert sent.status_code == 200, sent.text
        assert sent.json()["accepted"] is True
        assert sent.json()["provider_message_id"] in env.fake.messages
        env.fake.refused.add("+41790000000")
        refused = await env.client.post(
            path, json={**body, "to": "+41790000000"}, headers=env.admin
        )
        assert refused.json()["accepted"] is False
        assert refused.json()["error_code"] == "21211"

        owner = env.mint.headers(orgs={uuid.uuid4(): "owner"})
        assert (await env.client.post(path, json=body, headers=owner)).status_code == 403
        unknown = f"/v1/admin/sms/providers/{uuid.uuid4()}/test-send"
        assert (await env.client.post(unknown, json=body, headers=env.admin)).status_code == 404
        bad = await env.client.post(path, json={**body, "to": "0791234567"}, headers=env.admin)
        assert bad.status_code == 422
        # Not billed, not in any org's log.
        async with env.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(SmsOutbound)) == 0
        assert await outbox_types(env.sessions) == []
