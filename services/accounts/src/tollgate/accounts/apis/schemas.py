"""Request and response DTOs of the API registry. Upstream credential headers are
write-only: accepted in requests, never present in any response."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from tollgate.accounts.limits import LimitsIn
from tollgate.accounts.scopes import MAX_ROUTE_SCOPES, Scope
from tollgate.accounts.storable import UtcDatetime
from tollgate.contracts.envelope import CREDITS_MAX
from tollgate.contracts.events.accounts import ApiChange
from tollgate.kit.requests import JSON_INTEGER, RequestModel, StrictFlag

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "x-api-key",
    }
)
"""Header names the gateway sets or strips itself: never injected upstream (a 422
`header-not-allowed` from the service; the document states the names' shape only)."""
MAX_HEADERS = 20

# The shapes every HTTP client can send (RFC 9110 §5.1 tokens; §5.5 field values
# without obs-text), in the document, so schema-driven clients know them too.
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
HeaderValue = Annotated[str, Field(max_length=4096, pattern=r"^[\t\x20-\x7e]*$")]
UpstreamHeaders = Annotated[
    dict[HeaderName, HeaderValue],
    # Names outside the pattern are refused, not merely unconstrained.
    Field(max_length=MAX_HEADERS, json_schema_extra={"additionalProperties": False}),
]
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=63)]
Method = Annotated[str, Field(pattern=r"^([A-Z]{1,10}|\*)$")]
# No space, control character, `?` or `#`; spelled as ranges because `\s` means different
# characters to the server's regex engine and to JSON Schema's (ECMA-262).
PathTemplate = Annotated[str, Field(pattern=r"^/[^\x00-\x20\x7f-\x9f?#]*$", max_length=1024)]
Status = Literal["active", "deprecated", "retired"]
Price = Annotated[int, Field(ge=0, le=CREDITS_MAX), JSON_INTEGER]
TimeoutMs = Annotated[int, Field(ge=1, le=300_000), JSON_INTEGER]


LatencyMs = Annotated[int, Field(ge=0, le=60_000), JSON_INTEGER]
ErrorPercent = Annotated[int, Field(ge=0, le=100), JSON_INTEGER]


class SandboxIn(RequestModel):
    """Mock, test-mode and contract settings of an API (omitted: off) or of a route
    (omitted or null: the API's). Published to every gateway in `ApiUpserted`."""

    mock: StrictFlag | None = Field(
        None, description="answer every key (live too) from the mock built from the document"
    )
    mock_stateful: StrictFlag | None = Field(
        None, description="the mock keeps created resources per key (CRUD and list)"
    )
    mock_latency_ms: LatencyMs | None = Field(None, description="delay before each mocked answer")
    mock_error_percent: ErrorPercent | None = Field(
        None, description="share of mocked calls answered with a 500 (resilience testing)"
    )
    validate_requests: StrictFlag | None = Field(
        None, description="400 for requests that break the document; never forwarded or charged"
    )
    validate_responses: StrictFlag | None = Field(
        None, description="test mode: report sandbox answers that break the document (drift)"
    )

    def stored(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


# Request bodies of the registry (`RequestModel`): prices, timeouts and flags are strict
# JSON integers and booleans (`"10"`, `true`, `1.5`, `0`, `"false"` are a 422, never coerced).


class RouteIn(RequestModel):
    method: Method
    path_template: PathTemplate
    price: Price | None = Field(None, description="credits per call; null = the API's price")
    limits: LimitsIn = Field(default_factory=LimitsIn)
    required_scopes: list[Scope] = Field(default_factory=list, max_length=MAX_ROUTE_SCOPES)
    sandbox: SandboxIn | None = Field(None, description="overrides of the API's sandbox settings")
    deprecated: StrictFlag = Field(
        False, description="the gateway adds `Deprecation` to its answers; docs mark it deprecated"
    )
    sunset_at: UtcDatetime | None = Field(
        None,
        description="when the route is retired (`Sunset`), in the future (else a 422 "
        "`sunset-in-past`); calls get 410 from then on",
    )


class RoutePatch(RequestModel):
    """Omitted fields stay as they are; null is a value of `price` (the API's), `sandbox`
    (the API's) and `sunset_at` (no date) only."""

    method: Method | SkipJsonSchema[None] = None
    path_template: PathTemplate | SkipJsonSchema[None] = None
    price: Price | None = None
    limits: LimitsIn | SkipJsonSchema[None] = None
    required_scopes: (
        Annotated[list[Scope], Field(max_length=MAX_ROUTE_SCOPES)] | SkipJsonSchema[None]
    ) = None
    sandbox: SandboxIn | None = None
    deprecated: StrictFlag | SkipJsonSchema[None] = None
    sunset_at: UtcDatetime | None = Field(
        None, description="in the future (else a 422 `sunset-in-past`); null removes the date"
    )


class RouteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    method: str
    path_template: str
    price: int | None
    limits: dict[str, int]
    required_scopes: list[str]
    operation_id: str | None
    sandbox: dict[str, object] | None = None
    deprecated: bool = False
    deprecated_at: datetime | None = Field(None, description="when `deprecated` was last set")
    sunset_at: datetime | None = None


class ApiCreateIn(RequestModel):
    slug: Slug
    name: str = Field(min_length=1, max_length=200)
    api_version: str = Field("v1", min_length=1, max_length=50)
    upstream_url: str = Field(max_length=2048)
    status: Status = "active"
    sunset_at: UtcDatetime | None = None
    timeout_ms: TimeoutMs = 30_000
    price: Price = 0
    charge_failed_calls: StrictFlag = False
    limits: LimitsIn = Field(default_factory=LimitsIn)
    upstream_headers: UpstreamHeaders | None = Field(
        None, description="write-only credential headers injected upstream; sealed at rest"
    )
    routes: list[RouteIn] = Field(default_factory=list, max_length=500)
    sandbox_url: str | None = Field(
        None,
        max_length=2048,
        description="where `tg_test_` keys are forwarded; null: test keys get the mock",
    )
    sandbox: SandboxIn = Field(default_factory=SandboxIn)


class ApiPatch(RequestModel):
    """Only these fields may change. Omitted fields stay as they are; null is a value of
    `sunset_at` (none) and `upstream_headers` (removes the credentials) only."""

    # Constraints inside the Annotated: on the union they would be applied to None too.
    name: Annotated[str, Field(min_length=1, max_length=200)] | SkipJsonSchema[None] = None
    api_version: Annotated[str, Field(min_length=1, max_length=50)] | SkipJsonSchema[None] = None
    upstream_url: Annotated[str, Field(max_length=2048)] | SkipJsonSchema[None] = None
    status: Status | SkipJsonSchema[None] = None
    sunset_at: UtcDatetime | None = None
    timeout_ms: TimeoutMs | SkipJsonSchema[None] = None
    price: Price | SkipJsonSchema[None] = None
    charge_failed_calls: StrictFlag | SkipJsonSchema[None] = None
    limits: LimitsIn | SkipJsonSchema[None] = None
    upstream_headers: UpstreamHeaders | None = None
    sandbox_url: Annotated[str, Field(max_length=2048)] | None = None
    sandbox: SandboxIn | SkipJsonSchema[None] = None


class ApiOut(BaseModel):
    """An API as shown to members and admins; credentials never appear, only whether
    some are configured (and, for admins, the header names). Where the gateway sends
    calls (upstream and sandbox URLs) is for admins: null for members, as the catalog
    never shows it."""

    id: uuid.UUID
    slug: str
    name: str
    api_version: str
    upstream_url: str | None
    status: str
    deprecated_at: datetime | None
    sunset_at: datetime | None
    timeout_ms: int
    price: int
    charge_failed_calls: bool
    limits: dict[str, int]
    has_upstream_credentials: bool
    upstream_header_names: list[str]
    has_openapi_document: bool
    sandbox_url: str | None = None
    sandbox: dict[str, object] = Field(default_factory=dict)
    routes: list[RouteOut]
    version: int
    created_at: datetime
    updated_at: datetime


class ImportOut(BaseModel):
    created: int
    kept: int
    removed: int
    api: ApiOut


class ChangelogEntryOut(BaseModel):
    """What one OpenAPI import changed in an API's operations."""

    id: uuid.UUID
    api_id: uuid.UUID
    api_version: str = Field(description="The API's own version label at the import.")
    version: int = Field(description="Registry version of the API after the import.")
    imported_at: datetime
    breaking: int = Field(description="How many of `changes` are breaking.")
    changes: list[ApiChange] = Field(description="Breaking changes first.")
