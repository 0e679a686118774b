"""Every SQL statement on orgs, memberships and invitations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Invitation, Membership, Org, User


async def insert_org(session: AsyncSession, **values: Any) -> Org:
    org = Org(**values)
    session.add(org)
    await session.flush()
    return org


async def get_org(session: AsyncSession, org_id: uuid.UUID) -> Org | None:
    return await session.get(Org, org_id)


async def get_org_by_name(session: AsyncSession, name: str) -> Org | None:
    stmt = select(Org).where(Org.name == name).order_by(Org.id).limit(1)
    return (await session.scalars(stmt)).first()


async def update_org(session: AsyncSession, org_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(Org).where(Org.id == org_id).values(**values))


async def list_orgs(
    session: AsyncSession, *, only: Sequence[uuid.UUID] | None, after: uuid.UUID | None, limit: int
) -> list[Org]:
    stmt = select(Org).order_by(Org.id).limit(limit)
    if only is not None:
        stmt = stmt.where(Org.id.in_(list(only)))
    if after is not None:
        stmt = stmt.where(Org.id > after)
    return list((await session.scalars(stmt)).all())


async def upsert_membership(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> None:
    existing = await session.get(Membership, (org_id, user_id))
    if existing is None:
        session.add(Membership(org_id=org_id, user_id=user_id, role=role))
    else:
        existing.role = role
    await session.flush()


async def lock_membership(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> Membership | None:
    stmt = (
        select(Membership)
        .where(Membership.org_id == org_id, Membership.user_id == user_id)
        .with_for_update()
    )
    return (await session.scalars(stmt)).one_or_none()


async def lock_owners(session: AsyncSession, org_id: uuid.UUID) -> list[uuid.UUID]:
    stmt = (
        select(Membership.user_id)
        .where(Membership.org_id == org_id, Membership.role == "owner")
        .order_by(Membership.user_id)  # one order for every caller: no deadlock
        .with_for_update()
    )
    return list((await session.scalars(stmt)).all())


async def delete_membership(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await session.execute(
        delete(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )


async def list_members(
    session: AsyncSession, org_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[tuple[Membership, User]]:
    stmt = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id)
        .order_by(Membership.user_id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Membership.user_id > after)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def get_member(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Membership, User] | None:
    stmt = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id, Membership.user_id == user_id)
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row else None


async def insert_invitation(session: AsyncSession, **values: Any) -> Invitation:
    invitation = Invitation(**values)
    session.add(invitation)
    await session.flush()
    return invitation


async def lock_pending_invitations_for(
    session: AsyncSession, org_id: uuid.UUID, email: str, now: datetime
) -> list[Invitation]:
    stmt = (
        select(Invitation)
        .where(
            Invitation.org_id == org_id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .with_for_update()
    )
    return list(await session.scalars(stmt))


async def lock_invitation_by_hash(session: AsyncSession, token_hash: str) -> Invitation | None:
    stmt = select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def lock_invitation(
    session: AsyncSession, org_id: uuid.UUID, invitation_id: uuid.UUID
) -> Invitation | None:
    stmt = (
        select(Invitation)
        .where(Invitation.id == invitation_id, Invitation.org_id == org_id)
        .with_for_update()
    )
    return (await session.scalars(stmt)).one_or_none()


async def list_invitations(
    session: AsyncSession, org_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Invitation]:
    stmt = (
        select(Invitation).where(Invitation.org_id == org_id).order_by(Invitation.id).limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Invitation.id > after)
    return list((await session.scalars(stmt)).all())
