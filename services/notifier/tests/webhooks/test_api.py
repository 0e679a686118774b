"""The webhook API: secrets shown once, rotation, test sends, the delivery log,
retry and recover, role checks, and tenant isolation on every id route."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from aiohttp import web

from tollgate.kit.sealing import Sealer
from tollgate.kit.testing.pages import check_list_contract
from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.intake.service import queue_notifications
from tollgate.notifier.models import WebhookEndpoint
from tollgate.notifier.retention.jobs import RetentionJob
from tollgate.notifier.retention.service import RetentionPolicy
from tollgate.notifier.webhooks.catalog import EVENT_TYPES

from ..events import topped_up
from ..factories import (
    SEALING_KEY,
    FakeClock,
    api_client,
    database,
    delivery_worker,
    migrated,
    receiver,
    settings_for,
)


async def test_endpoint_lifecycle_and_delivery_log(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    org, other = uuid.uuid4(), uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    viewer = mint.headers(orgs={org: "viewer"})
    stranger = mint.headers(orgs={other: "owner"})
    async with (
        api_client(settings_for(url), mint, clock) as (client, _),
        database(url) as sessions,
        receiver() as rec,
    ):
        types = await check_list_contract(
            client,
            "/v1/webhooks/event-types",
            headers=viewer,
            expected={i.type for i in EVENT_TYPES},
            key=lambda t: t["type"],
            page_size=10,
        )
        assert {t["type"] for t in types} >= {
            "tollgate.billing.credits.low.v1",
            "tollgate.accounts.key.revoked.v1",
            "tollgate.notifier.sms.received.v1",
        }
        assert all(t["example"]["data"] for t in types)
        # Every description in both languages of the console (a Chinese one is no copy).
        for t in types:
            assert t["descriptions"]["en"] == t["description"]
            assert any("\u4e00" <= c <= "\u9fff" for c in t["descriptions"]["zh-Hans"]), t

        body = {"url": rec.url, "event_types": ["tollgate.billing.credits.topped_up.v1"]}
        assert (
            await client.post(f"/v1/orgs/{org}/webhooks/endpoints", json=body, headers=viewer)
        ).status_code == 403
        bad = await client.post(
            f"/v1/orgs/{org}/webhooks/endpoints",
            json={**body, "event_types": ["nope"]},
            headers=owner,
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        created = await client.post(f"/v1/orgs/{org}/webhooks/endpoints", json=body, headers=owner)
        assert created.status_code == 201
        endpoint = created.json()
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        assert len(Sealer(SEALING_KEY).unseal(await _sealed(sessions, endpoint["id"]))) > 24
        base = f"/v1/orgs/{org}/webhooks/endpoints/{endpoint['id']}"

        listed = (await client.get(f"/v1/orgs/{org}/webhooks/endpoints", headers=viewer)).text
        fetched = (await client.get(base, headers=viewer)).text
        assert secret not in listed
        assert secret not in fetched
        assert "secret" not in (await client.get(base, headers=viewer)).json()

        rotated = (await client.post(base + "/rotate-secret", headers=owner)).json()
        assert rotated["secret"] != secret
        assert rotated["secret"].startswith("whsec_")

        test = await client.post(base + "/test", headers=owner)
        assert test.status_code == 202
        async with sessions() as session, session.begin():
            await queue_notifications(session, [topped_up(org)], clock.now())
        worker, sender = delivery_worker(sessions, clock)
        rec.respond = _error
        try:
            assert await worker.run_once() == 2
        finally:
            await sender.close()
        assert test.json()["message_id"] in rec.ids()

        log = (await client.get(base + "/deliveries", headers=viewer)).json()["items"]
        assert len(log) == 2
        assert {d["event_type"] for d in log} == {
            "tollgate.webhook.test",
            "tollgate.billing.credits.topped_up.v1",
        }
        await check_list_contract(
            client,
            base + "/deliveries",
            headers=viewer,
            expected={d["id"] for d in log},
            page_size=1,
        )
        delivery_id = log[0]["id"]
        detail = (
            await client.get(f"/v1/orgs/{org}/webhooks/deliveries/{delivery_id}", headers=viewer)
        ).json()
        (attempt,) = detail["attempt_log"]
        assert attempt["response_status"] == 500
        assert attempt["response_body"] == "x" * 2048  # truncated
        assert attempt["duration_ms"] >= 0

        # Manual retry of a queued delivery is refused; of a finished one, accepted.
        assert (
            await client.post(
                f"/v1/orgs/{org}/webhooks/deliveries/{delivery_id}/retry", headers=owner
            )
        ).status_code == 409

        # A field sent as null (not offered by the document) is a 422 naming it, never a
        # 500: a bound on the field's union was once applied to the null itself.
        for field in ("url", "description", "event_types", "enabled"):
            refused = await client.patch(base, json={field: None}, headers=owner)
            assert refused.status_code == 422, (field, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")

        # Disable: pending deliveries fail; re-enable and recover re-queues them.
        assert (await client.patch(base, json={"enabled": False}, headers=owner)).json()[
            "enabled"
        ] is False
        failed = (await client.get(base + "/deliveries?state=failed", headers=viewer)).json()
        assert len(failed["items"]) == 2
        await client.patch(base, json={"enabled": True}, headers=owner)
        since = (clock.now() - timedelta(minutes=1)).isoformat()
        recovered = await client.post(base + "/recover", json={"since": since}, headers=owner)
        assert recovered.json() == {"requeued": 2}
        rec.respond = _ok
        worker, sender = delivery_worker(sessions, clock)
        try:
            assert await worker.run_once() == 2
        finally:
            await sender.close()
        done = (await client.get(base + "/deliveries?state=succeeded", headers=viewer)).json()
        assert len(done["items"]) == 2
        retried = await client.post(
            f"/v1/orgs/{org}/webhooks/deliveries/{delivery_id}/retry", headers=owner
        )
        assert retried.status_code == 202
        assert retried.json()["state"] == "pending"

        # Tenant isolation: another org's member sees 404 on every id route.
        other_base = f"/v1/orgs/{other}/webhooks/endpoints/{endpoint['id']}"
        for method, path, json in [
            ("GET", other_base, None),
            ("PATCH", other_base, {"description": "x"}),
            ("DELETE", other_base, None),
            ("POST", other_base + "/rotate-secret", None),
            ("POST", other_base + "/test", None),
            ("GET", other_base + "/deliveries", None),
            ("POST", other_base + "/recover", {"since": since}),
            ("GET", f"/v1/orgs/{other}/webhooks/deliveries/{delivery_id}", None),
            ("POST", f"/v1/orgs/{other}/webhooks/deliveries/{delivery_id}/retry", None),
        ]:
            response = await client.request(method, path, json=json, headers=stranger)
            assert response.status_code == 404, (method, path)
            # and the same routes under the right org without membership
            wrong = path.replace(str(other), str(org))
            response = await client.request(method, wrong, json=json, headers=stranger)
            assert response.status_code == 404, (method, wrong)
        assert (await client.get(base, headers=owner)).status_code == 200

        assert (await client.delete(base, headers=owner)).status_code == 204
        assert (await client.get(base, headers=owner)).status_code == 404


async def _sealed(sessions: object, endpoint_id: str) -> str:
    async with sessions() as session:  # type: ignore[operator]
        row = await session.get(WebhookEndpoint, uuid.UUID(endpoint_id))
        return str(row.secret_sealed)


async def _error(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500, text="x" * 10_000)


async def _ok(request: web.Request) -> web.StreamResponse:
    return web.Response(status=200)


async def test_endpoint_list_pages_with_the_shared_cursor(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    org = uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    async with api_client(settings_for(url), mint, clock) as (client, _), receiver() as rec:
        created = [
            (
                await client.post(
                    f"/v1/orgs/{org}/webhooks/endpoints", json={"url": rec.url}, headers=owner
                )
            ).json()["id"]
            for _ in range(5)
        ]
        items = await check_list_contract(
            client, f"/v1/orgs/{org}/webhooks/endpoints", headers=owner, expected=set(created)
        )
    assert [item["id"] for item in items] == created  # oldest first


async def test_a_deleted_endpoint_is_gone_and_receives_nothing(
    database_factory: Callable[[str], str],
) -> None:
    """Deleting gives up the endpoint's queued deliveries and it gets no new ones; it is
    gone from reads and lists, deleting it again is a 204 (another org's a 404), and
    retention removes the row once it is older than the webhook retention."""
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    org, other = uuid.uuid4(), uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    stranger = mint.headers(orgs={other: "owner"})
    async with (
        api_client(settings_for(url), mint, clock) as (client, _),
        database(url) as sessions,
        receiver() as rec,
    ):
        body = {"url": rec.url, "event_types": ["tollgate.billing.credits.topped_up.v1"]}
        endpoints = f"/v1/orgs/{org}/webhooks/endpoints"
        kept = (await client.post(endpoints, json=body, headers=owner)).json()
        gone = (await client.post(endpoints, json=body, headers=owner)).json()
        async with sessions() as session, session.begin():
            await queue_notifications(session, [topped_up(org)], clock.now())
        path = f"{endpoints}/{gone['id']}"
        foreign = f"/v1/orgs/{other}/webhooks/endpoints/{gone['id']}"
        assert (await client.delete(foreign, headers=stranger)).status_code == 404
        assert (await client.delete(path, headers=owner)).status_code == 204
        # Deleting again is idempotent (the issue: same final state, 204, not an error).
        assert (await client.delete(path, headers=owner)).status_code == 204
        assert (await client.delete(foreign, headers=stranger)).status_code == 404
        assert (await client.get(path, headers=owner)).status_code == 404
        assert (await client.get(path + "/deliveries", headers=owner)).status_code == 404
        listed = (await client.get(endpoints, headers=owner)).json()["items"]
        assert [e["id"] for e in listed] == [kept["id"]]

        async with sessions() as session, session.begin():
            await queue_notifications(session, [topped_up(org)], clock.now())
        worker, sender = delivery_worker(sessions, clock)
        try:
            await worker.run_once()
        finally:
            await sender.close()
        assert len(rec.captured) == 2  # both events, to the endpoint that is left
        kept_log = (await client.get(f"{endpoints}/{kept['id']}/deliveries", headers=owner)).json()
        assert [d["state"] for d in kept_log["items"]] == ["succeeded", "succeeded"]

        clock.advance(days=31)
        job = RetentionJob(
            sessions=sessions,
            clock=clock,
            policy=RetentionPolicy(webhook_days=30, email_days=0, sms_days=0),
        )
        assert (await job.run_once())["webhook_endpoints"] == 1
        async with sessions() as session:
            assert await session.get(WebhookEndpoint, uuid.UUID(gone["id"])) is None
            assert await session.get(WebhookEndpoint, uuid.UUID(kept["id"])) is not None
