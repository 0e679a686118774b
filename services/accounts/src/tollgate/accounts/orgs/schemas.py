"""Request and response DTOs of `/v1/orgs` (orgs, members, invitations)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tollgate.accounts.identity.schemas import Email
from tollgate.kit.auth import Role
from tollgate.kit.requests import RequestModel

OrgName = Field(min_length=1, max_length=200, pattern=r"\S")


class OrgIn(RequestModel):
    name: str = OrgName


class OrgPatch(RequestModel):
    name: str = OrgName


class OrgOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


class MemberPatch(RequestModel):
    role: Role


class InvitationIn(RequestModel):
    email: Email
    role: Role = Role.viewer


class InvitationOut(BaseModel):
    """An invitation; the token itself is only ever emailed (sealed in the event)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org_id: uuid.UUID
    email: str
    role: Role
    invited_by: uuid.UUID
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


class AcceptInvitationIn(RequestModel):
    token: str = Field(min_length=1, max_length=200)


class MembershipOut(BaseModel):
    org_id: uuid.UUID
    role: Role
