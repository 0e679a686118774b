"""The typed client of the backing services' REST APIs: the one place their response
shapes are known.

Every call goes out with the signed-in user's own access token, never with a
privileged credential: the console can do exactly what the user could do with curl.
Responses are parsed into the small models below (unknown fields ignored), so a change
of shape in a backing API (e.g. list envelopes) is absorbed here and nowhere else.

Failures come back as two exceptions: `BackendProblem` (the service answered with an
error, usually problem+json, shown inline next to the form or panel) and
`BackendDown` (it did not answer, or answered 5xx: the panel says the service is
unavailable and the rest of the page renders).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from tollgate.console.config import Settings
from tollgate.kit.clientip import PROXY_SECRET_HEADER

Service = Literal["accounts", "usage", "billing", "notifier"]
T = TypeVar("T")

VISITOR: ContextVar[str | None] = ContextVar("console_visitor", default=None)
"""The browser's address chain for the page being served, sent as `X-Forwarded-For`
with every backing call (the console's web middleware sets it): accounts' per-IP
throttles (sign-in, password reset, the public catalog) and its audit records then see
the visitor rather than the console, when the console sends accounts one of its
`proxy_secrets` (`accounts_proxy_secret`) or is one of its `trusted_proxies`;
otherwise they see the console, which all visitors would share."""


class BackendDown(Exception):
    """A backing service did not answer usefully (connection error, timeout, 5xx)."""

    def __init__(self, service: Service) -> None:
        super().__init__(f"{service} is unavailable")
        self.service = service


class LiveStreamsFull(Exception):
    """The console relays as many live streams as `live_streams_max` allows."""


class BackendProblem(Exception):
    """A backing service refused the request (4xx), with its problem+json details."""

    def __init__(self, service: Service, status: int, body: dict[str, Any]) -> None:
        self.service = service
        self.status = status
        self.title = str(body.get("title") or "Error")
        self.detail = str(body.get("detail") or "")
        self.body = body
        super().__init__(f"{service} {status}: {self.detail or self.title}")

    @property
    def field_errors(self) -> dict[str, str]:
        """Validation messages by field name (FastAPI/kit `errors` extension)."""
        out: dict[str, str] = {}
        for error in self.body.get("errors") or []:
            if isinstance(error, dict):
                loc = [str(p) for p in error.get("loc", []) if p not in ("body", "query")]
                if loc:
                    out.setdefault(loc[0], str(error.get("msg", "")))
        return out

    @property
    def slug(self) -> str:
        """The problem's stable slug (the last part of its `type` URI)."""
        return str(self.body.get("type") or "").rsplit("/", 1)[-1]

    @property
    def message(self) -> str:
        """What to show a user: the detail when there is one, else the title."""
        return self.detail or self.title


class Shape(BaseModel):
    """A response shape: unknown fields are ignored, so additive changes don't break."""

    model_config = ConfigDict(extra="ignore")


class Page(Shape, Generic[T]):
    """One page of a list, whatever envelope the service uses."""

    items: list[T]
    next_cursor: str | None = None


class Tokens(Shape):
    access_token: str
    expires_in: int
    refresh_token: str


class OrgRole(Shape):
    org_id: uuid.UUID
    role: str


class Me(Shape):
    id: uuid.UUID
    email: str
    name: str
    locale: str
    is_admin: bool
    totp_enabled: bool
    orgs: list[OrgRole]
    email_verified: bool = True

    def role_in(self, org_id: uuid.UUID) -> str | None:
        return next((o.role for o in self.orgs if o.org_id == org_id), None)


class TotpEnrolment(Shape):
    secret: str
    otpauth_uri: str


class RecoveryCodes(Shape):
    recovery_codes: list[str]


class Member(Shape):
    user_id: uuid.UUID
    email: str
    name: str
    role: str
    joined_at: datetime


class Invitation(Shape):
    id: uuid.UUID
    email: str
    role: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None


class AuditEntry(Shape):
    id: int
    at: datetime
    actor_id: uuid.UUID | None
    org_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str | None
    diff: dict[str, Any] = Field(default_factory=dict)
    ip: str | None = None
    request_id: str | None = None


class Org(Shape):
    id: uuid.UUID
    name: str
    created_at: datetime


class Key(Shape):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    prefix: str
    last4: str
    environment: str
    enabled: bool
    revoked: bool
    revoked_at: datetime | None
    expires_at: datetime | None
    scopes: list[str]
    allowed_api_ids: list[uuid.UUID]
    limits: dict[str, int]
    ip_allowlist: list[str] = Field(default_factory=list)
    created_at: datetime

    def status(self, now: datetime) -> str:
        """revoked, expired, disabled or active (in that order of precedence)."""
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active" if self.enabled else "disabled"


class IssuedKey(Key):
    key: str


class Route(Shape):
    id: uuid.UUID
    method: str
    path_template: str
    price: int | None = None
    limits: dict[str, int] = Field(default_factory=dict)
    required_scopes: list[str] = Field(default_factory=list)
    operation_id: str | None = None
    sandbox: dict[str, Any] | None = None  # overrides of the API's; null: none
    deprecated: bool = False
    deprecated_at: datetime | None = None  # set by accounts when `deprecated` was last set
    sunset_at: datetime | None = None


class Api(Shape):
    id: uuid.UUID
    slug: str
    name: str
    status: str
    price: int
    api_version: str = ""
    sunset_at: datetime | None = None
    limits: dict[str, int] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)


class CatalogApi(Shape):
    """An API of accounts' public catalog (no upstream, credential or sandbox in it)."""

    id: uuid.UUID
    slug: str
    name: str
    status: str
    price: int
    price_low: int
    price_high: int
    description: str = ""
    api_version: str = ""
    sunset_at: datetime | None = None
    tags: list[str] = Field(default_factory=list)


class ApiChange(Shape):
    """One operation change of an OpenAPI import; breaking when `rule` is set."""

    kind: str
    method: str
    path: str
    rule: str | None = None
    location: str | None = None
    name: str | None = None
    status: str | None = None
    before: str | None = None
    after: str | None = None


class ChangelogEntry(Shape):
    """What one OpenAPI import changed in an API (accounts `/v1/catalog/{slug}/changelog`,
    the operations customers can call; `/v1/apis/{id}/changelog` adds the registry
    `version`)."""

    id: uuid.UUID
    api_version: str
    version: int | None = None
    imported_at: datetime
    breaking: int
    changes: list[ApiChange] = Field(default_factory=list)


class AdminUser(Shape):
    """A user as platform admins manage it (accounts `/v1/users`)."""

    id: uuid.UUID
    email: str
    name: str
    is_admin: bool
    is_active: bool
    totp_enabled: bool = False
    created_at: datetime


class DeprecationNotice(Shape):
    """A deprecation usage announced to the callers of an API (`route_id` None) or route."""

    route_id: uuid.UUID | None = None
    sunset_at: datetime | None = None
    orgs_notified: int
    announced_at: datetime


class AdminApi(Api):
    """An API as the operator sees it: the registry's fields that are not shown to
    customers. Upstream credentials are write-only at accounts and never come back."""

    upstream_url: str = ""
    upstream_header_names: list[str] = Field(default_factory=list)
    has_openapi_document: bool = False
    deprecated_at: datetime | None = None
    timeout_ms: int | None = None
    charge_failed_calls: bool = False
    has_upstream_credentials: bool = False
    sandbox_url: str | None = None
    sandbox: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ImportResult(Shape):
    """What an OpenAPI import did to the API's routes."""

    created: int
    kept: int
    removed: int


class OrgBalance(Shape):
    """One org's balance in billing's operator list (`GET /v1/balances`)."""

    org_id: uuid.UUID
    balance: int
    status: str
    mode: str


class Email(Shape):
    """A mail in notifier's queue (admins only)."""

    id: uuid.UUID
    kind: str
    locale: str
    to: str
    org_id: uuid.UUID | None = None
    state: str
    attempts: int
    last_error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class Latency(Shape):
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class UsageSummary(Shape):
    requests: int
    completed: int
    rejected: int
    errors: int
    error_rate: float
    credits: int
    latency: Latency


class TopItem(Shape):
    value: str | None
    requests: int
    rejected: int
    errors: int
    credits: int
    latency: Latency


class TopList(Shape):
    items: list[TopItem]


class LogItem(Shape):
    request_id: uuid.UUID
    time: datetime
    org_id: uuid.UUID | None  # None: refused before an org was known (no key)
    key_id: uuid.UUID | None
    api_id: uuid.UUID | None
    method: str
    path: str
    status: int
    outcome: str
    rejection_reason: str | None
    latency_ms: int
    upstream_latency_ms: int | None
    request_bytes: int | None
    response_bytes: int | None
    client_ip: str
    cost: int
    mode: str = "live"  # test: a tg_test_ key (never charged)
    served_by: str | None = None  # upstream, sandbox or mock
    contract_drift: list[str] | None = None  # how a checked answer broke the document


class TimePoint(Shape):
    time: datetime
    requests: int
    rejected: int
    errors: int
    credits: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class Timeseries(Shape):
    granularity: str
    points: list[TimePoint]


class ErrorCount(Shape):
    status: int
    rejection_reason: str | None
    requests: int


class ErrorBreakdown(Shape):
    requests: int
    by_class: dict[str, int]
    rejected_by_reason: dict[str, int]
    items: list[ErrorCount]


class Quota(Shape):
    per_day: int | None
    used_today: int
    per_month: int | None
    used_this_month: int


class KeyStats(Shape):
    totals: UsageSummary
    quota: Quota
    recent: list[LogItem]


class Balance(Shape):
    balance: int
    status: str
    mode: str
    low_threshold: int


class BillingSettings(Shape):
    mode: str
    low_threshold: int
    reserve: int = 0


class Download(Shape):
    """A file a backing service produced (a statement), passed through as it is."""

    content: bytes
    media_type: str


class EventType(Shape):
    type: str
    description: str
    descriptions: dict[str, str] = {}
    """By language tag (`en`, `zh-Hans`); `description` is the English one."""

    def described_in(self, language: str) -> str:
        return self.descriptions.get(language) or self.description


class Endpoint(Shape):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    previous_secret_expires_at: datetime | None = None
    created_at: datetime


class CreatedEndpoint(Endpoint):
    secret: str


class RotatedSecret(Shape):
    secret: str
    previous_secret_expires_at: datetime


class Delivery(Shape):
    id: int
    message_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class Transaction(Shape):
    id: uuid.UUID
    kind: str
    amount: int
    balance_after: int
    reason: str
    request_count: int
    created_at: datetime


class KindTotal(Shape):
    """What an org's ledger entries of one kind add up to in a range."""

    kind: str
    entries: int
    amount: int  # signed: negative for debits and expiries
    request_count: int


class LedgerTotals(Shape):
    """An org's ledger entries in a range, added up by kind (billing's sums)."""

    kinds: list[KindTotal]


class Plan(Shape):
    """A billing plan (rate card); prices in minor currency units."""

    id: uuid.UUID
    name: str
    monthly_price: int
    currency: str
    included_requests: int | None
    past_quota: str
    overage_price: int
    trial_days: int = 0
    free: bool
    archived: bool


class OrgPlan(Shape):
    """An org's plan, its period, and a downgrade waiting for the period end."""

    plan: Plan
    status: str
    period_start: datetime
    period_end: datetime
    trial_ends_at: datetime | None = None
    next_plan: Plan | None = None


class CreditPack(Shape):
    id: str
    credits: int
    price: int
    currency: str


class CreditPacks(Shape):
    """The packs on sale; `provider` manual means an operator adds credits."""

    provider: str
    packs: list[CreditPack]


class Checkout(Shape):
    purchase_id: uuid.UUID
    checkout_url: str


class Purchase(Shape):
    """A receipt of a credit pack bought through the payment provider."""

    id: uuid.UUID
    pack_id: str
    credits: int
    amount: int
    currency: str
    status: str
    refunded_credits: int = 0
    created_at: datetime
    paid_at: datetime | None = None


class SmsStatus(Shape):
    status: str
    error_code: str | None = None
    at: datetime


class SmsMessage(Shape):
    """An outbound SMS of the org; `timeline` only on the one-message read."""

    id: uuid.UUID
    to: str
    from_: str = Field(alias="from")
    text: str
    encoding: str
    segments: int
    price: int
    refunded: bool
    status: str
    error_code: str | None = None
    error_message: str | None = None
    queued_at: datetime
    timeline: list[SmsStatus] | None = None


class OperatorSmsMessage(SmsMessage):
    """An outbound SMS in the operator's log of every org: whose it is and its times."""

    org_id: uuid.UUID
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    failed_at: datetime | None = None


class SmsPrice(Shape):
    prefix: str
    price_per_segment: int
    updated_at: datetime


class NotificationContact(Shape):
    """Who receives the org's notification emails, and in which language."""

    email: str
    locale: str


class AutoTopUpCharge(Shape):
    """The latest auto top-up: queued, succeeded or failed (and why)."""

    status: str
    amount: int
    currency: str
    credits: int
    failure: str | None = None
    crossed_at: datetime
    finished_at: datetime | None = None


class AutoTopUp(Shape):
    """An org's auto top-up: credits below `threshold` are topped up to `target` from the
    saved card, at most `monthly_cap` minor units a month."""

    enabled: bool
    threshold: int
    target: int
    monthly_cap: int
    currency: str
    credits_per_unit: int
    payment_method_saved: bool
    spent_this_month: int
    last_charge: AutoTopUpCharge | None = None


class InboundSms(Shape):
    """A received SMS routed to the org (by its number, a keyword rule or a reply)."""

    id: uuid.UUID
    from_number: str
    to_number: str
    body: str
    routed_by: str | None = None
    received_at: datetime
    read: bool


class SmsNumber(Shape):
    """A phone number assigned to an org (inbound messages to it are the org's)."""

    number: str
    org_id: uuid.UUID
    created_at: datetime


class KeywordRule(Shape):
    """Routes inbound messages to an org by their first word or a regular expression."""

    id: uuid.UUID
    org_id: uuid.UUID
    kind: str
    pattern: str
    priority: int
    created_at: datetime


class SmsProvider(Shape):
    """An SMS provider account as notifier shows it: never its credentials."""

    id: uuid.UUID
    name: str
    kind: str
    config: dict[str, Any]
    rate_per_second: int
    priority: int
    enabled: bool
    balance_low: bool = False
    created_at: datetime


class SmsTestSend(Shape):
    """What a provider answered to an operator's test message."""

    accepted: bool
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class SmsProviderBalance(Shape):
    """A provider's balance as it reports it (None: it offers none), and whether it is
    below the provider's alert level."""

    balance: str | None = None
    currency: str | None = None
    low: bool | None = None


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v not in (None, "")}


def _refusal(service: Service, answer: httpx.Response) -> None:
    """Raise what a 4xx or 5xx answer means (its body must have been read)."""
    if answer.status_code >= 500:
        raise BackendDown(service)
    if answer.status_code >= 400:
        try:
            body = answer.json()
        except ValueError:
            body = {"title": answer.reason_phrase}
        raise BackendProblem(service, answer.status_code, body if isinstance(body, dict) else {})


class Backends:
    """Calls accounts, usage, billing and notifier: one pooled `httpx.AsyncClient` per
    app for the pages' calls, and one of its own for the live streams, which stay open
    for as long as a live page does and would otherwise take the pages' connections."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self._bases: dict[Service, str] = {
            "accounts": settings.accounts_url.rstrip("/"),
            "usage": settings.usage_url.rstrip("/"),
            "billing": settings.billing_url.rstrip("/"),
            "notifier": settings.notifier_url.rstrip("/"),
        }
        self._proxy_secret = settings.accounts_proxy_secret
        self._http = httpx.AsyncClient(
            timeout=settings.backend_timeout_seconds,
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._streams_max = settings.live_streams_max
        self._streams_open = 0
        # No read timeout: a stream is quiet between ticks by design.
        self._streams = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, read=None),
            transport=transport,
            limits=httpx.Limits(max_connections=self._streams_max, max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._streams.aclose()

    async def _call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: dict[str, str] | None = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        if token:
            sent["authorization"] = f"Bearer {token}"
        visitor = VISITOR.get()
        if visitor:
            sent["x-forwarded-for"] = visitor
        if service == "accounts" and self._proxy_secret:
            sent[PROXY_SECRET_HEADER] = self._proxy_secret
        try:
            answer = await self._http.request(
                method,
                self._bases[service] + path,
                json=json,
                data=data,
                content=content,
                params=_drop_none(params or {}),
                headers=sent,
            )
        except httpx.HTTPError as exc:
            raise BackendDown(service) from exc
        _refusal(service, answer)
        if answer.status_code == 204 or not answer.content:
            return None
        return answer.json()

    # --- accounts: identity ---------------------------------------------------------

    async def sign_in(self, email: str, password: str, otp: str | None = None) -> Tokens:
        form = {"username": email, "password": password}
        if otp:
            form["otp"] = otp
        return Tokens.model_validate(
            await self._call("accounts", "POST", "/v1/auth/token", data=form)
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        body = {"refresh_token": refresh_token}
        return Tokens.model_validate(
            await self._call("accounts", "POST", "/v1/auth/refresh", json=body)
        )

    async def sign_out(self, token: str, refresh_token: str) -> None:
        body = {"refresh_token": refresh_token}
        await self._call("accounts", "POST", "/v1/auth/logout", token=token, json=body)

    async def register(self, email: str, password: str, name: str, locale: str) -> None:
        body = {"email": email, "password": password, "name": name, "locale": locale}
        await self._call("accounts", "POST", "/v1/auth/register", json=body)

    async def request_password_reset(self, email: str) -> None:
        await self._call("accounts", "POST", "/v1/auth/password-reset", json={"email": email})

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        body = {"token": token, "new_password": new_password}
        await self._call("accounts", "POST", "/v1/auth/password-reset/confirm", json=body)

    async def verify_email(self, token: str) -> None:
        """Spend an emailed verification token (no sign-in: the token is the proof)."""
        await self._call("accounts", "POST", "/v1/auth/verify-email", json={"token": token})

    async def resend_verification(self, token: str) -> None:
        """Email the signed-in user a new verification link."""
        await self._call("accounts", "POST", "/v1/auth/verify-email/resend", token=token)

    async def accept_invitation(self, token: str, invitation: str) -> OrgRole:
        body = {"token": invitation}
        answer = await self._call(
            "accounts", "POST", "/v1/invitations/accept", token=token, json=body
        )
        return OrgRole.model_validate(answer)

    async def sign_out_everywhere(self, token: str, refresh_token: str) -> None:
        """Revoke every refresh token of the user (all browsers and devices)."""
        body = {"refresh_token": refresh_token, "everywhere": True}
        await self._call("accounts", "POST", "/v1/auth/logout", token=token, json=body)

    async def totp_enroll(self, token: str) -> TotpEnrolment:
        answer = await self._call("accounts", "POST", "/v1/auth/totp/enroll", token=token)
        return TotpEnrolment.model_validate(answer)

    async def totp_verify(self, token: str, password: str, code: str) -> RecoveryCodes:
        body = {"password": password, "code": code}
        answer = await self._call(
            "accounts", "POST", "/v1/auth/totp/verify", token=token, json=body
        )
        return RecoveryCodes.model_validate(answer)

    async def totp_disable(self, token: str, password: str, code: str) -> None:
        body = {"password": password, "code": code}
        await self._call("accounts", "POST", "/v1/auth/totp/disable", token=token, json=body)

    async def me(self, token: str) -> Me:
        return Me.model_validate(await self._call("accounts", "GET", "/v1/auth/me", token=token))

    # --- accounts: orgs, keys, APIs -----------------------------------------------

    async def orgs(self, token: str) -> list[Org]:
        page = await self._call("accounts", "GET", "/v1/orgs", token=token, params={"limit": 200})
        return Page[Org].model_validate(page).items

    async def create_org(self, token: str, name: str) -> Org:
        body = {"name": name}
        return Org.model_validate(
            await self._call("accounts", "POST", "/v1/orgs", token=token, json=body)
        )

    async def members(self, token: str, org_id: uuid.UUID, cursor: str | None) -> Page[Member]:
        page = await self._call(
            "accounts",
            "GET",
            f"/v1/orgs/{org_id}/members",
            token=token,
            params={"cursor": cursor, "limit": 100},
        )
        return Page[Member].model_validate(page)

    async def change_role(
        self, token: str, org_id: uuid.UUID, user_id: uuid.UUID, role: str
    ) -> Member:
        answer = await self._call(
            "accounts",
            "PATCH",
            f"/v1/orgs/{org_id}/members/{user_id}",
            token=token,
            json={"role": role},
        )
        return Member.model_validate(answer)

    async def remove_member(self, token: str, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self._call("accounts", "DELETE", f"/v1/orgs/{org_id}/members/{user_id}", token=token)

    async def invitations(self, token: str, org_id: uuid.UUID) -> list[Invitation]:
        page = await self._call(
            "accounts",
            "GET",
            f"/v1/orgs/{org_id}/invitations",
            token=token,
            params={"limit": 100},
        )
        return Page[Invitation].model_validate(page).items

    async def invite(self, token: str, org_id: uuid.UUID, email: str, role: str) -> Invitation:
        answer = await self._call(
            "accounts",
            "POST",
            f"/v1/orgs/{org_id}/invitations",
            token=token,
            json={"email": email, "role": role},
        )
        return Invitation.model_validate(answer)

    async def revoke_invitation(
        self, token: str, org_id: uuid.UUID, invitation_id: uuid.UUID
    ) -> None:
        await self._call(
            "accounts", "DELETE", f"/v1/orgs/{org_id}/invitations/{invitation_id}", token=token
        )

    async def audit(
        self, token: str, org_id: uuid.UUID, filters: dict[str, Any]
    ) -> Page[AuditEntry]:
        params = {"org_id": org_id, "limit": 50, **filters}
        page = await self._call("accounts", "GET", "/v1/audit", token=token, params=params)
        return Page[AuditEntry].model_validate(page)

    async def keys(
        self,
        token: str,
        org_id: uuid.UUID,
        cursor: str | None,
        limit: int = 200,
        *,
        status: str | None = None,
        name_contains: str | None = None,
    ) -> Page[Key]:
        """One page of the org's keys, filtered by accounts (status, name contains)."""
        params = {"cursor": cursor, "limit": limit, "status": status, "q": name_contains}
        page = await self._call(
            "accounts", "GET", f"/v1/orgs/{org_id}/keys", token=token, params=params
        )
        return Page[Key].model_validate(page)

    async def key(self, token: str, key_id: uuid.UUID) -> Key:
        return Key.model_validate(
            await self._call("accounts", "GET", f"/v1/keys/{key_id}", token=token)
        )

    async def create_key(self, token: str, org_id: uuid.UUID, body: dict[str, Any]) -> IssuedKey:
        answer = await self._call(
            "accounts", "POST", f"/v1/orgs/{org_id}/keys", token=token, json=body
        )
        return IssuedKey.model_validate(answer)

    async def update_key(self, token: str, key_id: uuid.UUID, body: dict[str, Any]) -> Key:
        answer = await self._call("accounts", "PATCH", f"/v1/keys/{key_id}", token=token, json=body)
        return Key.model_validate(answer)

    async def rotate_key(self, token: str, key_id: uuid.UUID, grace_seconds: int) -> IssuedKey:
        body = {"grace_seconds": grace_seconds}
        answer = await self._call(
            "accounts", "POST", f"/v1/keys/{key_id}/rotate", token=token, json=body
        )
        return IssuedKey.model_validate(answer)

    async def revoke_key(self, token: str, key_id: uuid.UUID) -> Key:
        answer = await self._call("accounts", "POST", f"/v1/keys/{key_id}/revoke", token=token)
        return Key.model_validate(answer)

    async def apis(self, token: str) -> list[Api]:
        page = await self._call("accounts", "GET", "/v1/apis", token=token, params={"limit": 200})
        return Page[Api].model_validate(page).items

    async def catalog_changelog(
        self, token: str | None, slug: str, cursor: str | None
    ) -> Page[ChangelogEntry]:
        """One page of the API's public changelog (what customers can call), newest first."""
        path = f"/v1/catalog/{quote(slug, safe='')}/changelog"
        params = {"limit": 20, "cursor": cursor}
        answer = await self._call("accounts", "GET", path, token=token, params=params)
        return Page[ChangelogEntry].model_validate(answer)

    async def catalog(self, token: str | None) -> list[CatalogApi]:
        """Accounts' public catalog (the token, when there is one, for a closed catalog;
        without one, accounts counts the visitor's calls against its per-IP limit)."""
        answer = await self._call("accounts", "GET", "/v1/catalog", token=token)
        return [CatalogApi.model_validate(item) for item in answer["items"]]

    async def catalog_api(self, token: str | None, slug: str) -> CatalogApi:
        path = f"/v1/catalog/{quote(slug, safe='')}"
        answer = await self._call("accounts", "GET", path, token=token)
        return CatalogApi.model_validate(answer)

    async def catalog_document(
        self, token: str | None, slug: str, language: str = "en"
    ) -> dict[str, Any]:
        """The API's consumer OpenAPI document, as accounts builds it, with Tollgate's
        own text (key schemes, prices, limits, deprecation notes) in `language`."""
        path = f"/v1/catalog/{quote(slug, safe='')}/openapi"
        answer: dict[str, Any] = await self._call(
            "accounts", "GET", path, token=token, params={"lang": language}
        )
        return answer

    # --- accounts: the operator's registry, orgs and users (platform admins) -------------

    async def admin_apis(self, token: str, cursor: str | None) -> Page[AdminApi]:
        params = {"limit": 50, "cursor": cursor}
        answer = await self._call("accounts", "GET", "/v1/apis", token=token, params=params)
        return Page[AdminApi].model_validate(answer)

    async def admin_api(self, token: str, api_id: uuid.UUID) -> AdminApi:
        answer = await self._call("accounts", "GET", f"/v1/apis/{api_id}", token=token)
        return AdminApi.model_validate(answer)

    async def all_orgs(self, token: str, cursor: str | None) -> Page[Org]:
        """Every org (accounts answers admins with all of them)."""
        params = {"limit": 50, "cursor": cursor}
        answer = await self._call("accounts", "GET", "/v1/orgs", token=token, params=params)
        return Page[Org].model_validate(answer)

    async def users(
        self, token: str, *, email_prefix: str | None, active: bool | None, cursor: str | None
    ) -> Page[AdminUser]:
        params = {"email_prefix": email_prefix, "active": active, "cursor": cursor, "limit": 50}
        answer = await self._call("accounts", "GET", "/v1/users", token=token, params=params)
        return Page[AdminUser].model_validate(answer)

    async def set_user_active(self, token: str, user_id: uuid.UUID, active: bool) -> AdminUser:
        action = "reactivate" if active else "deactivate"
        answer = await self._call("accounts", "POST", f"/v1/users/{user_id}/{action}", token=token)
        return AdminUser.model_validate(answer)

    async def set_user_admin(self, token: str, user_id: uuid.UUID, admin: bool) -> AdminUser:
        action = "grant-admin" if admin else "revoke-admin"
        answer = await self._call("accounts", "POST", f"/v1/users/{user_id}/{action}", token=token)
        return AdminUser.model_validate(answer)

    async def org(self, token: str, org_id: uuid.UUID) -> Org:
        answer = await self._call("accounts", "GET", f"/v1/orgs/{org_id}", token=token)
        return Org.model_validate(answer)

    async def create_api(self, token: str, body: dict[str, Any]) -> AdminApi:
        answer = await self._call("accounts", "POST", "/v1/apis", token=token, json=body)
        return AdminApi.model_validate(answer)

    async def update_api(self, token: str, api_id: uuid.UUID, body: dict[str, Any]) -> AdminApi:
        answer = await self._call("accounts", "PATCH", f"/v1/apis/{api_id}", token=token, json=body)
        return AdminApi.model_validate(answer)

    async def delete_api(self, token: str, api_id: uuid.UUID) -> None:
        await self._call("accounts", "DELETE", f"/v1/apis/{api_id}", token=token)

    async def add_route(self, token: str, api_id: uuid.UUID, body: dict[str, Any]) -> Route:
        path = f"/v1/apis/{api_id}/routes"
        return Route.model_validate(
            await self._call("accounts", "POST", path, token=token, json=body)
        )

    async def update_route(
        self, token: str, api_id: uuid.UUID, route_id: uuid.UUID, body: dict[str, Any]
    ) -> Route:
        path = f"/v1/apis/{api_id}/routes/{route_id}"
        answer = await self._call("accounts", "PATCH", path, token=token, json=body)
        return Route.model_validate(answer)

    async def delete_route(self, token: str, api_id: uuid.UUID, route_id: uuid.UUID) -> None:
        await self._call("accounts", "DELETE", f"/v1/apis/{api_id}/routes/{route_id}", token=token)

    async def import_openapi(
        self, token: str, api_id: uuid.UUID, document: bytes, *, replace: bool
    ) -> ImportResult:
        """Import a JSON or YAML document (sent as it was given; accounts parses it)."""
        kind = "json" if document.lstrip().startswith(b"{") else "yaml"
        answer = await self._call(
            "accounts",
            "POST",
            f"/v1/apis/{api_id}/openapi",
            token=token,
            content=document,
            params={"replace": "true" if replace else None},
            headers={"content-type": f"application/{kind}"},
        )
        return ImportResult.model_validate(answer)

    async def import_openapi_url(
        self, token: str, api_id: uuid.UUID, url: str, *, replace: bool
    ) -> ImportResult:
        """Import the document at `url`; accounts fetches it (under its SSRF policy)."""
        answer = await self._call(
            "accounts",
            "POST",
            f"/v1/apis/{api_id}/openapi/from-url",
            token=token,
            json={"url": url},
            params={"replace": "true" if replace else None},
        )
        return ImportResult.model_validate(answer)

    # --- notifier: the email log (platform admins) ------------------------------------

    async def emails(self, token: str, *, state: str | None, cursor: str | None) -> Page[Email]:
        params = {"state": state, "cursor": cursor, "limit": 50}
        answer = await self._call("notifier", "GET", "/v1/admin/emails", token=token, params=params)
        return Page[Email].model_validate(answer)

    async def retry_email(self, token: str, email_id: uuid.UUID) -> None:
        await self._call("notifier", "POST", f"/v1/admin/emails/{email_id}/retry", token=token)

    # --- usage --------------------------------------------------------------------

    async def deprecation_notices(self, token: str, api_id: uuid.UUID) -> list[DeprecationNotice]:
        """The latest deprecations announced for the API and its routes (platform admins)."""
        path = f"/v1/apis/{api_id}/deprecation-notices"
        answer = await self._call("usage", "GET", path, token=token, params={"limit": 50})
        return [DeprecationNotice.model_validate(item) for item in answer["items"]]

    async def usage_summary(
        self,
        token: str,
        org_id: uuid.UUID,
        start: datetime,
        end: datetime,
        mode: str | None = None,
    ) -> UsageSummary:
        """Totals of the range; `mode` live (usage's default) or test (`tg_test_` keys)."""
        params = {"org_id": org_id, "from": start.isoformat(), "to": end.isoformat()}
        params |= {"mode": mode} if mode else {}
        answer = await self._call("usage", "GET", "/v1/usage/summary", token=token, params=params)
        return UsageSummary.model_validate(answer)

    async def usage_top(
        self,
        token: str,
        org_id: uuid.UUID,
        by: str,
        start: datetime,
        end: datetime,
        mode: str | None = None,
    ) -> list[TopItem]:
        params = {
            "org_id": org_id,
            "by": by,
            "limit": 5,
            "from": start.isoformat(),
            "to": end.isoformat(),
        }
        params |= {"mode": mode} if mode else {}
        answer = await self._call("usage", "GET", "/v1/usage/top", token=token, params=params)
        return TopList.model_validate(answer).items

    async def usage_top_by(
        self,
        token: str,
        org_id: uuid.UUID,
        by: str,
        start: datetime,
        end: datetime,
        filters: dict[str, Any],
        limit: int = 10,
    ) -> list[TopItem]:
        params = {
            "org_id": org_id,
            "by": by,
            "limit": limit,
            "from": start.isoformat(),
            "to": end.isoformat(),
            **filters,
        }
        answer = await self._call("usage", "GET", "/v1/usage/top", token=token, params=params)
        return TopList.model_validate(answer).items

    async def usage_timeseries(
        self,
        token: str,
        org_id: uuid.UUID,
        granularity: str,
        start: datetime,
        end: datetime,
        filters: dict[str, Any],
    ) -> Timeseries:
        params = {
            "org_id": org_id,
            "granularity": granularity,
            "from": start.isoformat(),
            "to": end.isoformat(),
            **filters,
        }
        answer = await self._call(
            "usage", "GET", "/v1/usage/timeseries", token=token, params=params
        )
        return Timeseries.model_validate(answer)

    async def usage_errors(
        self,
        token: str,
        org_id: uuid.UUID,
        start: datetime,
        end: datetime,
        filters: dict[str, Any],
    ) -> ErrorBreakdown:
        params = {"org_id": org_id, "from": start.isoformat(), "to": end.isoformat(), **filters}
        answer = await self._call("usage", "GET", "/v1/usage/errors", token=token, params=params)
        return ErrorBreakdown.model_validate(answer)

    @asynccontextmanager
    async def live_counts(
        self, token: str, org_id: uuid.UUID, mode: str = "live"
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """usage's live stream (server-sent events) of an org's `mode` traffic (live or
        test), opened with the user's token on the streams' own connections; yields the
        body's chunks as they come.
        `LiveStreamsFull` when `live_streams_max` streams are open already."""
        if self._streams_open >= self._streams_max:
            raise LiveStreamsFull
        self._streams_open += 1
        try:
            request = self._streams.build_request(
                "GET",
                self._bases["usage"] + "/v1/usage/live",
                params={"org_id": str(org_id), "mode": mode},
                headers={"authorization": f"Bearer {token}", "accept": "text/event-stream"},
            )
            try:
                answer = await self._streams.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise BackendDown("usage") from exc
            try:
                if answer.status_code >= 400:
                    await answer.aread()
                    _refusal("usage", answer)
                yield answer.aiter_bytes()
            finally:
                await answer.aclose()
        finally:
            self._streams_open -= 1

    async def logs(self, token: str, org_id: uuid.UUID, filters: dict[str, Any]) -> Page[LogItem]:
        params = {"org_id": org_id, "limit": 50, **filters}
        answer = await self._call("usage", "GET", "/v1/usage/logs", token=token, params=params)
        return Page[LogItem].model_validate(answer)

    async def log(self, token: str, request_id: uuid.UUID) -> LogItem:
        answer = await self._call("usage", "GET", f"/v1/usage/logs/{request_id}", token=token)
        return LogItem.model_validate(answer)

    async def key_stats(self, token: str, key_id: uuid.UUID) -> KeyStats:
        answer = await self._call(
            "usage", "GET", f"/v1/usage/keys/{key_id}", token=token, params={"recent": 10}
        )
        return KeyStats.model_validate(answer)

    # --- billing ------------------------------------------------------------------

    async def balances(
        self, token: str, *, org_ids: list[uuid.UUID], status: str | None, cursor: str | None
    ) -> Page[OrgBalance]:
        """Billing's operator list: one page, or the balances of `org_ids` (admins)."""
        params: dict[str, Any] = {"org_id": [str(o) for o in org_ids] or None, "status": status}
        params |= {"cursor": cursor, "limit": 50 if not org_ids else len(org_ids)}
        answer = await self._call("billing", "GET", "/v1/balances", token=token, params=params)
        return Page[OrgBalance].model_validate(answer)

    async def balance(self, token: str, org_id: uuid.UUID) -> Balance:
        answer = await self._call("billing", "GET", f"/v1/orgs/{org_id}/balance", token=token)
        return Balance.model_validate(answer)

    async def update_billing_settings(
        self, token: str, org_id: uuid.UUID, body: dict[str, Any]
    ) -> BillingSettings:
        answer = await self._call(
            "billing", "PATCH", f"/v1/orgs/{org_id}/billing-settings", token=token, json=body
        )
        return BillingSettings.model_validate(answer)

    async def statement(self, token: str, org_id: uuid.UUID, month: str, fmt: str) -> Download:
        """The monthly statement as billing renders it (JSON or CSV)."""
        try:
            answer = await self._http.get(
                f"{self._bases['billing']}/v1/orgs/{org_id}/statements/{month}",
                params={"format": fmt},
                headers={"authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise BackendDown("billing") from exc
        _refusal("billing", answer)
        media = answer.headers.get("content-type", "application/octet-stream")
        return Download(content=answer.content, media_type=media)

    async def add_credits(
        self, token: str, org_id: uuid.UUID, kind: str, body: dict[str, Any], idempotency_key: str
    ) -> Transaction:
        """A top-up (`kind` top_up) or a correction (adjustment, refund, expiry); billing
        applies one `idempotency_key` at most once, so a resubmitted form charges once."""
        path = f"/v1/orgs/{org_id}/" + ("credits" if kind == "top_up" else "adjustments")
        sent = body if kind == "top_up" else {**body, "kind": kind}
        answer = await self._call(
            "billing",
            "POST",
            path,
            token=token,
            json=sent,
            headers={"idempotency-key": idempotency_key},
        )
        return Transaction.model_validate(answer)

    # --- notifier: webhooks --------------------------------------------------------

    async def event_types(self, token: str) -> list[EventType]:
        answer = await self._call("notifier", "GET", "/v1/webhooks/event-types", token=token)
        return [EventType.model_validate(t) for t in answer["items"]]

    async def endpoints(self, token: str, org_id: uuid.UUID) -> Page[Endpoint]:
        """The org's endpoints, oldest first (the first page: up to 200)."""
        answer = await self._call(
            "notifier",
            "GET",
            f"/v1/orgs/{org_id}/webhooks/endpoints",
            token=token,
            params={"limit": 200},
        )
        return Page[Endpoint].model_validate(answer)

    async def endpoint(self, token: str, org_id: uuid.UUID, endpoint_id: uuid.UUID) -> Endpoint:
        answer = await self._call(
            "notifier", "GET", f"/v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}", token=token
        )
        return Endpoint.model_validate(answer)

    async def create_endpoint(
        self, token: str, org_id: uuid.UUID, body: dict[str, Any]
    ) -> CreatedEndpoint:
        answer = await self._call(
            "notifier", "POST", f"/v1/orgs/{org_id}/webhooks/endpoints", token=token, json=body
        )
        return CreatedEndpoint.model_validate(answer)

    async def update_endpoint(
        self, token: str, org_id: uuid.UUID, endpoint_id: uuid.UUID, body: dict[str, Any]
    ) -> Endpoint:
        answer = await self._call(
            "notifier",
            "PATCH",
            f"/v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}",
            token=token,
            json=body,
        )
        return Endpoint.model_validate(answer)

    async def rotate_endpoint_secret(
        self, token: str, org_id: uuid.UUID, endpoint_id: uuid.UUID
    ) -> RotatedSecret:
        answer = await self._call(
            "notifier",
            "POST",
            f"/v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}/rotate-secret",
            token=token,
        )
        return RotatedSecret.model_validate(answer)

    async def send_test(self, token: str, org_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
        await self._call(
            "notifier",
            "POST",
            f"/v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}/test",
            token=token,
        )

    async def deliveries(
        self,
        token: str,
        org_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        cursor: str | None,
        state: str | None,
        limit: int = 50,
    ) -> Page[Delivery]:
        """One page of an endpoint's deliveries, newest first."""
        answer = await self._call(
            "notifier",
            "GET",
            f"/v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}/deliveries",
            token=token,
            params={"cursor": cursor, "state": state, "limit": limit},
        )
        return Page[Delivery].model_validate(answer)

    async def retry_delivery(self, token: str, org_id: uuid.UUID, delivery_id: int) -> None:
        await self._call(
            "notifier",
            "POST",
            f"/v1/orgs/{org_id}/webhooks/deliveries/{delivery_id}/retry",
            token=token,
        )

    async def transactions(
        self, token: str, org_id: uuid.UUID, cursor: str | None, kind: str | None
    ) -> Page[Transaction]:
        params = {"cursor": cursor, "kind": kind, "limit": 50}
        answer = await self._call(
            "billing", "GET", f"/v1/orgs/{org_id}/transactions", token=token, params=params
        )
        return Page[Transaction].model_validate(answer)

    async def credits_spent(
        self, token: str, org_id: uuid.UUID, start: datetime, end: datetime
    ) -> int:
        """Credits debited from the org in [start, end): every `debit` entry of its ledger
        (request batches, overage, SMS segments), as the credits page lists them, summed
        by billing."""
        params = {"since": start.isoformat(), "until": end.isoformat()}
        answer = await self._call(
            "billing", "GET", f"/v1/orgs/{org_id}/transactions/totals", token=token, params=params
        )
        totals = LedgerTotals.model_validate(answer)
        return -sum(total.amount for total in totals.kinds if total.kind == "debit")

    # --- billing: plans and payments ----------------------------------------------

    async def plans(self, token: str, *, archived: bool, cursor: str | None) -> Page[Plan]:
        params = {"archived": "true" if archived else None, "cursor": cursor, "limit": 100}
        answer = await self._call("billing", "GET", "/v1/plans", token=token, params=params)
        return Page[Plan].model_validate(answer)

    async def create_plan(self, token: str, body: dict[str, Any]) -> Plan:
        answer = await self._call("billing", "POST", "/v1/plans", token=token, json=body)
        return Plan.model_validate(answer)

    async def set_plan_archived(self, token: str, plan_id: uuid.UUID, archived: bool) -> Plan:
        answer = await self._call(
            "billing", "PATCH", f"/v1/plans/{plan_id}", token=token, json={"archived": archived}
        )
        return Plan.model_validate(answer)

    async def org_plan(self, token: str, org_id: uuid.UUID) -> OrgPlan | None:
        """The org's plan; None when it has none (billing's 404 `no-plan`)."""
        try:
            answer = await self._call("billing", "GET", f"/v1/orgs/{org_id}/plan", token=token)
        except BackendProblem as exc:
            if exc.status == 404:
                return None
            raise
        return OrgPlan.model_validate(answer)

    async def choose_plan(self, token: str, org_id: uuid.UUID, plan_id: uuid.UUID) -> OrgPlan:
        """An upgrade applies at once, a downgrade at the period end (billing decides)."""
        answer = await self._call(
            "billing", "PUT", f"/v1/orgs/{org_id}/plan", token=token, json={"plan_id": str(plan_id)}
        )
        return OrgPlan.model_validate(answer)

    async def subscription_checkout(self, token: str, org_id: uuid.UUID, plan_id: uuid.UUID) -> str:
        answer = await self._call(
            "billing",
            "POST",
            f"/v1/orgs/{org_id}/subscription-checkout",
            token=token,
            json={"plan_id": str(plan_id)},
        )
        return str(answer["checkout_url"])

    async def credit_packs(self, token: str) -> CreditPacks:
        answer = await self._call("billing", "GET", "/v1/credit-packs", token=token)
        return CreditPacks.model_validate(answer)

    async def checkout(self, token: str, org_id: uuid.UUID, pack_id: str) -> Checkout:
        answer = await self._call(
            "billing",
            "POST",
            f"/v1/orgs/{org_id}/checkout-sessions",
            token=token,
            json={"pack_id": pack_id},
        )
        return Checkout.model_validate(answer)

    async def purchases(self, token: str, org_id: uuid.UUID, cursor: str | None) -> Page[Purchase]:
        answer = await self._call(
            "billing",
            "GET",
            f"/v1/orgs/{org_id}/purchases",
            token=token,
            params={"cursor": cursor, "limit": 50},
        )
        return Page[Purchase].model_validate(answer)

    # --- notifier: outbound SMS -----------------------------------------------------

    async def sms_sent(
        self,
        token: str,
        org_id: uuid.UUID,
        status: str | None,
        cursor: str | None,
        limit: int = 50,
    ) -> Page[SmsMessage]:
        answer = await self._call(
            "notifier",
            "GET",
            f"/v1/orgs/{org_id}/sms/sent",
            token=token,
            params={"status": status, "cursor": cursor, "limit": limit},
        )
        return Page[SmsMessage].model_validate(answer)

    async def sms_message(self, token: str, org_id: uuid.UUID, message_id: uuid.UUID) -> SmsMessage:
        answer = await self._call(
            "notifier", "GET", f"/v1/orgs/{org_id}/sms/sent/{message_id}", token=token
        )
        return SmsMessage.model_validate(answer)

    async def sms_prices(self, token: str) -> list[SmsPrice]:
        answer = await self._call("notifier", "GET", "/v1/admin/sms/prices", token=token)
        return [SmsPrice.model_validate(p) for p in answer]

    async def set_sms_price(self, token: str, prefix: str, price_per_segment: int) -> None:
        await self._call(
            "notifier",
            "PUT",
            "/v1/admin/sms/prices",
            token=token,
            json={"prefix": prefix, "price_per_segment": price_per_segment},
        )

    async def delete_sms_price(self, token: str, prefix: str) -> None:
        await self._call(
            "notifier", "DELETE", "/v1/admin/sms/prices", token=token, params={"prefix": prefix}
        )

    # --- notifier: inbound SMS, numbers and keyword rules ----------------------------

    async def _every_item(self, service: Service, path: str, token: str) -> list[Any]:
        """Every item of a paged list, page after page (for the platform's short lists:
        an org's numbers or rules may be on any page)."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            answer = await self._call(service, "GET", path, token=token, params={"cursor": cursor})
            items.extend(answer["items"])
            cursor = answer.get("next_cursor")
            if not cursor:
                return items

    async def sms_inbox(
        self,
        token: str,
        org_id: uuid.UUID,
        *,
        unread: bool | None,
        from_number: str | None,
        cursor: str | None,
        limit: int = 50,
    ) -> Page[InboundSms]:
        params: dict[str, Any] = {
            "unread": None if unread is None else str(unread).lower(),
            "from_number": from_number,
            "cursor": cursor,
            "limit": limit,
        }
        answer = await self._call(
            "notifier", "GET", f"/v1/orgs/{org_id}/sms/messages", token=token, params=params
        )
        return Page[InboundSms].model_validate(answer)

    async def inbound_sms(self, token: str, org_id: uuid.UUID, message_id: uuid.UUID) -> InboundSms:
        answer = await self._call(
            "notifier", "GET", f"/v1/orgs/{org_id}/sms/messages/{message_id}", token=token
        )
        return InboundSms.model_validate(answer)

    async def mark_inbound_sms(
        self, token: str, org_id: uuid.UUID, message_id: uuid.UUID, read: bool
    ) -> InboundSms:
        answer = await self._call(
            "notifier",
            "POST",
            f"/v1/orgs/{org_id}/sms/messages/{message_id}/read",
            token=token,
            json={"read": read},
        )
        return InboundSms.model_validate(answer)

    async def sms_numbers(self, token: str) -> list[SmsNumber]:
        """Every assigned number (platform admins)."""
        rows = await self._every_item("notifier", "/v1/admin/sms/numbers", token)
        return [SmsNumber.model_validate(n) for n in rows]

    async def assign_sms_number(self, token: str, number: str, org_id: uuid.UUID) -> None:
        body = {"number": number, "org_id": str(org_id)}
        await self._call("notifier", "PUT", "/v1/admin/sms/numbers", token=token, json=body)

    async def release_sms_number(self, token: str, number: str) -> None:
        await self._call(
            "notifier", "DELETE", f"/v1/admin/sms/numbers/{quote(number, safe='')}", token=token
        )

    async def keyword_rules(self, token: str) -> list[KeywordRule]:
        """Every keyword rule (platform admins)."""
        rows = await self._every_item("notifier", "/v1/admin/sms/keyword-rules", token)
        return [KeywordRule.model_validate(r) for r in rows]

    async def add_keyword_rule(self, token: str, body: dict[str, Any]) -> KeywordRule:
        answer = await self._call(
            "notifier", "POST", "/v1/admin/sms/keyword-rules", token=token, json=body
        )
        return KeywordRule.model_validate(answer)

    async def delete_keyword_rule(self, token: str, rule_id: uuid.UUID) -> None:
        await self._call(
            "notifier", "DELETE", f"/v1/admin/sms/keyword-rules/{rule_id}", token=token
        )

    async def update_keyword_rule(
        self, token: str, rule_id: uuid.UUID, body: dict[str, Any]
    ) -> KeywordRule:
        """Change a rule's kind, pattern or priority (platform admins)."""
        answer = await self._call(
            "notifier", "PATCH", f"/v1/admin/sms/keyword-rules/{rule_id}", token=token, json=body
        )
        return KeywordRule.model_validate(answer)

    async def org_sms_numbers(self, token: str, org_id: uuid.UUID) -> list[SmsNumber]:
        """The numbers assigned to the org (any member)."""
        rows = await self._every_item("notifier", f"/v1/orgs/{org_id}/sms/numbers", token)
        return [SmsNumber.model_validate(n) for n in rows]

    async def org_keyword_rules(self, token: str, org_id: uuid.UUID) -> list[KeywordRule]:
        """The keyword rules routing to the org, in evaluation order (any member)."""
        rows = await self._every_item("notifier", f"/v1/orgs/{org_id}/sms/keyword-rules", token)
        return [KeywordRule.model_validate(r) for r in rows]

    async def sms_providers(self, token: str) -> list[SmsProvider]:
        """SMS providers, preferred first (platform admins)."""
        answer = await self._call("notifier", "GET", "/v1/admin/sms/providers", token=token)
        return [SmsProvider.model_validate(p) for p in answer]

    async def update_sms_provider(
        self, token: str, provider_id: uuid.UUID, body: dict[str, Any]
    ) -> SmsProvider:
        """Change a provider; credentials only when `body` carries them (platform admins)."""
        answer = await self._call(
            "notifier", "PATCH", f"/v1/admin/sms/providers/{provider_id}", token=token, json=body
        )
        return SmsProvider.model_validate(answer)

    async def add_sms_provider(self, token: str, body: dict[str, Any]) -> SmsProvider:
        """Add a provider; its credentials are sealed by notifier (platform admins)."""
        answer = await self._call(
            "notifier", "POST", "/v1/admin/sms/providers", token=token, json=body
        )
        return SmsProvider.model_validate(answer)

    async def delete_sms_provider(self, token: str, provider_id: uuid.UUID) -> None:
        await self._call(
            "notifier", "DELETE", f"/v1/admin/sms/providers/{provider_id}", token=token
        )

    async def send_sms_provider_test(
        self, token: str, provider_id: uuid.UUID, body: dict[str, str]
    ) -> SmsTestSend:
        """Send one message straight through the provider (not billed, not logged)."""
        answer = await self._call(
            "notifier",
            "POST",
            f"/v1/admin/sms/providers/{provider_id}/test-send",
            token=token,
            json=body,
        )
        return SmsTestSend.model_validate(answer)

    async def sms_provider_balance(self, token: str, provider_id: uuid.UUID) -> SmsProviderBalance:
        answer = await self._call(
            "notifier", "GET", f"/v1/admin/sms/providers/{provider_id}/balance", token=token
        )
        return SmsProviderBalance.model_validate(answer)

    async def admin_sms_sent(
        self,
        token: str,
        *,
        org_id: uuid.UUID | None,
        status: str | None,
        cursor: str | None,
        limit: int = 50,
    ) -> Page[OperatorSmsMessage]:
        """Every org's outbound messages, newest first (platform admins)."""
        params = {"org_id": org_id, "status": status, "cursor": cursor, "limit": limit}
        answer = await self._call(
            "notifier", "GET", "/v1/admin/sms/sent", token=token, params=params
        )
        return Page[OperatorSmsMessage].model_validate(answer)

    # --- notifier: notification contacts ----------------------------------------------

    async def notification_contacts(
        self, token: str, org_id: uuid.UUID
    ) -> list[NotificationContact]:
        """The org's contacts (a bare list, or a page's `items`: at most 20 exist)."""
        answer = await self._call(
            "notifier", "GET", f"/v1/orgs/{org_id}/notification-contacts", token=token
        )
        rows = answer["items"] if isinstance(answer, dict) else answer
        return [NotificationContact.model_validate(c) for c in rows]

    async def replace_notification_contacts(
        self, token: str, org_id: uuid.UUID, contacts: list[NotificationContact]
    ) -> None:
        body = {"contacts": [c.model_dump() for c in contacts]}
        await self._call(
            "notifier", "PUT", f"/v1/orgs/{org_id}/notification-contacts", token=token, json=body
        )

    # --- billing: auto top-up -----------------------------------------------------------

    async def auto_top_up(self, token: str, org_id: uuid.UUID) -> AutoTopUp:
        answer = await self._call("billing", "GET", f"/v1/orgs/{org_id}/auto-top-up", token=token)
        return AutoTopUp.model_validate(answer)

    async def set_auto_top_up(
        self, token: str, org_id: uuid.UUID, body: dict[str, Any]
    ) -> AutoTopUp:
        answer = await self._call(
            "billing", "PUT", f"/v1/orgs/{org_id}/auto-top-up", token=token, json=body
        )
        return AutoTopUp.model_validate(answer)

    async def auto_top_up_card_checkout(self, token: str, org_id: uuid.UUID) -> str:
        """A setup-mode Checkout that saves a card for auto top-ups; its URL."""
        answer = await self._call(
            "billing", "POST", f"/v1/orgs/{org_id}/auto-top-up/setup-session", token=token
        )
        return str(answer["checkout_url"])
