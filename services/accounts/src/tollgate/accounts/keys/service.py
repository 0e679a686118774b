"""API key rules: issue, change, rotate with a grace period, revoke, delete.

Every change bumps the key's `version` and writes the key's complete state
(`KeyUpserted`, hash only) to the outbox in the same transaction, so the gateway's
copy follows the database exactly; deletion writes a tombstone. Lifecycle events
(created, rotated, revoked) go to the accounts events topic for notifications.
The raw key leaves this module only as the return value of `create_key` and
`rotate_key`; it is never stored, logged, audited or published.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.apis import repository as apis
from tollgate.accounts.audit import repository as audit_log
from tollgate.accounts.audit.service import record
from tollgate.accounts.caller import Actor
from tollgate.accounts.config import Settings
from tollgate.accounts.identity.service import require_verified_email
from tollgate.accounts.keys import repository as repo
from tollgate.accounts.keys.schemas import (
    KeyCreateIn,
    KeyOut,
    KeyPatch,
    RetiredSecretOut,
    canonical_networks,
    check_metadata,
)
from tollgate.accounts.limits import as_contract
from tollgate.accounts.models import ApiKey, RetiredKeySecret
from tollgate.contracts import topics
from tollgate.contracts.events.accounts import (
    KeyCreated,
    KeyEnvironment,
    KeyExpiring,
    KeyRevoked,
    KeyRotated,
    KeyUpserted,
    RetiredSecret,
)
from tollgate.contracts.ids import uuid7
from tollgate.kit import apikeys
from tollgate.kit.audit import changed_fields
from tollgate.kit.outbox import emit, emit_tombstone
from tollgate.kit.problems import Conflict, NotFound, Problem, Unprocessable


def not_found() -> Problem:
    return NotFound("key-not-found", "No such key.")


def key_out(key: ApiKey, retired: list[RetiredKeySecret]) -> KeyOut:
    return KeyOut(
        id=key.id,
        org_id=key.org_id,
        name=key.name,
        prefix=key.prefix,
        last4=key.last4,
        environment=key.environment,
        enabled=key.enabled,
        revoked=key.revoked_at is not None,
        revoked_at=key.revoked_at,
        expires_at=key.expires_at,
        scopes=list(key.scopes),
        allowed_api_ids=list(key.allowed_api_ids),
        limits=dict(key.limits),
        ip_allowlist=list(key.ip_allowlist),
        metadata=dict(key.key_metadata),
        retired_secrets=[RetiredSecretOut(expires_at=r.expires_at) for r in retired],
        created_by=key.created_by,
        created_at=key.created_at,
        updated_at=key.updated_at,
        version=key.version,
    )


async def _check_apis(session: AsyncSession, api_ids: list[uuid.UUID]) -> None:
    missing = set(api_ids) - await apis.existing_api_ids(session, api_ids)
    if missing:
        raise Unprocessable(
            "unknown-api",
            "Unknown API ids in allowed_api_ids.",
            api_ids=sorted(str(m) for m in missing),
        )


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise Unprocessable("expiry-in-past", "expires_at must be in the future.")


async def publish_state(
    session: AsyncSession, settings: Settings, key: ApiKey
) -> list[RetiredKeySecret]:
    """Write the key's full current state to the keys topic (through the outbox)."""
    now = datetime.now(UTC)
    retired = (await repo.live_retired_secrets(session, [key.id], now)).get(key.id, [])
    await emit(
        session,
        KeyUpserted(
            key_id=key.id,
            org_id=key.org_id,
            key_hash=key.key_hash,
            prefix=key.prefix,
            last4=key.last4,
            name=key.name,
            environment=KeyEnvironment(key.environment),
            enabled=key.enabled and key.revoked_at is None,
            expires_at=key.expires_at,
            scopes=list(key.scopes),
            allowed_api_ids=list(key.allowed_api_ids),
            ip_allowlist=list(key.ip_allowlist),
            limits=as_contract(key.limits),
            retired_secrets=[
                RetiredSecret(key_hash=r.key_hash, expires_at=r.expires_at) for r in retired
            ],
            revoked=key.revoked_at is not None,
            version=key.version,
            updated_at=key.updated_at,
        ),
        subject=str(key.id),
    )
    return retired


def _lifecycle(key: ApiKey, actor: Actor) -> dict[str, Any]:
    return {
        "org_id": key.org_id,
        "key_id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "last4": key.last4,
        "actor_id": actor.user_id,
    }


async def create_key(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    org_id: uuid.UUID,
    body: KeyCreateIn,
    *,
    imported_raw: str | None = None,
) -> tuple[KeyOut, str]:
    """Issue a key; returns it and the raw secret (shown once). `imported_raw` adopts
    an existing well-formed key instead of generating one (migrations, local seeds).
    A live key needs a verified email (test keys reach no live upstream and cost nothing)."""
    if body.environment == "live":
        await require_verified_email(session, settings, actor, "create a live API key")
    await _check_apis(session, body.allowed_api_ids)
    _check_expiry(body.expires_at)
    check_metadata(body.metadata)
    if imported_raw is not None:
        if not apikeys.well_formed(imported_raw):
            raise ValueError("not a well-formed Tollgate key")
        issued = apikeys.IssuedKey(
            raw=imported_raw,
            prefix=apikeys.display_prefix(imported_raw),
            last4=imported_raw[-4:],
            environment=cast(apikeys.Environment, imported_raw.split("_")[1]),
        )
    else:
        issued = apikeys.generate(body.environment)
    now = datetime.now(UTC)
    key = await repo.insert_key(
        session,
        id=uuid7(),
        org_id=org_id,
        name=body.name,
        key_hash=apikeys.hash_key(issued.raw, settings.key_pepper),
        prefix=issued.prefix,
        last4=issued.last4,
        environment=body.environment,
        enabled=body.enabled,
        expires_at=body.expires_at,
        scopes=body.scopes,
        allowed_api_ids=body.allowed_api_ids,
        ip_allowlist=canonical_networks(body.ip_allowlist),
        limits=body.limits.stored(),
        key_metadata=body.metadata,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
        version=1,
    )
    retired = await publish_state(session, settings, key)
    await emit(session, KeyCreated(**_lifecycle(key, actor)), subject=str(key.id))
    await record(
        session,
        actor,
        "key.create",
        target_type="key",
        target_id=key.id,
        org_id=org_id,
        diff={"name": key.name, "environment": key.environment, "prefix": key.prefix},
    )
    return key_out(key, retired), issued.raw


async def get_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    key = await repo.get_key(session, key_id)
    if key is None:
        raise not_found()
    return key


async def read_key(session: AsyncSession, key: ApiKey) -> KeyOut:
    now = datetime.now(UTC)
    retired = (await repo.live_retired_secrets(session, [key.id], now)).get(key.id, [])
    return key_out(key, retired)


async def list_keys(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
    status: str | None = None,
    api_id: uuid.UUID | None = None,
    name_contains: str | None = None,
) -> list[KeyOut]:
    """The org's keys, filtered as `repository.list_keys` describes."""
    keys = await repo.list_keys(
        session,
        org_id,
        after=after,
        limit=limit,
        status=status,
        api_id=api_id,
        name_contains=name_contains,
    )
    retired = await repo.live_retired_secrets(session, [k.id for k in keys], datetime.now(UTC))
    return [key_out(k, retired.get(k.id, [])) for k in keys]


async def _locked_live_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    key = await repo.lock_key(session, key_id)
    if key is None:
        raise not_found()
    if key.revoked_at is not None:
        raise Conflict("key-revoked", "The key is revoked.")
    return key


_COLUMN = {"metadata": "key_metadata"}


async def update_key(
    session: AsyncSession, settings: Settings, actor: Actor, key_id: uuid.UUID, patch: KeyPatch
) -> KeyOut:
    """Change the given fields (a field sent as null clears it where that makes sense)."""
    key = await _locked_live_key(session, key_id)
    changes: dict[str, Any] = {}
    for field in patch.model_fields_set:
        value = getattr(patch, field)
        if value is None and field not in ("expires_at",):
            raise Unprocessable("validation", f"{field} cannot be null.")
        if field == "limits":
            value = patch.limits.stored() if patch.limits else {}
        if field == "ip_allowlist":
            value = canonical_networks(value)
        if field == "metadata":
            check_metadata(value)
        changes[field] = value
    if "allowed_api_ids" in changes:
        await _check_apis(session, changes["allowed_api_ids"])
    if "expires_at" in changes:
        _check_expiry(changes["expires_at"])
    diff = changed_fields(
        {field: getattr(key, _COLUMN.get(field, field)) for field in changes}, changes
    )
    if diff:
        for field, value in changes.items():
            setattr(key, _COLUMN.get(field, field), value)
        if "expires_at" in diff["after"]:
            key.expiry_warned_at = None  # a new expiry gets its own warning
        key.version += 1
        key.updated_at = datetime.now(UTC)
        await session.flush()
        await publish_state(session, settings, key)
        await record(
            session,
            actor,
            "key.update",
            target_type="key",
            target_id=key.id,
            org_id=key.org_id,
            diff=diff,
        )
    return await read_key(session, key)


async def rotate_key(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    key_id: uuid.UUID,
    grace_seconds: int | None,
) -> tuple[KeyOut, str]:
    """Give the key a new secret; the old one works for `grace_seconds` more."""
    key = await _locked_live_key(session, key_id)
    now = datetime.now(UTC)
    grace = settings.key_rotation_grace_seconds if grace_seconds is None else grace_seconds
    grace_until = now + timedelta(seconds=grace)
    await repo.purge_retired_secrets(session, key.id, now)
    if grace > 0:
        await repo.insert_retired_secret(session, key.id, key.key_hash, grace_until)
    issued = apikeys.generate(cast(apikeys.Environment, key.environment))
    key.key_hash = apikeys.hash_key(issued.raw, settings.key_pepper)
    key.prefix = issued.prefix
    key.last4 = issued.last4
    key.version += 1
    key.updated_at = now
    await session.flush()
    retired = await publish_state(session, settings, key)
    await emit(
        session,
        KeyRotated(**_lifecycle(key, actor), grace_until=grace_until),
        subject=str(key.id),
    )
    await record(
        session,
        actor,
        "key.rotate",
        target_type="key",
        target_id=key.id,
        org_id=key.org_id,
        diff={"grace_seconds": grace, "prefix": key.prefix},
    )
    return key_out(key, retired), issued.raw


async def revoke_key(
    session: AsyncSession, settings: Settings, actor: Actor, key_id: uuid.UUID
) -> KeyOut:
    """Revoke for good: the gateway rejects the key (and its retired secrets) from now on.
    Revoking a revoked key changes nothing and answers its state (a retried revoke)."""
    key = await repo.lock_key(session, key_id)
    if key is None:
        raise not_found()
    if key.revoked_at is not None:
        return key_out(key, [])
    now = datetime.now(UTC)
    key.revoked_at = now
    key.enabled = False
    key.version += 1
    key.updated_at = now
    await repo.purge_retired_secrets(session, key.id, now + timedelta(days=3650))
    await session.flush()
    await publish_state(session, settings, key)
    await emit(session, KeyRevoked(**_lifecycle(key, actor)), subject=str(key.id))
    await record(
        session, actor, "key.revoke", target_type="key", target_id=key.id, org_id=key.org_id
    )
    return key_out(key, [])


async def org_of_deleted_key(session: AsyncSession, key_id: uuid.UUID) -> uuid.UUID | None:
    """The org a deleted key belonged to (the audit log keeps it); None when the key was
    never deleted."""
    return await audit_log.org_of_entry(session, action="key.delete", target_id=str(key_id))


async def delete_key(
    session: AsyncSession, settings: Settings, actor: Actor, key_id: uuid.UUID
) -> None:
    """Delete the key; its record on the keys topic becomes a tombstone."""
    key = await repo.lock_key(session, key_id)
    if key is None:
        raise not_found()
    await repo.delete_key(session, key.id)
    await emit_tombstone(session, topics.ACCOUNTS_KEYS, str(key.id))
    if key.revoked_at is None:
        await emit(session, KeyRevoked(**_lifecycle(key, actor)), subject=str(key.id))
    await record(
        session,
        actor,
        "key.delete",
        target_type="key",
        target_id=key.id,
        org_id=key.org_id,
        diff={"name": key.name, "prefix": key.prefix},
    )


async def republish_all(session: AsyncSession, settings: Settings) -> int:
    """Write every key's state again with a new version (rebuilds a lost topic)."""
    count = 0
    for key_id in await repo.list_all_key_ids(session):
        key = await repo.lock_key(session, key_id)
        if key is None:
            continue
        key.version += 1
        await session.flush()
        await publish_state(session, settings, key)
        count += 1
    return count


async def warn_expiring_keys(
    session: AsyncSession, settings: Settings, *, now: datetime, limit: int = 500
) -> int:
    """Send `KeyExpiring` once for every live key expiring within the warning period."""
    before = now + timedelta(seconds=settings.key_expiry_warning_seconds)
    keys = await repo.lock_keys_expiring_unwarned(session, before, limit)
    for key in keys:
        assert key.expires_at is not None
        await emit(
            session,
            KeyExpiring(
                org_id=key.org_id,
                key_id=key.id,
                name=key.name,
                prefix=key.prefix,
                last4=key.last4,
                actor_id=None,
                expires_at=key.expires_at,
            ),
            subject=str(key.id),
        )
        key.expiry_warned_at = now
    await session.flush()
    return len(keys)


async def drop_lapsed_secrets(
    session: AsyncSession, settings: Settings, *, now: datetime, limit: int = 500
) -> int:
    """Publish a new state for keys whose rotation grace ended, without the old secret
    (gateways also honour `expires_at`; this keeps the compacted topic tidy)."""
    count = 0
    for key_id in await repo.keys_with_lapsed_secrets(session, now, limit):
        key = await repo.lock_key_skip_locked(session, key_id)
        if key is None:
            continue
        await repo.purge_retired_secrets(session, key.id, now)
        key.version += 1
        key.updated_at = now
        await session.flush()
        await publish_state(session, settings, key)
        count += 1
    return count
