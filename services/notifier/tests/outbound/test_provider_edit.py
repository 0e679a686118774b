"""Operators edit SMS settings, against the fake Twilio: a provider's name,
throughput and configuration, its credentials replaced only when sent and never shown
(not in answers, not in audit records), and the before/after that price and sender id
changes leave in their audit records."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import text

from tollgate.kit.sealing import Sealer, new_sealing_key

from ..test_audit_changes import audit_records
from .test_send import ORG_A, ORG_B, Env, environment, send


async def _test_send(env: Env, provider_id: str) -> dict[str, Any]:
    sent = await env.client.post(
        f"/v1/admin/sms/providers/{provider_id}/test-send",
        json={"to": "+41791234567", "from": "Tollgate", "text": "check"},
        headers=env.admin,
    )
    assert sent.status_code == 200, sent.text
    answer: dict[str, Any] = sent.json()
    return answer


async def test_an_operator_edits_a_provider_and_its_credentials_stay_secret(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        provider = (await env.client.get("/v1/admin/sms/providers", headers=env.admin)).json()[0]
        path = f"/v1/admin/sms/providers/{provider['id']}"
        renamed = await env.client.patch(
            path,
            json={"name": "twilio-eu", "rate_per_second": 25, "priority": 7},
            headers=env.admin,
        )
        assert renamed.status_code == 200, renamed.text
        assert {k: renamed.json()[k] for k in ("name", "rate_per_second", "priority")} == {
            "name": "twilio-eu",
            "rate_per_second": 25,
            "priority": 7,
        }
        # The credentials were not sent: the stored ones still work.
        assert (await _test_send(env, provider["id"]))["accepted"] is True

        wrong = "0" * 32
        replaced = await env.client.patch(
            path, json={"credentials": {"auth_token": wrong}}, headers=env.admin
        )
        assert replaced.status_code == 200, replaced.text
        assert wrong not in replaced.text
        assert (await _test_send(env, provider["id"]))["accepted"] is False  # now the wrong token
        restored = await env.client.patch(
            path,
            json={
                "credentials": {"auth_token": env.fake.auth_token},
                "config": {
                    "base_url": env.fake.base_url,
                    "account_sid": env.fake.account_sid,
                    "balance_alert_below": "5",
                },
            },
            headers=env.admin,
        )
        assert restored.status_code == 200, restored.text
        assert restored.json()["config"]["balance_alert_below"] == "5"
        assert (await _test_send(env, provider["id"]))["accepted"] is True

        listed = await env.client.get("/v1/admin/sms/providers", headers=env.admin)
        assert env.fake.auth_token not in listed.text
        assert wrong not in listed.text

        refusals = [
            ({"config": {"base_url": env.fake.base_url}}, 422),  # Twilio needs account_sid
            ({"credentials": {"auth_token": ""}}, 422),  # an empty token cannot work
            ({"rate_per_second": 0}, 422),
            ({"enabled": "false"}, 422),
            ({"name": None}, 422),
            ({"kind": "http"}, 422),  # a provider's kind does not change
        ]
        for body, status in refusals:
            refused = await env.client.patch(path, json=body, headers=env.admin)
            assert refused.status_code == status, (body, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
        other = await env.client.post(
            "/v1/admin/sms/providers",
            json={
                "name": "twilio-backup",
                "kind": "twilio",
                "config": {"account_sid": "AC2"},
                "credentials": {"auth_token": "x" * 32},
            },
            headers=env.admin,
        )
        assert other.status_code == 201
        taken = await env.client.patch(path, json={"name": "twilio-backup"}, headers=env.admin)
        assert taken.status_code == 409
        unknown = await env.client.patch(
            f"/v1/admin/sms/providers/{uuid.uuid4()}", json={"priority": 1}, headers=env.admin
        )
        assert unknown.status_code == 404
        owner = env.mint.headers(orgs={ORG_A: "owner"})
        assert (
            await env.client.patch(path, json={"priority": 1}, headers=owner)
        ).status_code == 403

        edits = [
            r
            for r in await audit_records(env.app.state.notifier.settings.database_url)
            if r["action"] == "notifier.update_provider"
        ]
    assert [r["target_id"] for r in edits] == [provider["id"]] * 3
    assert edits[0]["diff"]["before"] == {
        "name": "twilio-main",
        "rate_per_second": 1000,
        "priority": 100,
    }
    assert edits[0]["diff"]["after"] == {"name": "twilio-eu", "rate_per_second": 25, "priority": 7}
    # Replaced credentials show as changed, masked; their value is nowhere in a record.
    assert edits[1]["diff"]["before"] == {"credentials": "***"}
    assert edits[1]["diff"]["after"] == {"credentials": "***"}
    assert edits[2]["diff"]["after"]["config"]["balance_alert_below"] == "5"
    text = orjson.dumps(edits).decode()
    assert wrong not in text
    assert env.fake.auth_token not in text


async def test_price_and_sender_id_changes_record_what_they_were_before(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        for prefix, price in (("+41", 9), ("+33", 4)):
            response = await env.client.put(
                "/v1/admin/sms/prices",
                json={"prefix": prefix, "price_per_segment": price},
                headers=env.admin,
            )
            assert response.status_code == 200
        for org in (ORG_A, ORG_B):
            response = await env.client.put(
                "/v1/admin/sms/sender-ids",
                json={"sender_id": "ACME", "org_id": str(org)},
                headers=env.admin,
            )
            assert response.status_code == 200
        records = await audit_records(env.app.state.notifier.settings.database_url)
    prices = [r["diff"] for r in records if r["action"] == "notifier.set_price"]
    # The environment priced "+", "+41" (7) and "+4179" first.
    assert [(d["request"]["prefix"], d["before"], d["after"]) for d in prices[-2:]] == [
        ("+41", {"price_per_segment": 7}, {"price_per_segment": 9}),
        ("+33", {"price_per_segment": None}, {"price_per_segment": 4}),
    ]
    senders = [r["diff"] for r in records if r["action"] == "notifier.approve_sender_id"]
    assert [(d["before"], d["after"]) for d in senders] == [
        ({"org_id": None}, {"org_id": str(ORG_A)}),
        ({"org_id": str(ORG_A)}, {"org_id": str(ORG_B)}),
    ]


async def seal_with_a_lost_key(env: Env, provider_id: str) -> None:
    """Store the provider's credentials sealed with a key the notifier does not have (a
    new `.devstack/`, a rotation that dropped the old key)."""
    lost = Sealer(new_sealing_key()).seal(orjson.dumps({"auth_token": "x" * 32}))
    async with env.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE sms_providers SET credentials_sealed = :s WHERE id = :i"),
            {"s": lost, "i": uuid.UUID(provider_id)},
        )


async def test_credentials_sealed_with_a_lost_key_can_be_replaced(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the stored credentials were unsealed first, and a key no longer configured
    # (a new `.devstack/`, a rotation that dropped the old key) made the edit a 500: the
    # operator could only delete the provider.
    async with environment(database_factory) as env:
        provider = (await env.client.get("/v1/admin/sms/providers", headers=env.admin)).json()[0]
        await seal_with_a_lost_key(env, provider["id"])
        path = f"/v1/admin/sms/providers/{provider['id']}"
        renamed = await env.client.patch(path, json={"priority": 3}, headers=env.admin)
        assert renamed.status_code == 422  # the lost secrets are not there to keep
        replaced = await env.client.patch(
            path, json={"credentials": {"auth_token": env.fake.auth_token}}, headers=env.admin
        )
        assert replaced.status_code == 200, replaced.text
        assert (await _test_send(env, provider["id"]))["accepted"] is True


async def test_a_provider_whose_credentials_cannot_be_read_sits_out_and_the_rest_send(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the send worker unsealed every provider's credentials each round, so one
    # provider sealed with a key no longer configured stopped every SMS of every org
    # (the round raised), and its test-send and balance answered 500.
    async with environment(database_factory) as env:
        added = await env.client.post(
            "/v1/admin/sms/providers",
            json={
                "name": "twilio-first",
                "kind": "twilio",
                "config": {"base_url": env.fake.base_url, "account_sid": env.fake.account_sid},
                "credentials": {"auth_token": env.fake.auth_token},
                "rate_per_second": 1000,
                "priority": 0,
            },
            headers=env.admin,
        )
        assert added.status_code == 201, added.text
        broken = added.json()["id"]
        await seal_with_a_lost_key(env, broken)
        sent = await send(env, ORG_A, text="still delivered")
        assert sent.status_code == 202, sent.text
        assert await env.worker.run_once() == 1
        assert [m.body for m in env.fake.messages.values()] == ["still delivered"]
        check = await env.client.post(
            f"/v1/admin/sms/providers/{broken}/test-send",
            json={"to": "+41791234567", "from": "Tollgate", "text": "check"},
            headers=env.admin,
        )
        assert check.status_code == 503
        assert check.json()["type"].endswith("/provider-credentials-unreadable")
