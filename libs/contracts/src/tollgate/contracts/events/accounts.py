"""Events the accounts service publishes, all through its transactional outbox.

Three topics:

- `tollgate.accounts.keys.v1` (compacted, key `key_id`): `KeyUpserted`, the full
  current state of an API key after every change; a tombstone deletes the key. The
  gateway rebuilds its key table from this topic. It carries only the key's hash.
- `tollgate.accounts.apis.v1` (compacted, key `api_id`): `ApiUpserted`, the full
  current state of an API in the registry, routes included. Upstream credentials are
  sealed (encrypted for the gateway), never plaintext.
- `tollgate.accounts.events.v1` (delete, key `org_id`, `user_id` or `api_id`): things
  that happened (user registered, password reset requested, org created, member invited, key
  created / rotated / revoked / expiring, an API's imported document changed),
  consumed by the notifier for email and webhooks.
  Single-use tokens are sealed for the notifier, never plaintext.

State messages carry `version`, increasing per entity; consumers ignore a message
whose version is not greater than the one they hold.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, Field

from tollgate.contracts.envelope import CREDITS_MAX, ContractModel, EventData, UtcDatetime


def _canonical_cidr(value: str) -> str:
    return str(ipaddress.ip_network(value.strip(), strict=False))


Cidr = Annotated[str, AfterValidator(_canonical_cidr)]
"""An IPv4 or IPv6 network in CIDR notation (a bare address means a single host)."""


class KeyEnvironment(StrEnum):
    """Whether a key is for production traffic or for testing."""

    LIVE = "live"
    TEST = "test"


class ApiStatus(StrEnum):
    """Lifecycle of an API in the registry."""

    ACTIVE = "active"
    DEPRECATED = "deprecated"  # still served, with Deprecation/Sunset headers
    RETIRED = "retired"  # no longer served: the gateway rejects with api_retired


class OrgRole(StrEnum):
    """A member's role within an organisation."""

    OWNER = "owner"
    DEVELOPER = "developer"
    VIEWER = "viewer"


class Limits(ContractModel):
    """Rate limits over sliding windows; a window left null is unlimited.

    Used on keys, APIs and routes; a request must pass every level that applies.
    """

    per_second: int | None = Field(None, ge=1, description="Requests per second.")
    per_minute: int | None = Field(None, ge=1, description="Requests per minute.")
    per_hour: int | None = Field(None, ge=1, description="Requests per hour.")
    per_day: int | None = Field(None, ge=1, description="Requests per day.")
    per_month: int | None = Field(
        None,
        ge=1,
        description=(
            "Requests per month, enforced as a sliding 30-day window like the others; "
            "quota alerts measure the UTC calendar month against it."
        ),
    )


class RetiredSecret(ContractModel):
    """A previous secret of a rotated key, still accepted during the grace period."""

    key_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 / HMAC-SHA256 of the old raw key."
    )
    expires_at: UtcDatetime = Field(description="When the old secret stops being accepted.")


class KeyUpserted(EventData):
    """The complete current state of an API key.

    Sent by accounts (outbox) whenever a key is created, changed, rotated, revoked or
    disabled. Kafka key: `key_id` on a compacted topic; a tombstone (null value) means
    the key was deleted. Never carries the raw key, only its hash.
    """

    event_type = "tollgate.accounts.key.upserted.v1"
    key_field = "key_id"

    key_id: UUID = Field(description="Key id.")
    org_id: UUID = Field(description="Organisation that owns the key.")
    key_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Hex SHA-256 (or HMAC-SHA256 with the server pepper) of the raw key.",
    )
    prefix: str = Field(description="Display prefix of the key, e.g. `tg_live_AbCd`.")
    last4: str = Field(min_length=4, max_length=4, description="Last 4 characters of the key.")
    name: str = Field(description="Human name given to the key.")
    environment: KeyEnvironment = Field(description="Live or test key.")
    enabled: bool = Field(description="False when the key is disabled (rejected with 403).")
    expires_at: UtcDatetime | None = Field(None, description="Expiry time; null never expires.")
    scopes: list[str] = Field(default_factory=list, description="Scopes granted to the key.")
    allowed_api_ids: list[UUID] = Field(
        default_factory=list, description="APIs the key may call; empty means all APIs."
    )
    ip_allowlist: list[Cidr] = Field(
        default_factory=list,
        description="Client networks (IPv4/IPv6 CIDR) allowed to use the key; empty = any.",
    )
    limits: Limits = Field(default_factory=Limits, description="Per-key rate limits.")
    retired_secrets: list[RetiredSecret] = Field(
        default_factory=list,
        description="Hashes of previous secrets still accepted until their expiry (rotation).",
    )
    revoked: bool = Field(False, description="True once revoked; revocation is permanent.")
    version: int = Field(
        ge=0, description="Increases with every change of this key; drop stale versions."
    )
    updated_at: UtcDatetime = Field(description="When this state was written.")


class SandboxSettings(ContractModel):
    """Mock, test-mode and contract-checking behaviour of an API or one of its routes.

    On an API every field has its value; on a route a null field inherits the API's.
    """

    mock: bool | None = Field(
        None,
        description=(
            "Answer every key (live too) from the built-in mock generated from the "
            "OpenAPI document instead of the upstream."
        ),
    )
    mock_stateful: bool | None = Field(
        None,
        description=(
            "The mock keeps created resources per key (POST then GET/PATCH/DELETE/list), "
            "bounded in memory."
        ),
    )
    mock_latency_ms: int | None = Field(
        None, ge=0, le=60_000, description="Artificial delay before each mocked answer."
    )
    mock_error_percent: int | None = Field(
        None,
        ge=0,
        le=100,
        description="Share of mocked calls answered with a 5xx for resilience testing.",
    )
    validate_requests: bool | None = Field(
        None,
        description=(
            "Check method, path, query, headers and JSON body against the OpenAPI "
            "document before forwarding; violations are a 400, never forwarded or charged."
        ),
    )
    validate_responses: bool | None = Field(
        None,
        description=(
            "In test mode, check upstream answers against the document and report "
            "violations (contract drift) in the request event; answers are never altered."
        ),
    )


class RouteSpec(ContractModel):
    """One route of an API: a method and path template with its own price and limits."""

    route_id: UUID = Field(description="Route id.")
    method: str = Field(
        pattern=r"^([A-Z]+|\*)$", description="Uppercase HTTP method, or `*` for any."
    )
    path_template: str = Field(
        pattern=r"^/", description="Path template below the API slug, e.g. `/pets/{petId}`."
    )
    price: int | None = Field(
        None,
        ge=0,
        le=CREDITS_MAX,
        description="Credits per call; null uses the API's default price.",
    )
    limits: Limits = Field(default_factory=Limits, description="Per-route rate limits.")
    required_scopes: list[str] = Field(
        default_factory=list, description="Scopes a key must hold to call this route."
    )
    sandbox: SandboxSettings | None = Field(
        None, description="Overrides of the API's sandbox settings for this route."
    )
    deprecated: bool = Field(
        False,
        description="Whether the route is deprecated: calls to it get a `Deprecation` header "
        "(RFC 9745). Added within v1; absent in older events (false).",
    )
    deprecated_at: UtcDatetime | None = Field(
        None,
        description="When the route was deprecated (the `Deprecation` date); null when it is "
        "not, or for events that predate the field (then the API's `updated_at` is used).",
    )
    sunset_at: UtcDatetime | None = Field(
        None,
        description="When the route is retired (`Sunset` header, RFC 8594); from then on the "
        "gateway answers its calls 410. Null: no date. Added within v1.",
    )


class ApiUpserted(EventData):
    """The complete current state of an API in the registry, routes included.

    Sent by accounts (outbox) whenever an API or one of its routes changes. Kafka key:
    `api_id` on a compacted topic; a tombstone (null value) means the API was deleted.
    Upstream credentials appear only sealed for the gateway.
    """

    event_type = "tollgate.accounts.api.upserted.v1"
    key_field = "api_id"

    api_id: UUID = Field(description="API id.")
    slug: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="URL slug: the gateway serves the API at `/<slug>/...`.",
    )
    name: str = Field(description="Human name of the API.")
    api_version: str = Field(description="The API's own version label, e.g. `v1` or `2024-06`.")
    upstream_url: str = Field(
        pattern=r"^https?://", description="Base URL requests are forwarded to."
    )
    status: ApiStatus = Field(description="Lifecycle status.")
    deprecated_at: UtcDatetime | None = Field(
        None, description="When the API was deprecated (`Deprecation` header)."
    )
    sunset_at: UtcDatetime | None = Field(
        None, description="When the API will be retired (`Sunset` header)."
    )
    timeout_ms: int = Field(ge=1, description="Upstream timeout; exceeded means 504.")
    price: int = Field(
        ge=0, le=CREDITS_MAX, description="Default credits per call for routes without a price."
    )
    charge_failed_calls: bool = Field(
        description="Whether calls answered with 5xx by the upstream are charged."
    )
    limits: Limits = Field(default_factory=Limits, description="Rate limits across the API.")
    routes: list[RouteSpec] = Field(
        default_factory=list, description="Routes; empty means every path is allowed."
    )
    upstream_headers_sealed: str | None = Field(
        None,
        description=(
            "Headers injected upstream (credentials), encrypted for the gateway; "
            "null when none. Never plaintext."
        ),
    )
    sandbox_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description=(
            "Base URL `tg_test_` keys are forwarded to; null: test keys get the mock. "
            "Live keys never reach it."
        ),
    )
    sandbox: SandboxSettings = Field(
        default_factory=SandboxSettings,
        description="Mock and validation settings (null fields: off).",
    )
    openapi_document: dict[str, Any] | None = Field(
        None,
        description=(
            "The imported OpenAPI 3.x document the mock and validation are built from; "
            "null when none was imported or it is larger than the registry publishes."
        ),
    )
    version: int = Field(
        ge=0, description="Increases with every change of this API; drop stale versions."
    )
    updated_at: UtcDatetime = Field(description="When this state was written.")


class UserRegistered(EventData):
    """A user account was created.

    Sent by accounts (outbox) on registration; the notifier sends a welcome email.
    Kafka key: `user_id`.
    """

    event_type = "tollgate.accounts.user.registered.v1"
    key_field = "user_id"

    user_id: UUID = Field(description="New user's id.")
    email: str = Field(description="User's email address.")
    locale: str = Field(description="Preferred locale (BCP 47), e.g. `en` or `de-CH`.")
    registered_at: UtcDatetime = Field(description="When the account was created.")


class PasswordResetRequested(EventData):
    """A user asked for a password reset.

    Sent by accounts (outbox); the notifier emails the reset link. Kafka key: `user_id`.
    The single-use token is sealed for the notifier, never plaintext.
    """

    event_type = "tollgate.accounts.password_reset.requested.v1"
    key_field = "user_id"

    user_id: UUID = Field(description="User who asked for the reset.")
    email: str = Field(description="Address the reset link is sent to.")
    locale: str = Field(description="Preferred locale (BCP 47) for the email.")
    reset_token_sealed: str = Field(
        description="Single-use reset token, encrypted for the notifier; never plaintext."
    )
    expires_at: UtcDatetime = Field(description="When the token stops working.")


class EmailVerificationRequested(EventData):
    """A new user's email address is to be verified.

    Sent by accounts (outbox) on registration and when the user asks for a new link;
    the notifier emails the verification link. Kafka key: `user_id`. The single-use
    token is sealed for the notifier, never plaintext.
    """

    event_type = "tollgate.accounts.email_verification.requested.v1"
    key_field = "user_id"

    user_id: UUID = Field(description="User whose address is to be verified.")
    email: str = Field(description="Address the verification link is sent to.")
    locale: str = Field(description="Preferred locale (BCP 47) for the email.")
    verification_token_sealed: str = Field(
        description="Single-use verification token, encrypted for the notifier; never plaintext."
    )
    expires_at: UtcDatetime = Field(description="When the token stops working.")


class OrgCreated(EventData):
    """An organisation was created; its creator is its first owner.

    Sent by accounts (outbox, in the org's own transaction) when an org is created; the
    notifier makes the owner the org's notification contact while the org has none, so
    the org's first notices (e.g. credits exhausted) reach someone. Kafka key: `org_id`.
    """

    event_type = "tollgate.accounts.org.created.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="The new organisation's id.")
    org_name: str = Field(description="Organisation's display name, for emails.")
    owner_id: UUID = Field(description="User who created the org, its first owner.")
    owner_email: str = Field(description="The owner's email address.")
    owner_locale: str = Field(description="The owner's preferred locale (BCP 47) for emails.")
    created_at: UtcDatetime = Field(description="When the org was created.")


class MemberInvited(EventData):
    """Someone was invited to join an organisation.

    Sent by accounts (outbox); the notifier emails the invitation. Kafka key: `org_id`.
    The invitation token is sealed for the notifier, never plaintext.
    """

    event_type = "tollgate.accounts.member.invited.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation the invitation is for.")
    org_name: str = Field(description="Organisation's display name, for the email.")
    email: str = Field(description="Invitee's email address.")
    role: OrgRole = Field(description="Role the invitee will get on accepting.")
    invited_by: UUID = Field(description="User who sent the invitation.")
    invitation_token_sealed: str = Field(
        description="Single-use invitation token, encrypted for the notifier; never plaintext."
    )
    expires_at: UtcDatetime = Field(description="When the invitation stops working.")
    locale: str = Field(description="Locale (BCP 47) for the email.")


class _KeyLifecycle(EventData):
    """Fields shared by the key lifecycle notifications (never the key itself)."""

    key_field = "org_id"

    org_id: UUID = Field(description="Organisation that owns the key.")
    key_id: UUID = Field(description="Key id.")
    name: str = Field(description="Human name of the key.")
    prefix: str = Field(description="Display prefix of the key, e.g. `tg_live_AbCd`.")
    last4: str = Field(min_length=4, max_length=4, description="Last 4 characters of the key.")
    actor_id: UUID | None = Field(
        None, description="User who acted; null when the platform acted (e.g. a job)."
    )


class KeyCreated(_KeyLifecycle):
    """An API key was created.

    Sent by accounts (outbox) for notifications and webhooks. Kafka key: `org_id`.
    """

    event_type = "tollgate.accounts.key.created.v1"


class KeyRotated(_KeyLifecycle):
    """An API key got a new secret; the old one keeps working until `grace_until`.

    Sent by accounts (outbox) for notifications and webhooks. Kafka key: `org_id`.
    """

    event_type = "tollgate.accounts.key.rotated.v1"

    grace_until: UtcDatetime = Field(description="When the previous secret stops working.")


class KeyRevoked(_KeyLifecycle):
    """An API key was revoked; it is rejected from now on.

    Sent by accounts (outbox) for notifications and webhooks. Kafka key: `org_id`.
    """

    event_type = "tollgate.accounts.key.revoked.v1"


class KeyExpiring(_KeyLifecycle):
    """An API key will expire soon.

    Sent by accounts (outbox) from its expiry job, ahead of `expires_at`, so the owner
    can rotate in time. Kafka key: `org_id`.
    """

    event_type = "tollgate.accounts.key.expiring.v1"

    expires_at: UtcDatetime = Field(description="When the key expires.")


class ApiChangeKind(StrEnum):
    """What happened to an operation between two imported OpenAPI documents."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


class BreakingRule(StrEnum):
    """Why a change breaks existing callers."""

    REMOVED_OPERATION = "removed-operation"
    NEW_REQUIRED_PARAMETER = "new-required-parameter"
    NARROWED_TYPE = "narrowed-type"
    REMOVED_RESPONSE_FIELD = "removed-response-field"


class ApiChange(ContractModel):
    """One change of one operation (`method` + `path`); breaking when `rule` is set."""

    kind: ApiChangeKind = Field(description="Operation added, removed or changed.")
    method: str = Field(description="HTTP method, upper case.")
    path: str = Field(description="Path template as the newer document spells it.")
    rule: BreakingRule | None = Field(
        None, description="The breaking-change rule this change falls under; null if compatible."
    )
    location: str | None = Field(
        None,
        description=(
            "Where in the operation: `query`, `header`, `path`, `cookie`, `body` or "
            "`response`; null for a whole operation."
        ),
    )
    name: str | None = Field(
        None,
        description=(
            "Parameter name or dotted property path (`[]` marks array items); "
            "null for a whole operation or body."
        ),
    )
    status: str | None = Field(None, description="Response status code, for response changes.")
    before: str | None = Field(None, description="The older type, enum or format, if any.")
    after: str | None = Field(None, description="The newer type, enum or format, if any.")

    @property
    def breaking(self) -> bool:
        """True when existing callers may break."""
        return self.rule is not None


class ApiChanged(EventData):
    """An OpenAPI import changed operations customers can call.

    A new OpenAPI document was imported for an API. Sent by accounts (outbox) on import
    when the document differs from the previous one in an operation customers may see
    (not `x-internal`; header changes of the credentials the gateway injects left out);
    the notifier delivers it to every org's webhooks subscribed to it. Kafka key:
    `api_id`.
    """

    event_type = "tollgate.accounts.api.changed.v1"
    key_field = "api_id"

    api_id: UUID = Field(description="API whose document changed.")
    slug: str = Field(description="The API's URL slug at the gateway.")
    name: str = Field(description="The API's display name.")
    api_version: str = Field(description="The API's own version label, e.g. `2.1.0`.")
    version: int = Field(ge=0, description="Registry version of the API after the import.")
    changes: list[ApiChange] = Field(
        description=(
            "The changes customers may see, breaking ones first; at most 1000 (the API's "
            "changelog, `GET /v1/apis/{id}/changelog`, keeps every change)."
        )
    )
    breaking: int = Field(ge=0, description="How many of `changes` are breaking.")
    changed_at: UtcDatetime = Field(description="When the document was imported.")
