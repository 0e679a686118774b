"""Plain async factories for the accounts tests: a running app with a client, users,
orgs, keys and APIs made through the HTTP API, and the outbox as the events written.

Every secret a factory sees is added to `SECRETS`, which the log-capture fixture
checks against every log record of the test.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from tollgate.accounts.app import create_app
from tollgate.accounts.caller import Actor
from tollgate.accounts.config import Settings
from tollgate.accounts.identity import service as identity
from tollgate.accounts.models import outbox
from tollgate.accounts.orgs import repository as orgs_repo
from tollgate.contracts.decoding import decode
from tollgate.contracts.envelope import CloudEvent, EventData
from tollgate.contracts.events.accounts import EmailVerificationRequested
from tollgate.kit.db import SessionMaker
from tollgate.kit.sealing import Sealer, new_sealing_key

SECRETS: list[str] = []
SEALING_KEY = new_sealing_key()
PEPPER = "test-pepper-" + secrets.token_hex(8)


def remember(*values: str) -> None:
    """Register secrets that must never appear in a log record."""
    SECRETS.extend(v for v in values if v)


def settings_for(
    database_url: str, *, kafka: str, prefix: str, workdir: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka,
        "kafka_topic_prefix": prefix,
        "kafka_enable_idempotence": False,
        "signing_key_file": workdir / "signing-keys.pem",
        "signing_key_generate": True,
        "bcrypt_rounds": 4,
        "sealing_keys": SEALING_KEY,
        "key_pepper": PEPPER,
        "resolve_upstream_hosts": False,
        # Every test client is 127.0.0.1 on one shared database: per-IP limits would
        # couple the tests; the throttle tests set their own limit and address.
        "login_max_failures_per_ip": 100_000,
        "password_reset_max_per_ip": 100_000,
        "registration_max_per_ip": 100_000,
        "catalog_max_per_ip": 100_000,
        "instance_id": "test",
        # A consumer group costs seconds per app start; the audit consumer's own tests
        # turn it on.
        "consume_audit_records": False,
        **overrides,
    }
    return Settings(**values)


@dataclass
class Service:
    """A running accounts app and an HTTP client on it."""

    app: FastAPI
    http: httpx.AsyncClient
    settings: Settings

    @property
    def sessions(self) -> SessionMaker:
        sessions: SessionMaker = self.app.state.sessions
        return sessions


@asynccontextmanager
async def running(settings: Settings, *, client_ip: str = "127.0.0.1") -> AsyncIterator[Service]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://accounts.test") as http:
            yield Service(app, http, settings)


@dataclass
class User:
    id: uuid.UUID
    email: str
    password: str
    access_token: str = ""
    refresh_token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{secrets.token_hex(5)}@example.com"


async def login(svc: Service, user: User, **form: str) -> httpx.Response:
    response = await svc.http.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": user.email, "password": user.password, **form},
    )
    if response.status_code == 200:
        body = response.json()
        user.access_token = body["access_token"]
        user.refresh_token = body["refresh_token"]
        remember(user.access_token, user.refresh_token)
    return response


async def signup(
    svc: Service, *, email: str | None = None, login_now: bool = True, verified: bool = True
) -> User:
    """Register a user through the API, verify its email with the emailed link (unless
    `verified=False`) and sign in."""
    password = "pw-" + secrets.token_urlsafe(12)
    remember(password)
    email = email or unique_email()
    response = await svc.http.post(
        "/v1/auth/register", json={"email": email, "password": password, "name": "Test User"}
    )
    assert response.status_code == 201, response.text
    user = User(id=uuid.UUID(response.json()["id"]), email=email, password=password)
    if verified:
        confirmed = await svc.http.post(
            "/v1/auth/verify-email", json={"token": await verification_token(svc, user.id)}
        )
        assert confirmed.status_code == 204, confirmed.text
    if login_now:
        assert (await login(svc, user)).status_code == 200
    return user


async def make_admin(svc: Service) -> User:
    """A platform admin (created as operators do, then signed in through the API)."""
    password = "admin-" + secrets.token_urlsafe(12)
    remember(password)
    email = unique_email("admin")
    async with svc.sessions() as session, session.begin():
        admin, _ = await identity.ensure_admin(
            session, svc.settings, Actor(None, None, "test"), email=email, password=password
        )
    user = User(id=admin.id, email=email, password=password)
    assert (await login(svc, user)).status_code == 200
    return user


async def make_org(svc: Service, owner: User, name: str | None = None) -> uuid.UUID:
    response = await svc.http.post(
        "/v1/orgs", json={"name": name or f"Org {secrets.token_hex(3)}"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def add_member(svc: Service, org_id: uuid.UUID, user: User, role: str) -> None:
    """Put `user` in the org directly (the invitation flow has its own tests)."""
    async with svc.sessions() as session, session.begin():
        await orgs_repo.upsert_membership(session, org_id, user.id, role)


async def make_key(svc: Service, user: User, org_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
    response = await svc.http.post(
        f"/v1/orgs/{org_id}/keys", json={"name": "test key", **fields}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    remember(body["key"])
    return body


async def make_api(svc: Service, admin: User, **fields: Any) -> dict[str, Any]:
    values = {
        "slug": f"api-{secrets.token_hex(4)}",
        "name": "Weather",
        "upstream_url": "https://93.184.215.14/v2",
        **fields,
    }
    for value in (values.get("upstream_headers") or {}).values():
        remember(value)
    response = await svc.http.post("/v1/apis", json=values, headers=admin.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def outbox_records(svc: Service, key: object) -> list[tuple[str, bytes | None]]:
    """(topic, value) of every outbox row with Kafka key `key`, oldest first."""
    async with svc.sessions() as session:
        rows = await session.execute(
            select(outbox.c.topic, outbox.c.value)
            .where(outbox.c.key == str(key))
            .order_by(outbox.c.id)
        )
        return [(row.topic, row.value) for row in rows]


async def events(svc: Service, key: object) -> list[CloudEvent[EventData]]:
    """Decoded events (tombstones skipped) written under Kafka key `key`."""
    return [decode(value) for _, value in await outbox_records(svc, key) if value is not None]


async def verification_token(svc: Service, user_id: uuid.UUID) -> str:
    """The token of the latest verification link emailed to `user_id` (unsealed as the
    notifier does)."""
    sent = [e.data for e in await events(svc, user_id)]
    latest = [d for d in sent if isinstance(d, EmailVerificationRequested)][-1]
    token = Sealer(SEALING_KEY).unseal(latest.verification_token_sealed).decode()
    remember(token)
    return token
