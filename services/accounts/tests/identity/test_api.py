"""`/v1/auth/*`: registration, sign-in, refresh rotation with reuse detection, logout,
throttling, audited sign-in failures, password reset and its per-IP limit, TOTP, and the
JWKS the other services verify against."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text

from tollgate.accounts.identity import repository
from tollgate.contracts.events.accounts import PasswordResetRequested, UserRegistered
from tollgate.kit.auth import JwtVerifier
from tollgate.kit.db import create_engine
from tollgate.kit.sealing import Sealer

from ..factories import (
    SEALING_KEY,
    User,
    events,
    login,
    make_admin,
    make_org,
    remember,
    running,
    settings_for,
    signup,
    unique_email,
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def _settings(accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, **kw):  # type: ignore[no-untyped-def]
    return settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path, **kw
    )


async def test_register_login_me_and_token_verifies_with_published_jwks(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc)
        me = await svc.http.get("/v1/auth/me", headers=user.headers)
        assert me.status_code == 200
        assert me.json()["email"] == user.email
        assert me.json()["orgs"] == []
        assert "password_hash" not in me.text

        jwks = (await svc.http.get("/.well-known/jwks.json")).json()
        verifier = JwtVerifier(issuer="tollgate-accounts", audience="tollgate", jwks=jwks)
        principal = await verifier.verify(user.access_token)
        assert principal.user_id == user.id

        registered = [e for e in await events(svc, user.id) if e.type == UserRegistered.event_type]
        assert len(registered) == 1
        assert user.password not in str(registered[0].model_dump())


async def test_register_errors(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc, login_now=False)
        again = await svc.http.post(
            "/v1/auth/register", json={"email": user.email.upper(), "password": "x" * 12}
        )
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"
        short = await svc.http.post(
            "/v1/auth/register", json={"email": unique_email(), "password": "short"}
        )
        assert short.status_code == 422
        too_long = await svc.http.post(
            "/v1/auth/register", json={"email": unique_email(), "password": "é" * 40}
        )
        assert too_long.status_code == 422
        assert "é" * 40 not in too_long.text
        bad_email = await svc.http.post(
            "/v1/auth/register", json={"email": "not-an-email", "password": "x" * 12}
        )
        assert bad_email.status_code == 422
        extra = await svc.http.post(
            "/v1/auth/register",
            json={"email": unique_email(), "password": "x" * 12, "is_admin": True},
        )
        assert extra.status_code == 422

    closed = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, registration_open=False
    )
    async with running(closed) as svc:
        refused = await svc.http.post(
            "/v1/auth/register", json={"email": unique_email(), "password": "x" * 12}
        )
        assert refused.status_code == 403


async def test_concurrent_registrations_of_one_email_give_one_user_and_409s(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        email = unique_email("race")
        body = {"email": email, "password": "race-password-1"}
        remember(body["password"])
        responses = await asyncio.gather(
            *(svc.http.post("/v1/auth/register", json=body) for _ in range(5))
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201, 409, 409, 409, 409]


async def test_wrong_password_and_unknown_user_get_the_same_401(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc, login_now=False)
        wrong = await login(svc, User(user.id, user.email, "wrong-password"))
        unknown = await login(svc, User(user.id, unique_email(), "wrong-password"))
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json()["detail"] == unknown.json()["detail"]
        unauthenticated = await svc.http.get("/v1/auth/me")
        assert unauthenticated.status_code == 401
        forged = await svc.http.get("/v1/auth/me", headers={"Authorization": "Bearer abc.def.ghi"})
        assert forged.status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, refresh_reuse_grace_seconds=0
    )
    async with running(settings) as svc:
        user = await signup(svc)
        first = user.refresh_token
        rotated = await svc.http.post("/v1/auth/refresh", json={"refresh_token": first})
        assert rotated.status_code == 200
        second = rotated.json()["refresh_token"]
        remember(second, rotated.json()["access_token"])
        assert second != first

        # The old token shows up again: it leaked. Both it and the new one stop working.
        reused = await svc.http.post("/v1/auth/refresh", json={"refresh_token": first})
        assert reused.status_code == 401
        after = await svc.http.post("/v1/auth/refresh", json={"refresh_token": second})
        assert after.status_code == 401
        garbage = await svc.http.post("/v1/auth/refresh", json={"refresh_token": "nope"})
        assert garbage.status_code == 401


async def test_one_session_refreshed_twice_at_once_stays_signed_in_a_later_reuse_ends_it(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Two console replicas holding the same cookie refresh it within the grace: each
    gets a pair that works; the same token after the grace is a leak and ends the
    session (both pairs)."""
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc)
        first = user.refresh_token
        a, b = await asyncio.gather(
            svc.http.post("/v1/auth/refresh", json={"refresh_token": first}),
            svc.http.post("/v1/auth/refresh", json={"refresh_token": first}),
        )
        assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
        pair_a, pair_b = a.json(), b.json()
        assert len({first, pair_a["refresh_token"], pair_b["refresh_token"]}) == 3
        for pair in (pair_a, pair_b):
            me = await svc.http.get(
                "/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
            )
            assert me.status_code == 200
        on = await svc.http.post(
            "/v1/auth/refresh", json={"refresh_token": pair_a["refresh_token"]}
        )
        assert on.status_code == 200

        # The first token again, once its grace is over: it leaked.
        engine = create_engine(svc.settings.database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE refresh_tokens SET used_at = used_at - interval '11 seconds' "
                        "WHERE used_at IS NOT NULL"
                    )
                )
        finally:
            await engine.dispose()
        late = await svc.http.post("/v1/auth/refresh", json={"refresh_token": first})
        assert late.status_code == 401
        assert "reuse" in late.json()["detail"]
        for token in (on.json()["refresh_token"], pair_b["refresh_token"]):
            after = await svc.http.post("/v1/auth/refresh", json={"refresh_token": token})
            assert after.status_code == 401


async def test_logout_ends_the_session_and_everywhere_ends_access_tokens(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc)
        out = await svc.http.post(
            "/v1/auth/logout", json={"refresh_token": user.refresh_token}, headers=user.headers
        )
        assert out.status_code == 204
        dead = await svc.http.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        assert dead.status_code == 401
        assert (await svc.http.get("/v1/auth/me", headers=user.headers)).status_code == 401

        assert (await login(svc, user)).status_code == 200
        everywhere = await svc.http.post(
            "/v1/auth/logout",
            json={"refresh_token": user.refresh_token, "everywhere": True},
            headers=user.headers,
        )
        assert everywhere.status_code == 204
        assert (await svc.http.get("/v1/auth/me", headers=user.headers)).status_code == 401
        no_auth = await svc.http.post("/v1/auth/logout", json={"refresh_token": "x"})
        assert no_auth.status_code == 401


async def test_login_is_throttled_per_account_with_retry_after(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, login_max_failures_per_account=3
    )
    async with running(settings) as svc:
        user = await signup(svc, login_now=False)
        wrong = User(user.id, user.email, "wrong-password")
        statuses = [(await login(svc, wrong)).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        # Locked now, even with the right password.
        locked = await login(svc, user)
        assert locked.status_code == 429
        assert locked.headers["content-type"] == "application/problem+json"
        assert 0 < int(locked.headers["Retry-After"]) <= settings.login_window_seconds
        other = await signup(svc)  # other accounts are unaffected
        assert other.access_token


async def test_login_is_throttled_per_ip(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, login_max_failures_per_ip=4
    )
    ip = f"10.{int(time.time()) % 250}.{time.time_ns() % 250}.7"
    async with running(settings, client_ip=ip) as svc:
        user = await signup(svc, login_now=False)
        for _ in range(4):  # four different accounts, one address
            assert (
                await login(svc, User(user.id, unique_email(), "guess-guess"))
            ).status_code == 401
        blocked = await login(svc, user)
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) > 0


async def test_password_reset_flow(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc)
        known = await svc.http.post("/v1/auth/password-reset", json={"email": user.email})
        unknown = await svc.http.post("/v1/auth/password-reset", json={"email": unique_email()})
        assert known.status_code == unknown.status_code == 202
        assert known.json() == unknown.json()

        requested = [
            e for e in await events(svc, user.id) if e.type == PasswordResetRequested.event_type
        ]
        assert len(requested) == 1
        data = requested[0].data
        assert isinstance(data, PasswordResetRequested)
        token = Sealer(SEALING_KEY).unseal(data.reset_token_sealed).decode()
        remember(token)
        assert token not in requested[0].model_dump_json()

        new_password = "new-password-123"
        remember(new_password)
        bad = await svc.http.post(
            "/v1/auth/password-reset/confirm", json={"token": "nope", "new_password": new_password}
        )
        assert bad.status_code == 400
        done = await svc.http.post(
            "/v1/auth/password-reset/confirm", json={"token": token, "new_password": new_password}
        )
        assert done.status_code == 204
        # Sessions are gone: the refresh token and the access token no longer work.
        assert (
            await svc.http.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        ).status_code == 401
        assert (await svc.http.get("/v1/auth/me", headers=user.headers)).status_code == 401
        # Single use.
        again = await svc.http.post(
            "/v1/auth/password-reset/confirm", json={"token": token, "new_password": new_password}
        )
        assert again.status_code == 400
        assert (await login(svc, user)).status_code == 401
        user.password = new_password
        assert (await login(svc, user)).status_code == 200


async def test_totp_enrol_login_recovery_and_disable(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc)
        verify_first = await svc.http.post(
            "/v1/auth/totp/verify",
            json={"password": user.password, "code": "123456"},
            headers=user.headers,
        )
        assert verify_first.status_code == 409
        enrolled = await svc.http.post("/v1/auth/totp/enroll", headers=user.headers)
        assert enrolled.status_code == 200
        secret = enrolled.json()["secret"]
        remember(secret)
        assert enrolled.json()["otpauth_uri"].startswith("otpauth://totp/")
        totp = pyotp.TOTP(secret)
        wrong = await svc.http.post(
            "/v1/auth/totp/verify",
            json={"password": user.password, "code": "000000"},
            headers=user.headers,
        )
        assert wrong.status_code == 400
        # A token alone (stolen, say) cannot turn it on: the password is asked for.
        # Before: it could, and the owner was locked out with no way back.
        no_password = await svc.http.post(
            "/v1/auth/totp/verify",
            json={"password": "not-the-password", "code": totp.now()},
            headers=user.headers,
        )
        assert no_password.status_code == 400
        assert no_password.json()["type"].endswith("/invalid-credentials")
        assert (await login(svc, user)).status_code == 200
        step = int(time.time() // 30)
        verified = await svc.http.post(
            "/v1/auth/totp/verify",
            json={"password": user.password, "code": totp.generate_otp(step)},
            headers=user.headers,
        )
        assert verified.status_code == 200
        codes = verified.json()["recovery_codes"]
        remember(*codes)
        assert len(codes) == 10
        assert (
            await svc.http.post("/v1/auth/totp/enroll", headers=user.headers)
        ).status_code == 409

        missing = await login(svc, user)
        assert missing.status_code == 401
        assert missing.json()["mfa_required"] is True
        replay = await login(svc, user, otp=totp.generate_otp(step))
        assert replay.status_code == 401  # the code used to verify cannot be replayed
        fresh = await login(svc, user, otp=totp.generate_otp(step + 1))
        assert fresh.status_code == 200
        recovery = await login(svc, user, otp=codes[0])
        assert recovery.status_code == 200
        reused = await login(svc, user, otp=codes[0])
        assert reused.status_code == 401

        bad_disable = await svc.http.post(
            "/v1/auth/totp/disable",
            json={"password": "wrong-password", "code": codes[1]},
            headers=user.headers,
        )
        assert bad_disable.status_code == 400
        disabled = await svc.http.post(
            "/v1/auth/totp/disable",
            json={"password": user.password, "code": codes[1]},
            headers=user.headers,
        )
        assert disabled.status_code == 204
        assert (await login(svc, user)).status_code == 200
        not_enabled = await svc.http.post(
            "/v1/auth/totp/disable",
            json={"password": user.password, "code": "123456"},
            headers=user.headers,
        )
        assert not_enabled.status_code == 409


async def test_without_sealing_keys_reset_answers_503_and_nothing_is_stored(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path, sealing_keys="")
    async with running(settings) as svc:
        user = await signup(svc, verified=False)  # no link could be sealed
        reset = await svc.http.post("/v1/auth/password-reset", json={"email": user.email})
        assert reset.status_code == 503
        assert [e for e in await events(svc, user.id) if "password_reset" in e.type] == []


async def test_without_signing_key_login_answers_503(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        signing_key_generate=False,
        signing_key_file=tmp_path / "absent.pem",
    )
    async with running(settings) as svc:
        user = await signup(svc, login_now=False)
        assert (await login(svc, user)).status_code == 503
        assert (await svc.http.get("/.well-known/jwks.json")).json() == {"keys": []}


def _unique_ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


async def test_failed_logins_are_audited_for_admins_only(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, login_max_failures_per_account=2
    )
    ip = _unique_ip()
    async with running(settings, client_ip=ip) as svc:
        admin = await make_admin(svc)
        owner = await signup(svc)
        await make_org(svc, owner)
        user = await signup(svc, login_now=False)
        two_factor = await signup(svc, login_now=False)
        async with svc.sessions() as session, session.begin():
            await repository.update_user(
                session,
                two_factor.id,
                totp_enabled=True,
                totp_secret_sealed=Sealer(SEALING_KEY).seal(pyotp.random_base32()),
            )
        unknown_email = unique_email("nobody")
        mistyped = "pw-typed-in-the-email-field"
        remember(mistyped)

        async def attempt(email: str, password: str, request_id: str, **form: str) -> Any:
            return await svc.http.post(
                "/v1/auth/token",
                data={"username": email, "password": password, **form},
                headers={"X-Request-ID": request_id},
            )

        answers = {
            "unknown_user": await attempt(unknown_email, "wrong-password", "rq-unknown-user"),
            "no_at_sign": await attempt(mistyped, "wrong-password", "rq-no-at-sign"),
            "wrong_password": await attempt(user.email, "wrong-password", "rq-wrong-password"),
            "otp_missing": await attempt(two_factor.email, two_factor.password, "rq-otp-missing"),
            "otp_invalid": await attempt(
                two_factor.email, two_factor.password, "rq-otp-invalid", otp="not-a-code"
            ),
        }
        await attempt(user.email, "wrong-password-2", "rq-wrong-password-2")
        answers["throttled"] = await attempt(user.email, user.password, "rq-throttled")
        # What the caller is told has not changed: one answer for unknown and wrong.
        assert [a.status_code for a in answers.values()] == [401, 401, 401, 401, 401, 429]
        unknown, wrong = answers["unknown_user"].json(), answers["wrong_password"].json()
        assert unknown["detail"] == wrong["detail"]

        listed = await svc.http.get(
            "/v1/audit", params={"action": "auth.login_failed", "limit": 200}, headers=admin.headers
        )
        assert listed.status_code == 200
        mine = {e["request_id"]: e for e in listed.json()["items"] if e["ip"] == ip}
        assert {rid: e["diff"]["reason"] for rid, e in mine.items()} == {
            "rq-unknown-user": "unknown_user",
            "rq-no-at-sign": "unknown_user",
            "rq-wrong-password": "wrong_password",
            "rq-wrong-password-2": "wrong_password",
            "rq-otp-missing": "otp_missing",
            "rq-otp-invalid": "otp_invalid",
            "rq-throttled": "throttled",
        }
        assert mine["rq-unknown-user"]["diff"]["email"] == unknown_email
        assert mine["rq-unknown-user"]["target_id"] is None
        assert "email" not in mine["rq-no-at-sign"]["diff"]
        assert mine["rq-throttled"]["target_id"] == str(user.id)
        assert {e["actor_id"] for e in mine.values()} == {None}
        for secret in (user.password, two_factor.password, mistyped, "not-a-code"):
            assert secret not in listed.text

        # Filters work on them: by target (the attacked account) and by time.
        by_target = await svc.http.get(
            "/v1/audit",
            params={"action": "auth.login_failed", "target_id": str(two_factor.id)},
            headers=admin.headers,
        )
        assert [e["request_id"] for e in by_target.json()["items"]] == [
            "rq-otp-invalid",
            "rq-otp-missing",
        ]
        later = await svc.http.get(
            "/v1/audit",
            params={"action": "auth.login_failed", "since": "2999-01-01T00:00:00Z"},
            headers=admin.headers,
        )
        assert later.json()["items"] == []

        # Users belong to no org: an org owner sees none of them.
        owners_view = await svc.http.get(
            "/v1/audit", params={"action": "auth.login_failed"}, headers=owner.headers
        )
        assert owners_view.status_code == 200
        assert owners_view.json()["items"] == []


async def test_registration_is_limited_per_client_ip_taken_emails_included(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Before: `email-taken` came back at once and without limit: an oracle for which
    # addresses have accounts, where sign-in and password reset give nothing away.
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, registration_max_per_ip=3
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        known = await signup(svc, login_now=False)  # 1
        probes = [
            await svc.http.post(
                "/v1/auth/register", json={"email": email, "password": "long-enough-1"}
            )
            for email in (known.email, known.email, unique_email())
        ]
        assert [r.status_code for r in probes] == [409, 409, 429]
        refused = probes[-1]
        assert refused.json()["type"].endswith("/registration-throttled")
        assert 0 < int(refused.headers["Retry-After"]) <= settings.password_reset_window_seconds


async def test_password_reset_is_limited_per_client_ip(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, password_reset_max_per_ip=3
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        user = await signup(svc, login_now=False)
        allowed = [
            await svc.http.post("/v1/auth/password-reset", json={"email": email})
            for email in (user.email, unique_email(), user.email)
        ]
        assert [r.status_code for r in allowed] == [202, 202, 202]
        assert len({r.text for r in allowed}) == 1

        refused = [
            await svc.http.post("/v1/auth/password-reset", json={"email": email})
            for email in (user.email, unique_email())
        ]
        for response in refused:
            assert response.status_code == 429
            assert response.headers["content-type"] == "application/problem+json"
            retry_after = int(response.headers["Retry-After"])
            assert 0 < retry_after <= settings.password_reset_window_seconds
        known, unknown = (r.json() for r in refused)
        # The same answer for a real and an unknown address; `retry_after` counts down
        # (the two may straddle a second: it made this test fail once).
        differ = ("request_id", "instance", "retry_after")
        assert {k: v for k, v in known.items() if k not in differ} == {
            k: v for k, v in unknown.items() if k not in differ
        }
        assert 0 <= known["retry_after"] - unknown["retry_after"] <= 1
        # The refused request for the real user sent nothing.
        requested = [
            e for e in await events(svc, user.id) if e.type == PasswordResetRequested.event_type
        ]
        assert len(requested) == 2

        # Another address is not affected.
        elsewhere = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=svc.app, client=(_unique_ip(), 40000)),
            base_url="http://accounts.test",
        )
        async with elsewhere:
            other = await elsewhere.post("/v1/auth/password-reset", json={"email": user.email})
        assert other.status_code == 202


async def test_logout_with_an_unknown_or_ended_refresh_token_ends_nothing_and_says_so(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        user = await signup(svc)
        other = await signup(svc)
        own_session = user.refresh_token

        for token in ("not-a-token", other.refresh_token):
            refused = await svc.http.post(
                "/v1/auth/logout", json={"refresh_token": token}, headers=user.headers
            )
            assert refused.status_code == 400
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"].endswith("/invalid-token")
        # Nothing ended: neither the caller's session nor the other user's.
        assert (await svc.http.get("/v1/auth/me", headers=user.headers)).status_code == 200
        assert (await svc.http.get("/v1/auth/me", headers=other.headers)).status_code == 200

        done = await svc.http.post(
            "/v1/auth/logout", json={"refresh_token": own_session}, headers=user.headers
        )
        assert done.status_code == 204
        assert (await login(svc, user)).status_code == 200
        again = await svc.http.post(
            "/v1/auth/logout", json={"refresh_token": own_session}, headers=user.headers
        )
        assert again.status_code == 400
        assert again.json()["type"].endswith("/invalid-token")


async def test_undeliverable_emails_and_long_passwords_are_semantic_422s(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        refused = await svc.http.post(
            "/v1/auth/register", json={"email": "someone@host.test", "password": "x" * 12}
        )
        assert refused.status_code == 422
        assert refused.json()["type"].endswith("/invalid-email")
        too_long = await svc.http.post(
            "/v1/auth/register", json={"email": unique_email(), "password": "é" * 40}
        )
        assert too_long.status_code == 422
        assert too_long.json()["type"].endswith("/password-too-long")
