"""Operator commands: `python -m tollgate.accounts <command> [options]`.

- `create-admin --email E [--password P]`: create (or promote) a platform admin; a
  password is generated and printed once when not given. An existing user is promoted
  only when it verified its address or P is its password (exit 1 otherwise).
- `rotate-signing-key`: add a new token signing key and retire the current one
  (published until its tokens have expired); restart-free, replicas re-read the file.
- `republish`: write the current state of every key, API and user to their compacted
  topics again (after a topic was lost; users are also republished at every start).
- `seed-demo --workdir D --upstream-url U --gateway-url G`: the local stack's demo
  data (admin, org, `demo` API, a live key), idempotent; secrets kept in the work dir.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path

from tollgate.accounts.apis import repository as apis_repo
from tollgate.accounts.apis import service as apis
from tollgate.accounts.apis.schemas import ApiCreateIn, ApiPatch
from tollgate.accounts.caller import Actor
from tollgate.accounts.config import Settings
from tollgate.accounts.identity import passwords
from tollgate.accounts.identity import repository as users
from tollgate.accounts.identity import service as identity
from tollgate.accounts.identity import state as user_state
from tollgate.accounts.identity.signing import rotate_keyring
from tollgate.accounts.keys import repository as keys_repo
from tollgate.accounts.keys import service as keys
from tollgate.accounts.keys.schemas import KeyCreateIn
from tollgate.accounts.orgs import repository as orgs_repo
from tollgate.accounts.orgs import service as orgs
from tollgate.kit import apikeys
from tollgate.kit.auth import Principal
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.logs import configure_logging
from tollgate.kit.problems import Problem

DEMO_ADMIN = "admin@tollgate.local"
DEMO_ORG = "Demo"


def _cli_actor(name: str, principal: Principal | None = None) -> Actor:
    return Actor(principal=principal, ip=None, request_id=f"cli:{name}")


def create_admin(settings: Settings, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tollgate.accounts create-admin")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", help="generated and printed when omitted")
    ns = parser.parse_args(args)
    configure_logging("accounts", settings.log_level, json=settings.log_json)
    password = ns.password or secrets.token_urlsafe(18)

    async def run() -> bool:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with session_maker(engine)() as session, session.begin():
                _, created = await identity.ensure_admin(
                    session,
                    settings,
                    _cli_actor("create-admin"),
                    email=ns.email,
                    password=password,
                )
        finally:
            await engine.dispose()
        return created

    try:
        created = asyncio.run(run())
    except Problem as refused:
        print(refused.detail, file=sys.stderr)
        return 1
    if not created:
        print(f"{ns.email} exists; it is a platform admin (password unchanged)")
    elif ns.password:
        print(f"admin {ns.email} created")
    else:
        print(f"admin {ns.email} created; password (shown once): {password}")
    return 0


def rotate_signing_key(settings: Settings, args: list[str]) -> int:
    key = rotate_keyring(settings.signing_key_file, settings.access_token_ttl_seconds)
    print(f"new signing key {key.kid} active in {settings.signing_key_file}")
    return 0


def republish(settings: Settings, args: list[str]) -> int:
    configure_logging("accounts", settings.log_level, json=settings.log_json)

    async def run() -> tuple[int, int, int]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            sessions = session_maker(engine)
            async with sessions() as session, session.begin():
                key_count = await keys.republish_all(session, settings)
                api_count = await apis.republish_all(session, settings)
            return key_count, api_count, await user_state.republish_all(sessions)
        finally:
            await engine.dispose()

    key_count, api_count, user_count = asyncio.run(run())
    print(f"republished {key_count} keys, {api_count} APIs and {user_count} users")
    return 0


def _local_secret(path: Path, make: str) -> str:
    if not path.exists():
        path.write_text(make)
        path.chmod(0o600)
    return path.read_text().strip()


def seed_demo(settings: Settings, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tollgate.accounts seed-demo")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--upstream-url", required=True)
    parser.add_argument("--gateway-url", required=True)
    ns = parser.parse_args(args)
    configure_logging("accounts", "WARNING", json=settings.log_json)
    workdir: Path = ns.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    password = _local_secret(workdir / "admin-password", secrets.token_urlsafe(15))
    key_file = workdir / "demo-key"

    async def run() -> str:
        engine = create_engine(settings.database_url, pool_size=1)
        sessions = session_maker(engine)
        try:
            async with sessions() as session, session.begin():
                admin, _ = await identity.ensure_admin(
                    session,
                    settings,
                    _cli_actor("seed-demo"),
                    email=DEMO_ADMIN,
                    password=password,
                )
                if not await passwords.verify_password(
                    password, admin.password_hash, settings.bcrypt_rounds
                ):
                    await users.update_user(
                        session,
                        admin.id,
                        password_hash=await passwords.hash_password(
                            password, settings.bcrypt_rounds
                        ),
                    )
                principal = Principal(user_id=admin.id, email=admin.email, is_admin=True)
                actor = _cli_actor("seed-demo", principal)
                org = await orgs_repo.get_org_by_name(session, DEMO_ORG)
                if org is None:
                    org = await orgs.create_org(session, settings, actor, name=DEMO_ORG)
                api = await apis_repo.get_api_by_slug(session, "demo")
                if api is None:
                    await apis.create_api(
                        session,
                        settings,
                        actor,
                        ApiCreateIn(
                            slug="demo",
                            name="Demo upstream",
                            upstream_url=ns.upstream_url,
                            price=1,
                        ),
                    )
                elif api.upstream_url != ns.upstream_url.rstrip("/"):
                    await apis.update_api(
                        session, settings, actor, api.id, ApiPatch(upstream_url=ns.upstream_url)
                    )
                raw = key_file.read_text().strip() if key_file.exists() else ""
                known = (
                    raw
                    and apikeys.well_formed(raw)
                    and await keys_repo.get_key_by_hash(
                        session, apikeys.hash_key(raw, settings.key_pepper)
                    )
                )
                if not known:
                    _, raw = await keys.create_key(
                        session,
                        settings,
                        actor,
                        org.id,
                        KeyCreateIn(name="demo key"),
                        imported_raw=raw if raw and apikeys.well_formed(raw) else None,
                    )
                    key_file.write_text(raw)
                    key_file.chmod(0o600)
                # A memory-only local broker forgets the topics on restart: publish again.
                await keys.republish_all(session, settings)
                await apis.republish_all(session, settings)
            return str(org.id)
        finally:
            await engine.dispose()

    org_id = asyncio.run(run())
    (workdir / "demo-org-id").write_text(org_id)
    raw = key_file.read_text().strip()
    print(f"admin login: {DEMO_ADMIN} / {password}  (stored in {workdir / 'admin-password'})")
    print(f"demo org: {DEMO_ORG} ({org_id}); demo API: slug demo -> {ns.upstream_url}")
    print(f"demo key (local dev key): {raw}")
    print(f'curl -H "X-API-Key: {raw}" {ns.gateway_url.rstrip("/")}/demo/hello')
    return 0


COMMANDS = {
    "create-admin": create_admin,
    "rotate-signing-key": rotate_signing_key,
    "republish": republish,
    "seed-demo": seed_demo,
}
