"""Email verification of new sign-ups: the emailed single-use link, its expiry, the
throttled resend, and what an unverified user may not do (create live keys, invite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from tollgate.accounts.models import EmailVerification
from tollgate.contracts.events.accounts import EmailVerificationRequested, MemberInvited
from tollgate.kit.sealing import Sealer

from ..factories import (
    SEALING_KEY,
    events,
    login,
    make_admin,
    make_org,
    remember,
    running,
    settings_for,
    signup,
    verification_token,
)


def _settings(accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, **kw):  # type: ignore[no-untyped-def]
    return settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path, **kw
    )


async def test_an_unverified_user_signs_in_and_works_but_cannot_issue_live_keys_or_invite(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc, verified=False)
        me = await svc.http.get("/v1/auth/me", headers=user.headers)
        assert me.json()["email_verified"] is False
        outbox = await events(svc, user.id)
        sent = [e for e in outbox if isinstance(e.data, EmailVerificationRequested)]
        assert len(sent) == 1
        token = await verification_token(svc, user.id)
        assert token not in sent[0].model_dump_json()  # sealed for the notifier only

        org = await make_org(svc, user)
        test_key = await svc.http.post(
            f"/v1/orgs/{org}/keys", json={"name": "t", "environment": "test"}, headers=user.headers
        )
        assert test_key.status_code == 201, test_key.text
        live = await svc.http.post(f"/v1/orgs/{org}/keys", json={"name": "l"}, headers=user.headers)
        invite = await svc.http.post(
            f"/v1/orgs/{org}/invitations", json={"email": "x@example.com"}, headers=user.headers
        )
        for refused in (live, invite):
            assert refused.status_code == 403, refused.text
            assert refused.json()["type"].endswith("/email-unverified")

        wrong = await svc.http.post("/v1/auth/verify-email", json={"token": "not-a-token"})
        assert wrong.status_code == 400
        assert wrong.json()["type"].endswith("/invalid-token")
        done = await svc.http.post("/v1/auth/verify-email", json={"token": token})
        assert done.status_code == 204
        again = await svc.http.post("/v1/auth/verify-email", json={"token": token})
        assert again.status_code == 400  # single use

        me = await svc.http.get("/v1/auth/me", headers=user.headers)
        assert me.json()["email_verified"] is True
        live = await svc.http.post(f"/v1/orgs/{org}/keys", json={"name": "l"}, headers=user.headers)
        assert live.status_code == 201, live.text
        audit = await svc.http.get(
            "/v1/audit",
            params={"action": "auth.email_verified", "target_id": str(user.id)},
            headers=(await make_admin(svc)).headers,
        )
        [entry] = audit.json()["items"]
        assert entry["actor_id"] == str(user.id)
        assert entry["diff"]["before"] == {"email_verified": False}
        assert entry["diff"]["after"] == {"email_verified": True}


async def test_an_expired_link_is_refused_and_a_resend_is_throttled(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, email_verification_resend_max=2
    )
    async with running(settings) as svc:
        user = await signup(svc, verified=False)
        expired = await verification_token(svc, user.id)
        async with svc.sessions() as session, session.begin():
            await session.execute(
                update(EmailVerification)
                .where(EmailVerification.user_id == user.id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        refused = await svc.http.post("/v1/auth/verify-email", json={"token": expired})
        assert refused.status_code == 400

        resent = [
            await svc.http.post("/v1/auth/verify-email/resend", headers=user.headers)
            for _ in range(3)
        ]
        assert [r.status_code for r in resent] == [202, 202, 429]
        assert resent[2].json()["type"].endswith("/verification-resend-throttled")
        assert 0 < int(resent[2].headers["Retry-After"]) <= 3600
        fresh = await verification_token(svc, user.id)
        assert fresh != expired
        assert (
            await svc.http.post("/v1/auth/verify-email", json={"token": fresh})
        ).status_code == 204
        verified = await svc.http.post("/v1/auth/verify-email/resend", headers=user.headers)
        assert verified.status_code == 409


async def test_accepting_an_invitation_proves_the_address(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        owner = await signup(svc)
        org = await make_org(svc, owner)
        invitee = await signup(svc, verified=False)
        invited = await svc.http.post(
            f"/v1/orgs/{org}/invitations", json={"email": invitee.email}, headers=owner.headers
        )
        assert invited.status_code == 201, invited.text
        invited_events = [e.data for e in await events(svc, org)]
        [invitation] = [d for d in invited_events if isinstance(d, MemberInvited)]
        token = Sealer(SEALING_KEY).unseal(invitation.invitation_token_sealed).decode()
        remember(token)
        joined = await svc.http.post(
            "/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert joined.status_code == 200, joined.text
        assert (await login(svc, invitee)).status_code == 200
        me = await svc.http.get("/v1/auth/me", headers=invitee.headers)
        assert me.json()["email_verified"] is True
