"""The platform admin named by `admin_email` (ensured at every start) and by
`create-admin`: an account someone registered under that address without ever proving
it, and without knowing the admin password, is not made an admin. Registration is open
to anyone, so otherwise whoever registered the operator's address first (before the
operator set `admin_email`, or changed it) became a platform admin at the next start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tollgate.accounts.app import ensure_configured_admin
from tollgate.accounts.caller import Actor
from tollgate.accounts.identity import service as identity
from tollgate.kit.problems import Problem

from ..factories import login, remember, running, settings_for, signup, unique_email


def _settings(accounts_db: str, kafka: str, prefix: str, tmp_path: Path, **extra: Any) -> Any:
    return settings_for(accounts_db, kafka=kafka, prefix=prefix, workdir=tmp_path, **extra)


async def _is_admin(svc: Any, headers: dict[str, str]) -> bool:
    me = await svc.http.get("/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    return bool(me.json()["is_admin"])


async def test_an_unproven_squatter_of_the_admin_address_is_not_promoted_at_start(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    operator_email = unique_email("ops")
    operator_password = "operator-secret-pw"
    remember(operator_password)
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        admin_email=operator_email,
        admin_password=operator_password,
    )
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        # An anonymous visitor registers the address the operator is about to configure;
        # it cannot open the verification mail, but it knows its own password.
        squatter = await signup(svc, email=operator_email, verified=False)
        await ensure_configured_admin(settings, svc.sessions)  # the next start

        assert (await login(svc, squatter)).status_code == 200
        assert not await _is_admin(svc, squatter.headers)
        users = await svc.http.get("/v1/users", headers=squatter.headers)
        assert users.status_code == 403


async def test_create_admin_refuses_to_promote_an_unproven_account(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        squatter = await signup(svc, verified=False)
        with pytest.raises(Problem) as refused:
            async with svc.sessions() as session, session.begin():
                await identity.ensure_admin(
                    session,
                    svc.settings,
                    Actor(None, None, "test"),
                    email=squatter.email,
                    password="another-password",
                )
        assert refused.value.status == 409
        assert not await _is_admin(svc, squatter.headers)


async def test_an_existing_account_that_proved_the_address_or_knows_the_password_is_promoted(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        verified = await signup(svc)
        unverified = await signup(svc, verified=False)
        for user, password in ((verified, "not-its-password"), (unverified, unverified.password)):
            async with svc.sessions() as session, session.begin():
                _, created = await identity.ensure_admin(
                    session,
                    svc.settings,
                    Actor(None, None, "test"),
                    email=user.email,
                    password=password,
                )
            assert not created
            assert await _is_admin(svc, user.headers)
