"""Tables of the accounts service (its own database; migrations in `migrations/`).

Secrets never rest here in the clear: passwords are bcrypt hashes, API keys,
refresh/reset/verification/invitation tokens and recovery codes are SHA-256/HMAC hashes, and
upstream credential headers and TOTP seeds are sealed (`tollgate.kit.sealing`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tollgate.kit.outbox import outbox_table


class Base(DeclarativeBase):
    """Declarative base of the accounts tables."""


outbox = outbox_table(Base.metadata)

_now = func.now()


class User(Base):
    """A human who signs in (platform admin or org member)."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(35), default="en")
    password_hash: Mapped[str] = mapped_column(String(100))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    """The user proved the address (verification link, password reset or invitation)."""
    totp_secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sessions_revoked_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    state_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Version of the user's state on `tollgate.accounts.users.v1` (see identity.state)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)


class RecoveryCode(Base):
    """A single-use 2FA recovery code (hash only)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RefreshToken(Base):
    """One refresh token of a session family; rotated on every use."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ThrottleCounter(Base):
    """Attempts counted for one throttle subject in one fixed window: failed password
    and one-time-code checks per account, per (client IP, account) and per client IP,
    and password reset requests per client IP. Taken with one atomic upsert before the
    check, so replicas share the count and a concurrent burst cannot overshoot it."""

    __tablename__ = "throttle_counters"
    __table_args__ = (Index("ix_throttle_counters_window_start", "window_start"),)

    scope: Mapped[str] = mapped_column(String(20), primary_key=True)
    subject: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class PasswordReset(Base):
    """A single-use password reset token (hash only)."""

    __tablename__ = "password_resets"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EmailVerification(Base):
    """A single-use email verification token (hash only)."""

    __tablename__ = "email_verifications"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Org(Base):
    """An organisation: the tenant, a client of the platform."""

    __tablename__ = "orgs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)


class Membership(Base):
    """A user's role in an org."""

    __tablename__ = "memberships"

    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)


class Invitation(Base):
    """An invitation to join an org, accepted with an emailed single-use token."""

    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("orgs.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKey(Base):
    """An API key of an org; only its hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("orgs.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    environment: Mapped[str] = mapped_column(String(10))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    allowed_api_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), default=list
    )
    ip_allowlist: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    key_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    expiry_warned_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class RetiredKeySecret(Base):
    """A previous secret of a rotated key, accepted until `expires_at`."""

    __tablename__ = "api_key_retired_secrets"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Api(Base):
    """An API in the platform registry (served by the gateway at `/<slug>/...`)."""

    __tablename__ = "apis"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    api_version: Mapped[str] = mapped_column(String(50))
    upstream_url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(20))
    deprecated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sunset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    timeout_ms: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(BigInteger)
    charge_failed_calls: Mapped[bool] = mapped_column(Boolean)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    upstream_headers_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    upstream_header_names: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    openapi_document: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    sandbox_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    sandbox: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class ApiRoute(Base):
    """A route of an API: method + path template with its own price, limits, scopes."""

    __tablename__ = "api_routes"
    __table_args__ = (UniqueConstraint("api_id", "method", "path_template"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    api_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("apis.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(10))
    path_template: Mapped[str] = mapped_column(String(1024))
    price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    required_scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    operation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sandbox: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    deprecated: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    deprecated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sunset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiChangelogEntry(Base):
    """The operation changes one OpenAPI import made to an API (`apis.changelog`);
    written only when something changed, never updated."""

    __tablename__ = "api_changelog"
    __table_args__ = (Index("ix_api_changelog_api_id", "api_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    """UUIDv7: newer imports sort after older ones."""
    api_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("apis.id", ondelete="CASCADE")
    )
    api_version: Mapped[str] = mapped_column(String(50))
    """The API's own version label when the document was imported."""
    version: Mapped[int] = mapped_column(BigInteger)
    """The registry version of the API the import produced."""
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    """`ApiChange` objects (the contract's shape), breaking ones first."""
    breaking: Mapped[int] = mapped_column(Integer)
    public_changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    """The part of `changes` customers may see (the public changelog), decided at import
    against the documents and routes each change came from (`changelog.public_changes`).
    Entries older than migration 0013 have none: nothing could prove them public."""


class AuditEntry(Base):
    """One mutating call: who did what to which object, with a secret-free diff.
    Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE, except the retention
    purge's DELETE of entries older than its cut-off (migration 0010, `audit.retention`)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_org_id", "org_id", "id"), Index("ix_audit_log_at", "at"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    org_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    diff: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    service: Mapped[str] = mapped_column(String(20), default="accounts", server_default="accounts")
    """The service that accepted the change (records of other services arrive by Kafka)."""
    event_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    """The CloudEvents id of a record consumed from `tollgate.audit.records.v1`
    (redelivery inserts nothing); null for accounts' own entries."""
