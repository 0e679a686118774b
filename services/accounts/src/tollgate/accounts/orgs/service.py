"""Org rules: who may create orgs, invite, change roles and remove members.

An org always keeps at least one owner: demoting or removing the last one is a 409.
Callers authorise the org first (`authorize_org`); these functions also re-check
what depends on the target (e.g. the last owner) under row locks.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.audit import repository as audit_log
from tollgate.accounts.audit.service import record
from tollgate.accounts.caller import Actor
from tollgate.accounts.config import Settings
from tollgate.accounts.identity import repository as users
from tollgate.accounts.identity.service import (
    mark_email_verified,
    normalise_email,
    require_verified_email,
)
from tollgate.accounts.identity.state import publish_user_state
from tollgate.accounts.identity.tokens import new_secret, secret_hash
from tollgate.accounts.models import Invitation, Membership, Org, User
from tollgate.accounts.orgs import repository as repo
from tollgate.accounts.sealed import sealer
from tollgate.contracts.events.accounts import MemberInvited, OrgCreated, OrgRole
from tollgate.contracts.ids import uuid7
from tollgate.kit.audit import changed_fields
from tollgate.kit.auth import Principal, Role
from tollgate.kit.outbox import emit
from tollgate.kit.problems import BadRequest, Conflict, Forbidden, NotFound, Problem


def _principal(actor: Actor) -> Principal:
    assert actor.principal is not None
    return actor.principal


def not_found(what: str, slug: str) -> Problem:
    """404 with the object's own slug (`org-not-found`, ...)."""
    return NotFound(slug, f"No such {what}.")


async def _refuse_past_org_cap(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID
) -> None:
    """409 when the user (row locked by the caller) is in `orgs_max_per_user` orgs."""
    if len(await users.roles_of(session, user_id)) >= settings.orgs_max_per_user:
        raise Conflict(
            "too-many-orgs",
            f"A user may belong to at most {settings.orgs_max_per_user} organisations; "
            "leave one first.",
        )


async def create_org(session: AsyncSession, settings: Settings, actor: Actor, *, name: str) -> Org:
    """A new org with the caller as its owner, announced (`OrgCreated`, same transaction)
    with the owner's address and locale: the notifier mails the owner until the org sets
    its notification contacts."""
    principal = _principal(actor)
    if not settings.self_service_orgs and not principal.is_admin:
        raise Forbidden("forbidden", "Only admins create orgs.")
    owner = await users.lock_user(session, principal.user_id)
    if owner is None:
        raise not_found("user", "user-not-found")
    await _refuse_past_org_cap(session, settings, owner.id)
    org = await repo.insert_org(
        session, id=uuid7(), name=name.strip(), created_by=principal.user_id
    )
    await repo.upsert_membership(session, org.id, principal.user_id, Role.owner)
    await publish_user_state(session, principal.user_id)
    await emit(
        session,
        OrgCreated(
            org_id=org.id,
            org_name=org.name,
            owner_id=owner.id,
            owner_email=owner.email,
            owner_locale=owner.locale,
            created_at=datetime.now(UTC),
        ),
        subject=str(org.id),
    )
    await record(
        session,
        actor,
        "org.create",
        target_type="org",
        target_id=org.id,
        org_id=org.id,
        diff={"name": org.name},
    )
    return org


async def get_org(session: AsyncSession, org_id: uuid.UUID) -> Org:
    org = await repo.get_org(session, org_id)
    if org is None:
        raise not_found("organisation", "org-not-found")
    return org


async def rename_org(session: AsyncSession, actor: Actor, org_id: uuid.UUID, name: str) -> Org:
    org = await get_org(session, org_id)
    before = org.name
    await repo.update_org(session, org_id, name=name.strip())
    org.name = name.strip()
    await record(
        session,
        actor,
        "org.update",
        target_type="org",
        target_id=org_id,
        org_id=org_id,
        diff=changed_fields({"name": before}, {"name": org.name}),
    )
    return org


async def list_orgs(
    session: AsyncSession, principal: Principal, *, after: uuid.UUID | None, limit: int
) -> list[Org]:
    only = None if principal.is_admin else list(principal.org_roles)
    return await repo.list_orgs(session, only=only, after=after, limit=limit)


async def get_member(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Membership, User]:
    found = await repo.get_member(session, org_id, user_id)
    if found is None:
        raise not_found("member", "member-not-found")
    return found


async def _guard_last_owner(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    owners = await repo.lock_owners(session, org_id)
    if owners == [user_id]:
        raise Conflict("last-owner", "An org must keep at least one owner.")


async def change_role(
    session: AsyncSession, actor: Actor, org_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> tuple[Membership, User]:
    # The owners first, then the member: two owners demoting or removing each other
    # wait for one another instead of deadlocking.
    await repo.lock_owners(session, org_id)
    membership = await repo.lock_membership(session, org_id, user_id)
    if membership is None:
        raise not_found("member", "member-not-found")
    before = membership.role
    if before == Role.owner and role != Role.owner:
        await _guard_last_owner(session, org_id, user_id)
    await repo.upsert_membership(session, org_id, user_id, role)
    await publish_user_state(session, user_id)
    await record(
        session,
        actor,
        "member.role_change",
        target_type="user",
        target_id=user_id,
        org_id=org_id,
        diff=changed_fields({"role": before}, {"role": str(role)}),
    )
    return await get_member(session, org_id, user_id)


async def remove_member(
    session: AsyncSession, actor: Actor, org_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Remove a member. Removing one this org already removed changes nothing (a retried
    removal); a user who never belonged to the org stays a 404."""
    await repo.lock_owners(session, org_id)  # before the member, as `change_role` does
    membership = await repo.lock_membership(session, org_id, user_id)
    if membership is None:
        if await audit_log.has_entry(
            session, org_id=org_id, action="member.remove", target_id=str(user_id)
        ):
            return
        raise not_found("member", "member-not-found")
    if membership.role == Role.owner:
        await _guard_last_owner(session, org_id, user_id)
    await repo.delete_membership(session, org_id, user_id)
    await publish_user_state(session, user_id)
    await record(
        session,
        actor,
        "member.remove",
        target_type="user",
        target_id=user_id,
        org_id=org_id,
        diff={"role": membership.role},
    )


async def invite(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    org_id: uuid.UUID,
    *,
    email: str,
    role: Role,
) -> Invitation:
    """Create an invitation and announce it (the notifier emails the sealed token); the
    inviter needs a verified email (invitations are mail sent on its behalf)."""
    await require_verified_email(session, settings, actor, "invite people")
    org = await get_org(session, org_id)
    email = normalise_email(email)
    now = datetime.now(UTC)
    existing = await users.get_user_by_email(session, email)
    if existing is not None and await repo.get_member(session, org_id, existing.id):
        raise Conflict("already-member", "Already a member.")
    for pending in await repo.lock_pending_invitations_for(session, org_id, email, now):
        if await _may_still_invite(session, pending):
            raise Conflict("already-invited", "An invitation is already pending.")
        pending.revoked_at = now  # void (its sender may invite no more): replaced
    seal = sealer(settings)
    raw, hashed = new_secret()
    invitation = await repo.insert_invitation(
        session,
        id=uuid7(),
        org_id=org_id,
        email=email,
        role=str(role),
        token_hash=hashed,
        invited_by=_principal(actor).user_id,
        expires_at=now + timedelta(seconds=settings.invitation_ttl_seconds),
    )
    await emit(
        session,
        MemberInvited(
            org_id=org_id,
            org_name=org.name,
            email=email,
            role=OrgRole(str(role)),
            invited_by=invitation.invited_by,
            invitation_token_sealed=seal.seal(raw),
            expires_at=invitation.expires_at,
            locale=existing.locale if existing else "en",
        ),
        subject=str(invitation.id),
    )
    await record(
        session,
        actor,
        "member.invite",
        target_type="invitation",
        target_id=invitation.id,
        org_id=org_id,
        diff={"email": email, "role": str(role)},
    )
    return invitation


async def revoke_invitation(
    session: AsyncSession, actor: Actor, org_id: uuid.UUID, invitation_id: uuid.UUID
) -> None:
    invitation = await repo.lock_invitation(session, org_id, invitation_id)
    if invitation is None:
        raise not_found("invitation", "invitation-not-found")
    if invitation.revoked_at is not None:
        return  # a retried revoke: already in the state asked for
    if invitation.accepted_at is not None:
        raise Conflict("not-pending", "The invitation was accepted; remove the member instead.")
    invitation.revoked_at = datetime.now(UTC)
    await session.flush()
    await record(
        session,
        actor,
        "member.invitation_revoke",
        target_type="invitation",
        target_id=invitation_id,
        org_id=org_id,
    )


async def _may_still_invite(session: AsyncSession, invitation: Invitation) -> bool:
    """Whether the invitation's sender could send it now: an active owner of its org
    (membership locked, so a removal waits for the acceptance or comes first) or an
    active platform admin. An invitation does not outlive its sender's right to it."""
    sender = await users.get_user(session, invitation.invited_by)
    if sender is None or not sender.is_active:
        return False
    if sender.is_admin:
        return True
    membership = await repo.lock_membership(session, invitation.org_id, sender.id)
    return membership is not None and membership.role == Role.owner


async def accept_invitation(
    session: AsyncSession, settings: Settings, actor: Actor, *, token: str
) -> Membership:
    """Join the org of a pending invitation addressed to the caller's email."""
    principal = _principal(actor)
    now = datetime.now(UTC)
    invitation = await repo.lock_invitation_by_hash(session, secret_hash(token))
    if (
        invitation is None
        or invitation.accepted_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= now
        or invitation.email != principal.email.lower()
    ):
        raise BadRequest("invalid-token", "Invalid or expired invitation.")
    if not await _may_still_invite(session, invitation):
        raise BadRequest(
            "invitation-void",
            "Whoever sent this invitation can no longer invite people to this organisation; "
            "ask one of its owners for a new one.",
        )
    invitation.accepted_at = now
    # The token was mailed to this address, which is the caller's: the address is proven.
    joining = await users.lock_user(session, principal.user_id)
    assert joining is not None
    await mark_email_verified(session, actor, joining, proof="invitation")
    current = await repo.lock_membership(session, invitation.org_id, principal.user_id)
    if current is None:
        await _refuse_past_org_cap(session, settings, principal.user_id)
        await repo.upsert_membership(session, invitation.org_id, principal.user_id, invitation.role)
        await publish_user_state(session, principal.user_id)
    await record(
        session,
        actor,
        "member.join",
        target_type="user",
        target_id=principal.user_id,
        org_id=invitation.org_id,
        diff={"role": invitation.role},
    )
    found = await get_member(session, invitation.org_id, principal.user_id)
    return found[0]
