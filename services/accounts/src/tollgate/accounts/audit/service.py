"""Recording and reading the audit log.

`record` is called by every mutating service function inside its transaction, so an
entry exists exactly when the change committed. Diffs are built by the callers from
safe fields only; `record` drops any key that looks like a secret as a second guard.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.audit import repository
from tollgate.accounts.caller import Actor
from tollgate.accounts.models import AuditEntry
from tollgate.contracts.envelope import CloudEvent
from tollgate.contracts.events.audit import AuditRecorded
from tollgate.kit.auth import Principal, Role
from tollgate.kit.problems import Forbidden, NotFound

_SECRET_WORDS = ("password", "secret", "token", "key_hash", "raw", "credential", "header")


def _scrub(diff: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in diff.items()
        if not any(word in name.lower() for word in _SECRET_WORDS)
    }


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    target_type: str,
    target_id: object | None,
    org_id: uuid.UUID | None = None,
    diff: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry for a change made in this transaction."""
    await repository.insert_entry(
        session,
        actor_id=actor.user_id,
        org_id=org_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        diff=_scrub(diff or {}),
        ip=actor.ip,
        request_id=actor.request_id,
    )


async def store_records(session: AsyncSession, events: Sequence[CloudEvent[AuditRecorded]]) -> int:
    """Store other services' audit records (idempotent on the event id), their diffs
    scrubbed again like accounts' own; returns how many were new."""
    return await repository.insert_consumed(
        session,
        [
            {
                "event_id": event.id,
                "service": event.data.service,
                "at": event.data.at,
                "actor_id": event.data.actor_id,
                "org_id": event.data.org_id,
                "action": event.data.action,
                "target_type": event.data.target_type,
                "target_id": event.data.target_id,
                "diff": _scrub(event.data.diff),
                "ip": event.data.ip,
                "request_id": event.data.request_id,
            }
            for event in events
        ],
    )


async def list_entries(
    session: AsyncSession,
    principal: Principal,
    *,
    org_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    action: str | None,
    target_id: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    """Entries the caller may see: admins all; owners those of their own orgs."""
    visible: list[uuid.UUID] | None = None
    if not principal.is_admin:
        owned = [org for org, role in principal.org_roles.items() if role is Role.owner]
        if org_id is not None and org_id not in owned:
            if org_id in principal.org_roles:
                raise Forbidden("forbidden", "Requires the owner role.")
            raise NotFound("not-found", "No such organisation.")
        if not owned:
            raise Forbidden("forbidden", "Org owners and admins only.")
        visible = owned
    return await repository.list_entries(
        session,
        org_ids=visible,
        org_id=org_id,
        actor_id=actor_id,
        action=action,
        target_id=target_id,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
