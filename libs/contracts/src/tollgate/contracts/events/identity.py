"""Who may do what: the replayed identity state accounts publishes for every service.

One compacted topic, `tollgate.accounts.users.v1` (key `user_id`): `UserState`, the
complete current authorisation state of one user (active or deactivated, platform
admin, every org membership with its role, when its sessions were last revoked, and
which single sessions ended lately).
Accounts writes it through its outbox in the same transaction as every change to any
of these (registration, org creation, invitation accepted, role changed, member
removed, deactivated, sessions revoked), and republishes every user at start-up so a
fresh broker gets the whole state. Billing, usage and the notifier replay the topic
from the beginning and authorise each request against it, not the token's snapshot.

One record per user (memberships inside it, not one record per membership) keeps a
user's state a single ordered value: a removal and a deactivation can never arrive
half-applied, and `version` (per user, increased under the user's row lock) orders
everything a consumer holds about that user. Never carries a password, token or email.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from tollgate.contracts.envelope import ContractModel, EventData, UtcDatetime
from tollgate.contracts.events.accounts import OrgRole


class OrgMembership(ContractModel):
    """One org a user belongs to, with the user's role there."""

    org_id: UUID = Field(description="Organisation id.")
    role: OrgRole = Field(description="The user's role in that organisation.")


class UserState(EventData):
    """The complete current authorisation state of one user.

    Sent by accounts (outbox) after every change to the user's activity, admin flag,
    memberships or sessions, and for every user when accounts starts. Kafka key:
    `user_id` on a compacted topic; consumers keep the highest `version` per user.
    """

    event_type = "tollgate.accounts.user.state.v1"
    key_field = "user_id"

    user_id: UUID = Field(description="User id (the `sub` of the user's access tokens).")
    active: bool = Field(description="False once deactivated: every token is refused.")
    is_admin: bool = Field(description="Platform admin (may act on every org).")
    memberships: list[OrgMembership] = Field(
        default_factory=list, description="Every org the user belongs to, with its role."
    )
    sessions_revoked_at: UtcDatetime | None = Field(
        None,
        description=(
            "Access tokens issued before this instant are refused (sign-out everywhere, "
            "password reset, deactivation); null when never revoked."
        ),
    )
    ended_sessions: list[UUID] = Field(
        default_factory=list,
        description=(
            "Sessions (the `sid` of access tokens) ended one by one (sign-out, a session "
            "ended from the sessions list, a reused refresh token) recently enough that "
            "their access tokens may not have expired yet: refuse those tokens."
        ),
    )
    version: int = Field(
        ge=0, description="Increases with every change of this user; drop stale versions."
    )
    updated_at: UtcDatetime = Field(description="When this state was written.")
