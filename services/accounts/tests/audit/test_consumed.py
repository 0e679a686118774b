"""Other services' audit records land in accounts' audit log once (a redelivered batch
adds nothing) and are served by `/v1/audit` to the org's owners, naming the service,
with nothing secret in them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from tollgate.accounts.audit.service import store_records
from tollgate.contracts.envelope import new_event
from tollgate.contracts.events.audit import AuditRecorded

from ..factories import add_member, make_org, running, settings_for, signup


async def test_records_are_stored_once_and_shown_to_the_orgs_owners(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        viewer = await signup(svc)
        stranger = await signup(svc)
        org_id = await make_org(svc, owner)
        await add_member(svc, org_id, viewer, "viewer")
        other_org = await make_org(svc, stranger)
        events = [
            new_event(
                AuditRecorded(
                    service="billing",
                    org_id=org_id,
                    actor_id=owner.id,
                    action="billing.top_up",
                    target_type="org",
                    target_id=str(org_id),
                    diff={"request": {"amount": 500}, "api_secret": "leaked"},
                    ip="203.0.113.7",
                    request_id="req-0000-billing",
                    at=datetime.now(UTC),
                ),
                source="tollgate/audit/billing-1",
            ),
            new_event(
                AuditRecorded(
                    service="notifier",
                    org_id=other_org,
                    actor_id=stranger.id,
                    action="notifier.create_endpoint",
                    target_type="endpoint",
                    target_id=str(uuid.uuid4()),
                    at=datetime.now(UTC),
                ),
                source="tollgate/audit/notifier-1",
            ),
        ]
        async with svc.sessions() as session, session.begin():
            assert await store_records(session, events) == 2
        async with svc.sessions() as session, session.begin():
            assert await store_records(session, events) == 0  # redelivered

        listed = await svc.http.get(
            "/v1/audit", params={"org_id": str(org_id)}, headers=owner.headers
        )
        assert listed.status_code == 200
        billing = [e for e in listed.json()["items"] if e["service"] == "billing"]
        assert len(billing) == 1
        entry = billing[0]
        assert entry["action"] == "billing.top_up"
        assert entry["actor_id"] == str(owner.id)
        assert entry["request_id"] == "req-0000-billing"
        assert entry["diff"] == {"request": {"amount": 500}}  # scrubbed once more
        assert "notifier" not in {e["service"] for e in listed.json()["items"]}

        foreign = await svc.http.get(
            "/v1/audit", params={"org_id": str(other_org)}, headers=owner.headers
        )
        assert foreign.status_code == 404
        not_owner = await svc.http.get(
            "/v1/audit", params={"org_id": str(org_id)}, headers=viewer.headers
        )
        assert not_owner.status_code == 403
