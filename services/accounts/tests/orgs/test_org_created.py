"""Creating an org announces it with its owner's address and locale (`OrgCreated`), in
the org's own transaction: the notifier mails the owner until the org sets contacts."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

from sqlalchemy import select

from tollgate.accounts.caller import Actor
from tollgate.accounts.models import Org
from tollgate.accounts.orgs import service as orgs
from tollgate.contracts.events.accounts import OrgCreated
from tollgate.kit.auth import Principal

from ..factories import User, events, login, make_org, remember, running, settings_for, unique_email


async def test_a_new_org_is_announced_with_its_owner_address_and_locale(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        password = "pw-" + secrets.token_urlsafe(12)
        remember(password)
        email = unique_email("owner")
        registered = await svc.http.post(
            "/v1/auth/register", json={"email": email, "password": password, "locale": "zh-CN"}
        )
        assert registered.status_code == 201, registered.text
        owner = User(id=uuid.UUID(registered.json()["id"]), email=email, password=password)
        assert (await login(svc, owner)).status_code == 200

        org_id = await make_org(svc, owner, "Acme Pets")
        other_id = await make_org(svc, owner, "Acme Labs")

        announced = [e for e in await events(svc, org_id) if isinstance(e.data, OrgCreated)]
        assert len(announced) == 1
        data = announced[0].data
        assert (data.org_id, data.org_name, data.owner_id) == (org_id, "Acme Pets", owner.id)
        assert (data.owner_email, data.owner_locale) == (email, "zh-CN")
        assert announced[0].subject == str(org_id)
        [other] = [e.data for e in await events(svc, other_id) if isinstance(e.data, OrgCreated)]
        assert (other.org_id, other.org_name) == (other_id, "Acme Labs")

        # An org whose transaction rolls back leaves no announcement behind either.
        name = f"Rolled back {secrets.token_hex(3)}"
        principal = Principal(user_id=owner.id, email=email)
        async with svc.sessions() as session:
            transaction = await session.begin()
            created = await orgs.create_org(
                session, settings, Actor(principal, None, None), name=name
            )
            await transaction.rollback()
        async with svc.sessions() as session:
            assert await session.scalar(select(Org).where(Org.name == name)) is None
        assert await events(svc, created.id) == []
