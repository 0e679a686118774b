"""Settings of the accounts service; every field can be set as `TOLLGATE_ACCOUNTS_<NAME>`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from tollgate.kit.clientip import parse_networks
from tollgate.kit.settings import ServiceSettings, settings_dependency


class Settings(ServiceSettings):
    """Accounts service settings."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_ACCOUNTS_", extra="ignore")

    port: int = Field(8081, ge=1, le=65535, description="HTTP port")
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/tollgate_accounts",
        description="this service's own database",
    )

    signing_key_file: Path = Field(
        Path("accounts-signing-keys.pem"),
        description="PEM file with the Ed25519 token signing keys (first = active; "
        "retired keys stay published until their tokens expire)",
    )
    signing_key_generate: bool = Field(
        False, description="create the signing key file when missing (local runs only)"
    )
    access_token_ttl_seconds: int = Field(900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(30 * 86_400, ge=3600)
    refresh_reuse_grace_seconds: int = Field(
        10,
        ge=0,
        le=120,
        description="a refresh token presented again this soon after its rotation gets a "
        "new pair of its own instead of ending its session as a leak (two console replicas, "
        "or two tabs, refreshing one session at once); 0: every reuse ends the session",
    )
    bcrypt_rounds: int = Field(12, ge=4, le=16, description="bcrypt cost factor")

    trusted_proxies: str = Field(
        "",
        description="comma-separated CIDRs of reverse proxies whose X-Forwarded-For is "
        "believed; empty: the TCP peer is the client",
    )
    proxy_secrets: str = Field(
        "",
        description="comma-separated secrets, newest first: a caller sending one in "
        "X-Tollgate-Proxy-Secret (the console) has its X-Forwarded-For believed as a "
        "trusted proxy's, from any address; empty: none",
    )

    login_window_seconds: int = Field(
        900, ge=10, description="window of the sign-in and verification throttles"
    )
    login_max_failures_per_ip_account: int = Field(
        5, ge=1, description="failed checks per window for one account from one client IP"
    )
    login_max_failures_per_account: int = Field(
        20, ge=1, description="failed checks per window for one account from all addresses"
    )
    login_max_failures_per_ip: int = Field(
        100, ge=1, description="failed checks per window from one client IP, all accounts"
    )

    registration_open: bool = Field(True, description="anyone may register a user")
    self_service_orgs: bool = Field(True, description="any user may create an org")
    admin_email: str | None = Field(None, description="platform admin ensured at start-up")
    admin_password: str | None = Field(
        None, description="password of `admin_email` when it has to be created (secret)"
    )

    password_reset_ttl_seconds: int = Field(3600, ge=60)
    password_reset_window_seconds: int = Field(
        3600, ge=10, description="per-IP password reset throttle window"
    )
    password_reset_max_per_ip: int = Field(
        20, ge=1, description="password reset requests per client IP per window"
    )
    orgs_max_per_user: int = Field(
        1_000,
        ge=1,
        le=10_000,
        description="organisations one user may belong to (creating or joining one more is "
        "409 `too-many-orgs`): a user's whole authorisation state is one event, which must "
        "stay well under the outbox's 1,000,000 bytes (65 bytes per membership)",
    )
    registration_max_per_ip: int = Field(
        100,
        ge=1,
        description="registrations (taken emails included) per client IP per "
        "`password_reset_window_seconds`: the answer says whether an email is taken",
    )
    email_verification_required: bool = Field(
        True,
        description="a user who has not verified its email may not create live API keys "
        "or invite people (it may sign in and do everything else)",
    )
    email_verification_ttl_seconds: int = Field(
        48 * 3600, ge=300, description="lifetime of an emailed verification link"
    )
    email_verification_resend_window_seconds: int = Field(
        3600, ge=10, description="window of the per-user verification resend throttle"
    )
    email_verification_resend_max: int = Field(
        3, ge=1, description="verification emails a user may ask for per window"
    )
    invitation_ttl_seconds: int = Field(7 * 86_400, ge=3600)
    key_rotation_grace_seconds: int = Field(
        86_400, ge=0, description="default time an old key secret keeps working after rotate"
    )

    key_expiry_warning_seconds: int = Field(
        7 * 86_400, ge=0, description="send KeyExpiring this long before a key expires"
    )
    key_job_interval_seconds: float = Field(60.0, gt=0, description="expiry job period")

    allow_private_upstreams: bool = Field(
        False,
        description="allow loopback and private-range upstream URLs (local runs); "
        "link-local and metadata addresses are always refused",
    )
    resolve_upstream_hosts: bool = Field(
        True, description="resolve upstream host names and refuse blocked addresses"
    )
    audit_retention_days: int = Field(
        400,
        ge=0,
        description="audit entries older than this many days are purged (0: kept forever)",
    )
    audit_purge_interval_seconds: float = Field(
        3600.0, gt=0, description="how often the audit retention purge runs"
    )
    consume_audit_records: bool = Field(
        True,
        description="store the audit records billing, usage and the notifier publish on "
        "tollgate.audit.records.v1 in the audit log (consumer group accounts-audit)",
    )
    public_catalog: bool = Field(
        True,
        description="`/v1/catalog` (active and deprecated APIs, their consumer OpenAPI "
        "documents) answers without a token; false = org members and admins only",
    )
    catalog_window_seconds: int = Field(
        60, ge=1, description="window of the per-IP limit of anonymous `/v1/catalog…` calls"
    )
    catalog_max_per_ip: int = Field(
        300,
        ge=1,
        description="anonymous `/v1/catalog…` calls per client IP per window (429 past it); "
        "calls with a valid token are not counted",
    )
    gateway_url: str = Field(
        "http://127.0.0.1:8080",
        description="the gateway's public URL, the `servers` of the consumer OpenAPI documents",
    )
    max_openapi_bytes: int = Field(1_048_576, ge=1024, description="OpenAPI import cap")
    max_published_openapi_bytes: int = Field(
        524_288,
        ge=1024,
        description="largest OpenAPI document (compact JSON) published to gateways in "
        "ApiUpserted for the mock and request validation; larger ones stay in the registry",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # a typo must stop the start, not trust nobody silently
        return value


CurrentSettings = Annotated[Settings, Depends(settings_dependency(Settings))]
"""FastAPI dependency: the running app's settings."""
