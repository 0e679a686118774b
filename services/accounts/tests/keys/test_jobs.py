"""The keys' background job: one `KeyExpiring` per expiry, and keys republished
without the old secret once a rotation grace has ended."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tollgate.accounts.keys import jobs
from tollgate.contracts.events.accounts import KeyExpiring, KeyUpserted

from ..factories import events, make_key, make_org, remember, running, settings_for, signup


async def test_expiring_keys_are_warned_once_and_again_after_a_new_expiry(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        key_expiry_warning_seconds=86_400,
        key_job_interval_seconds=3600,
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        org_id = await make_org(svc, owner)
        soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        expiring = await make_key(svc, owner, org_id, name="soon", expires_at=soon)
        await make_key(svc, owner, org_id, name="later", expires_at=later)
        await make_key(svc, owner, org_id, name="never")

        def warnings(evts: list) -> list[KeyExpiring]:  # type: ignore[type-arg]
            return [e.data for e in evts if isinstance(e.data, KeyExpiring)]

        await jobs.run_once(svc.sessions, settings)
        await jobs.run_once(svc.sessions, settings)
        sent = warnings(await events(svc, org_id))
        assert [(w.name, str(w.key_id)) for w in sent] == [("soon", expiring["id"])]

        moved = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
        await svc.http.patch(
            f"/v1/keys/{expiring['id']}", json={"expires_at": moved}, headers=owner.headers
        )
        await jobs.run_once(svc.sessions, settings)
        assert len(warnings(await events(svc, org_id))) == 2


async def test_lapsed_rotation_secret_is_dropped_from_the_published_state(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        key_job_interval_seconds=3600,
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        org_id = await make_org(svc, owner)
        key = await make_key(svc, owner, org_id)
        rotated = await svc.http.post(
            f"/v1/keys/{key['id']}/rotate", json={"grace_seconds": 1}, headers=owner.headers
        )
        remember(rotated.json()["key"])
        states = [e.data for e in await events(svc, key["id"]) if isinstance(e.data, KeyUpserted)]
        assert len(states[-1].retired_secrets) == 1
        await asyncio.sleep(1.1)
        await jobs.run_once(svc.sessions, settings)
        states = [e.data for e in await events(svc, key["id"]) if isinstance(e.data, KeyUpserted)]
        assert states[-1].retired_secrets == []
        assert states[-1].version == states[-2].version + 1
        assert states[-1].key_hash == states[-2].key_hash
