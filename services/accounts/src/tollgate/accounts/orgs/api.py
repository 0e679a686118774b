"""HTTP transport of `/v1/orgs`, members and invitations: validate, authorise, delegate."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from tollgate.accounts.caller import CurrentActor, CurrentCaller
from tollgate.accounts.config import CurrentSettings
from tollgate.accounts.identity.service import deliverable_email
from tollgate.accounts.models import Membership, User
from tollgate.accounts.orgs import repository, service
from tollgate.accounts.orgs.schemas import (
    AcceptInvitationIn,
    InvitationIn,
    InvitationOut,
    MemberOut,
    MemberPatch,
    MembershipOut,
    OrgIn,
    OrgOut,
    OrgPatch,
)
from tollgate.kit.auth import Role, authorize_org
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    encode_cursor,
    next_cursor_of,
    uuid_cursor,
)
from tollgate.kit.problems import documented_problems

router = APIRouter(tags=["orgs"])


def _member_out(pair: tuple[Membership, User]) -> MemberOut:
    membership, user = pair
    return MemberOut(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=Role(membership.role),
        joined_at=membership.created_at,
    )


_ORG_ERRORS = documented_problems(
    {404: ("No such organisation (or the caller is not a member).", ["org-not-found"])}
)
_MEMBER_ERRORS = documented_problems({404: ("No such member of the org.", ["member-not-found"])})
_INVITATION_ERRORS = documented_problems(
    {404: ("No such invitation of the org.", ["invitation-not-found"])}
)


@router.post("/orgs", status_code=201, response_model=OrgOut)
async def create_org(
    settings: CurrentSettings, body: OrgIn, request: Request, actor: CurrentActor, db: DbSession
) -> OrgOut:
    """Create an org; the caller becomes its owner."""
    async with db.begin():
        org = await service.create_org(db, settings, actor, name=body.name)
    return OrgOut.model_validate(org)


@router.get("/orgs", response_model=Page[OrgOut])
async def list_orgs(
    caller: CurrentCaller, db: DbSession, cursor: Cursor = None, limit: PageSize = DEFAULT_PAGE_SIZE
) -> Page[OrgOut]:
    """The caller's orgs (admins: every org)."""
    async with db.begin():
        rows = await service.list_orgs(db, caller, after=uuid_cursor(cursor), limit=limit + 1)
    page, nxt = next_cursor_of(rows, limit, "id")
    return Page[OrgOut](items=[OrgOut.model_validate(o) for o in page], next_cursor=nxt)


@router.get("/orgs/{org_id}", response_model=OrgOut, responses=_ORG_ERRORS)
async def get_org(org_id: uuid.UUID, caller: CurrentCaller, db: DbSession) -> OrgOut:
    authorize_org(caller, org_id, Role.viewer)
    async with db.begin():
        org = await service.get_org(db, org_id)
    return OrgOut.model_validate(org)


@router.patch("/orgs/{org_id}", response_model=OrgOut, responses=_ORG_ERRORS)
async def update_org(
    org_id: uuid.UUID, body: OrgPatch, actor: CurrentActor, db: DbSession
) -> OrgOut:
    assert actor.principal is not None
    authorize_org(actor.principal, org_id, Role.owner)
    async with db.begin():
        org = await service.rename_org(db, actor, org_id, body.name)
    return OrgOut.model_validate(org)


@router.get("/orgs/{org_id}/members", response_model=Page[MemberOut])
async def list_members(
    org_id: uuid.UUID,
    caller: CurrentCaller,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[MemberOut]:
    authorize_org(caller, org_id, Role.viewer)
    async with db.begin():
        await service.get_org(db, org_id)
        rows = await repository.list_members(db, org_id, after=uuid_cursor(cursor), limit=limit + 1)
    page = rows[:limit]
    nxt = encode_cursor(page[-1][1].id) if len(rows) > limit else None
    return Page[MemberOut](items=[_member_out(r) for r in page], next_cursor=nxt)


@router.get("/orgs/{org_id}/members/{user_id}", response_model=MemberOut, responses=_MEMBER_ERRORS)
async def get_member(
    org_id: uuid.UUID, user_id: uuid.UUID, caller: CurrentCaller, db: DbSession
) -> MemberOut:
    authorize_org(caller, org_id, Role.viewer)
    async with db.begin():
        return _member_out(await service.get_member(db, org_id, user_id))


@router.patch(
    "/orgs/{org_id}/members/{user_id}", response_model=MemberOut, responses=_MEMBER_ERRORS
)
async def change_member_role(
    org_id: uuid.UUID, user_id: uuid.UUID, body: MemberPatch, actor: CurrentActor, db: DbSession
) -> MemberOut:
    """Change a member's role (owners); the last owner cannot be demoted."""
    assert actor.principal is not None
    authorize_org(actor.principal, org_id, Role.owner)
    async with db.begin():
        return _member_out(await service.change_role(db, actor, org_id, user_id, body.role))


@router.delete("/orgs/{org_id}/members/{user_id}", status_code=204, responses=_MEMBER_ERRORS)
async def remove_member(
    org_id: uuid.UUID, user_id: uuid.UUID, actor: CurrentActor, db: DbSession
) -> Response:
    """Remove a member (owners), or leave the org (any member, for itself)."""
    assert actor.principal is not None
    leaving = user_id == actor.principal.user_id
    authorize_org(actor.principal, org_id, Role.viewer if leaving else Role.owner)
    async with db.begin():
        await service.remove_member(db, actor, org_id, user_id)
    return Response(status_code=204)


@router.post("/orgs/{org_id}/invitations", status_code=201, response_model=InvitationOut)
async def invite_member(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    body: InvitationIn,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> InvitationOut:
    """Invite someone by email; the notifier emails the single-use link."""
    assert actor.principal is not None
    authorize_org(actor.principal, org_id, Role.owner)
    async with db.begin():
        invitation = await service.invite(
            db, settings, actor, org_id, email=deliverable_email(body.email), role=body.role
        )
    return InvitationOut.model_validate(invitation)


@router.get("/orgs/{org_id}/invitations", response_model=Page[InvitationOut])
async def list_invitations(
    org_id: uuid.UUID,
    caller: CurrentCaller,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[InvitationOut]:
    authorize_org(caller, org_id, Role.owner)
    async with db.begin():
        rows = await repository.list_invitations(
            db, org_id, after=uuid_cursor(cursor), limit=limit + 1
        )
    page, nxt = next_cursor_of(rows, limit, "id")
    return Page[InvitationOut](
        items=[InvitationOut.model_validate(i) for i in page], next_cursor=nxt
    )


@router.delete(
    "/orgs/{org_id}/invitations/{invitation_id}", status_code=204, responses=_INVITATION_ERRORS
)
async def revoke_invitation(
    org_id: uuid.UUID, invitation_id: uuid.UUID, actor: CurrentActor, db: DbSession
) -> Response:
    assert actor.principal is not None
    authorize_org(actor.principal, org_id, Role.owner)
    async with db.begin():
        await service.revoke_invitation(db, actor, org_id, invitation_id)
    return Response(status_code=204)


@router.post("/invitations/accept", response_model=MembershipOut)
async def accept_invitation(
    body: AcceptInvitationIn, actor: CurrentActor, db: DbSession, settings: CurrentSettings
) -> MembershipOut:
    """Join an org with an emailed invitation addressed to the caller."""
    async with db.begin():
        membership = await service.accept_invitation(db, settings, actor, token=body.token)
    return MembershipOut(org_id=membership.org_id, role=Role(membership.role))
