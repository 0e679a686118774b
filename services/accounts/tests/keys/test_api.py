"""API keys: issued once, listed without secrets, patched strictly, rotated with a
grace period, revoked, deleted; every change is the key's full state on the keys
topic with a growing version, hash only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tollgate.contracts import topics
from tollgate.contracts.events.accounts import (
    KeyCreated,
    KeyRevoked,
    KeyRotated,
    KeyUpserted,
)
from tollgate.kit import apikeys

from ..factories import (
    PEPPER,
    add_member,
    events,
    make_admin,
    make_api,
    make_key,
    make_org,
    outbox_records,
    remember,
    running,
    settings_for,
    signup,
)


def upserts(evts: list) -> list[KeyUpserted]:  # type: ignore[type-arg]
    return [e.data for e in evts if isinstance(e.data, KeyUpserted)]


async def test_create_list_get_patch_and_events(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        admin = await make_admin(svc)
        api = await make_api(svc, admin)
        org_id = await make_org(svc, owner)
        created = await make_key(
            svc,
            owner,
            org_id,
            name="backend",
            environment="test",
            scopes=["read:pets"],
            allowed_api_ids=[api["id"]],
            limits={"per_second": 5, "per_day": 10_000, "per_month": 200_000},
            ip_allowlist=["10.0.0.0/8", "2001:db8::1"],
            metadata={"team": "payments"},
            expires_at=(datetime.now(UTC) + timedelta(days=30)).isoformat(),
        )
        raw = created["key"]
        assert raw.startswith("tg_test_")
        assert apikeys.well_formed(raw)
        assert created["prefix"] == apikeys.display_prefix(raw)
        assert created["last4"] == raw[-4:]
        assert created["ip_allowlist"] == ["10.0.0.0/8", "2001:db8::1/128"]
        assert created["version"] == 1

        listed = await svc.http.get(f"/v1/orgs/{org_id}/keys", headers=owner.headers)
        assert listed.status_code == 200
        assert [k["id"] for k in listed.json()["items"]] == [created["id"]]
        got = await svc.http.get(f"/v1/keys/{created['id']}", headers=owner.headers)
        for response in (listed, got):
            assert raw not in response.text
            assert apikeys.hash_key(raw, PEPPER) not in response.text
            assert "key_hash" not in response.text

        state = upserts(await events(svc, created["id"]))
        assert len(state) == 1
        assert state[0].key_hash == apikeys.hash_key(raw, PEPPER)
        assert state[0].scopes == ["read:pets"]
        assert state[0].limits.per_second == 5
        assert state[0].limits.per_month == 200_000
        assert state[0].environment == "test"
        lifecycle = [e for e in await events(svc, org_id) if e.type == KeyCreated.event_type]
        assert len(lifecycle) == 1
        for _, value in await outbox_records(svc, created["id"]):
            assert value is not None
            assert raw.encode() not in value

        disabled = await svc.http.patch(
            f"/v1/keys/{created['id']}",
            json={"enabled": False, "limits": {"per_minute": 60}, "expires_at": None},
            headers=owner.headers,
        )
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["enabled"] is False
        assert disabled.json()["limits"] == {"per_minute": 60}
        assert disabled.json()["expires_at"] is None
        assert disabled.json()["version"] == 2
        enabled = await svc.http.patch(
            f"/v1/keys/{created['id']}", json={"enabled": True}, headers=owner.headers
        )
        assert enabled.json()["version"] == 3
        versions = [u.version for u in upserts(await events(svc, created["id"]))]
        assert versions == [1, 2, 3]
        assert upserts(await events(svc, created["id"]))[1].enabled is False


async def test_patch_refuses_unknown_read_only_and_invalid_fields(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        org_id = await make_org(svc, owner)
        key = await make_key(svc, owner, org_id)
        url = f"/v1/keys/{key['id']}"
        for body in (
            {"colour": "blue"},
            {"prefix": "tg_live_XXXX"},
            {"environment": "test"},
            {"org_id": str(uuid.uuid4())},
            {"key_hash": "0" * 64},
            {"ip_allowlist": ["not-a-network"]},
            {"limits": {"per_second": 0}},
            {"limits": {"per_week": 5}},
            {"scopes": ["has space"]},
            {"metadata": {"blob": "x" * 5000}},
            {"name": None},
            {"expires_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
            {"allowed_api_ids": [str(uuid.uuid4())]},
        ):
            response = await svc.http.patch(url, json=body, headers=owner.headers)
            assert response.status_code == 422, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        unchanged = await svc.http.get(url, headers=owner.headers)
        assert unchanged.json()["version"] == 1
        create_bad = await svc.http.post(
            f"/v1/orgs/{org_id}/keys",
            json={"name": "x", "environment": "prod"},
            headers=owner.headers,
        )
        assert create_bad.status_code == 422
        missing = await svc.http.get(f"/v1/keys/{uuid.uuid4()}", headers=owner.headers)
        assert missing.status_code == 404


async def test_rotate_keeps_the_old_secret_for_the_grace_period(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        org_id = await make_org(svc, owner)
        key = await make_key(svc, owner, org_id)
        old_raw = key["key"]
        rotated = await svc.http.post(
            f"/v1/keys/{key['id']}/rotate", json={"grace_seconds": 3600}, headers=owner.headers
        )
        assert rotated.status_code == 200
        new_raw = rotated.json()["key"]
        remember(new_raw)
        assert new_raw != old_raw
        assert apikeys.well_formed(new_raw)
        assert len(rotated.json()["retired_secrets"]) == 1

        state = upserts(await events(svc, key["id"]))[-1]
        assert state.key_hash == apikeys.hash_key(new_raw, PEPPER)
        assert [s.key_hash for s in state.retired_secrets] == [apikeys.hash_key(old_raw, PEPPER)]
        grace = state.retired_secrets[0].expires_at - datetime.now(UTC)
        assert timedelta(minutes=59) < grace <= timedelta(hours=1)
        assert [e.type for e in await events(svc, org_id)].count(KeyRotated.event_type) == 1

        immediate = await svc.http.post(
            f"/v1/keys/{key['id']}/rotate", json={"grace_seconds": 0}, headers=owner.headers
        )
        remember(immediate.json()["key"])
        # The first retired secret still has its own grace; no new one for grace 0.
        assert len(upserts(await events(svc, key["id"]))[-1].retired_secrets) == 1
        too_long = await svc.http.post(
            f"/v1/keys/{key['id']}/rotate", json={"grace_seconds": 10**9}, headers=owner.headers
        )
        assert too_long.status_code == 422


async def test_revoke_and_delete(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        developer = await signup(svc)
        viewer = await signup(svc)
        org_id = await make_org(svc, owner)
        await add_member(svc, org_id, developer, "developer")
        await add_member(svc, org_id, viewer, "viewer")
        assert (
            await svc.http.post(
                f"/v1/orgs/{org_id}/keys", json={"name": "v"}, headers=viewer.headers
            )
        ).status_code == 403
        key = await make_key(svc, developer, org_id)
        assert (
            await svc.http.post(f"/v1/keys/{key['id']}/revoke", headers=viewer.headers)
        ).status_code == 403
        revoked = await svc.http.post(f"/v1/keys/{key['id']}/revoke", headers=developer.headers)
        assert revoked.status_code == 200
        assert revoked.json()["revoked"] is True
        assert revoked.json()["enabled"] is False
        state = upserts(await events(svc, key["id"]))[-1]
        assert state.revoked is True
        assert state.enabled is False
        assert [e.type for e in await events(svc, org_id)].count(KeyRevoked.event_type) == 1
        # A retried revoke answers the same state and publishes nothing new.
        again = await svc.http.post(f"/v1/keys/{key['id']}/revoke", headers=developer.headers)
        assert again.status_code == 200
        assert (again.json()["revoked"], again.json()["enabled"]) == (True, False)
        assert [e.type for e in await events(svc, org_id)].count(KeyRevoked.event_type) == 1
        rotated = await svc.http.post(f"/v1/keys/{key['id']}/rotate", headers=developer.headers)
        assert rotated.status_code == 409
        patched = await svc.http.patch(
            f"/v1/keys/{key['id']}", json={"enabled": True}, headers=developer.headers
        )
        assert patched.status_code == 409

        assert (
            await svc.http.delete(f"/v1/keys/{key['id']}", headers=developer.headers)
        ).status_code == 403
        deleted = await svc.http.delete(f"/v1/keys/{key['id']}", headers=owner.headers)
        assert deleted.status_code == 204
        records = await outbox_records(svc, key["id"])
        assert records[-1] == (topics.ACCOUNTS_KEYS.name, None)
        assert (
            await svc.http.get(f"/v1/keys/{key['id']}", headers=owner.headers)
        ).status_code == 404
        # A retried delete: same state, 204, no second tombstone; still owners only.
        again = await svc.http.delete(f"/v1/keys/{key['id']}", headers=owner.headers)
        assert again.status_code == 204
        assert await outbox_records(svc, key["id"]) == records
        assert (
            await svc.http.delete(f"/v1/keys/{key['id']}", headers=developer.headers)
        ).status_code == 403
