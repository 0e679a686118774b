"""`GET /v1/orgs/{id}/keys` filters: by status (active, disabled, expired, revoked), by
an API the key may call, by a name search; every filter stays inside the caller's org,
and another tenant's org or API id shows nothing of theirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tollgate.accounts.keys import repository as keys_repo

from ..factories import make_admin, make_api, make_key, make_org, running, settings_for, signup


async def test_keys_are_filtered_by_status_api_and_name_within_the_org(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        weather = await make_api(svc, admin)
        maps = await make_api(svc, admin, name="Maps")
        owner = await signup(svc)
        org_id = await make_org(svc, owner)
        stranger = await signup(svc)
        other_org = await make_org(svc, stranger)
        await make_key(svc, stranger, other_org, name="Production backend (theirs)")

        any_api = await make_key(svc, owner, org_id, name="Production backend")
        weather_only = await make_key(
            svc, owner, org_id, name="Weather widget", allowed_api_ids=[weather["id"]]
        )
        disabled = await make_key(svc, owner, org_id, name="Old backend")
        await svc.http.patch(
            f"/v1/keys/{disabled['id']}", json={"enabled": False}, headers=owner.headers
        )
        revoked = await make_key(svc, owner, org_id, name="Leaked 100%_key")
        await svc.http.post(f"/v1/keys/{revoked['id']}/revoke", headers=owner.headers)
        expired = await make_key(svc, owner, org_id, name="Trial")
        async with svc.sessions() as session, session.begin():
            await keys_repo.update_key(
                session, expired["id"], expires_at=datetime.now(UTC) - timedelta(minutes=1)
            )

        async def names(**params: str) -> list[str]:
            listed = await svc.http.get(
                f"/v1/orgs/{org_id}/keys", params=params, headers=owner.headers
            )
            assert listed.status_code == 200, listed.text
            return sorted(k["name"] for k in listed.json()["items"])

        assert await names(status="active") == ["Production backend", "Weather widget"]
        assert await names(status="disabled") == ["Old backend"]
        assert await names(status="revoked") == ["Leaked 100%_key"]
        assert await names(status="expired") == ["Trial"]
        assert "Weather widget" in await names(api_id=weather["id"])
        assert "Weather widget" not in await names(api_id=maps["id"])
        assert "Production backend" in await names(api_id=maps["id"])  # no API restriction
        assert await names(q="BACKEND", status="active") == ["Production backend"]
        assert await names(q="100%_") == ["Leaked 100%_key"]  # literal, not wildcards
        assert await names(q="%") == ["Leaked 100%_key"]
        deleted = await make_key(svc, owner, org_id, name="Deleted")
        await svc.http.delete(f"/v1/keys/{deleted['id']}", headers=owner.headers)
        assert "Deleted" not in await names()
        assert any_api["id"] != weather_only["id"]

        theirs = await svc.http.get(
            f"/v1/orgs/{other_org}/keys", params={"q": "Production"}, headers=owner.headers
        )
        assert theirs.status_code == 404
        bad = await svc.http.get(
            f"/v1/orgs/{org_id}/keys", params={"status": "lost"}, headers=owner.headers
        )
        assert bad.status_code == 422
