"""Request and response DTOs of the API registry. Upstream credential headers are
write-only: accepted in requests, never present in any response."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tollgate.accounts.keys.schemas import Scope
from tollgate.accounts.limits import LimitsIn
from tollgate.accounts.storable import UtcDatetime
from tollgate.kit.requests import JSON_INTEGER, RequestModel, StrictFlag

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
_HOP_BY_HOP = frozenset(
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
MAX_HEADERS = 20


def _headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} upstream headers")
    for name, header_value in value.items():
        if not _TOKEN.fullmatch(name) or name.lower() in _HOP_BY_HOP:
            raise ValueError(f"header name not allowed: {name[:100]!r}")
        # Visible ASCII, space and tab: what every HTTP client can send (RFC 9110 §5.5
        # without obs-text); anything else would fail at the gateway, call after call.
        if len(header_value) > 4096 or not _FIELD_VALUE.fullmatch(header_value):
            raise ValueError(f"invalid value for header {name!r} (visible ASCII only)")
    return value


UpstreamHeaders = Annotated[dict[str, str], AfterValidator(_headers)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=63)]
Method = Annotated[str, Field(pattern=r"^([A-Z]{1,10}|\*)$")]
PathTemplate = Annotated[str, Field(pattern=r"^/[^\s?#]*$", max_length=1024)]
Status = Literal["active", "deprecated", "retired"]
Price = Annotated[int, Field(ge=0, le=1_000_000_000_000), JSON_INTEGER]
TimeoutMs = Annotated[int, Field(ge=1, le=300_000), JSON_INTEGER]


class Strict(RequestModel):
    """Request bodies of the registry; prices, timeouts and flags are strict JSON integers
    and booleans (`"10"`, `true`, `1.5`, `0`, `"false"` are a 422, never coerced)."""


class RouteIn(Strict):
    method: Method
    path_template: PathTemplate
    price: Price | None = Field(None, description="credits per call; null = the API's price")
    limits: LimitsIn = Field(default_factory=LimitsIn)
    required_scopes: list[Scope] = Field(default_factory=list, max_length=50)


class RoutePatch(Strict):
    method: Method | None = None
    path_template: PathTemplate | None = None
    price: Price | None = None
    limits: LimitsIn | None = None
    required_scopes: list[Scope] | None = Field(None, max_length=50)


class RouteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    method: str
    path_template: str
    price: int | None
    limits: dict[str, int]
    required_scopes: list[str]
    operation_id: str | None


class ApiCreateIn(Strict):
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


class ApiPatch(Strict):
    """Only these fields may change (null `upstream_headers` removes the credentials)."""

    name: str | None = Field(None, min_length=1, max_length=200)
    api_version: str | None = Field(None, min_length=1, max_length=50)
    upstream_url: str | None = Field(None, max_length=2048)
    status: Status | None = None
    sunset_at: UtcDatetime | None = None
    timeout_ms: TimeoutMs | None = None
    price: Price | None = None
    charge_failed_calls: StrictFlag | None = None
    limits: LimitsIn | None = None
    upstream_headers: UpstreamHeaders | None = None


class ApiOut(BaseModel):
    """An API as shown to members and admins; credentials never appear, only whether
    some are configured (and, for admins, the header names)."""

    id: uuid.UUID
    slug: str
    name: str
    api_version: str
    upstream_url: str
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
    routes: list[RouteOut]
    version: int
    created_at: datetime
    updated_at: datetime


class ImportOut(BaseModel):
    created: int
    kept: int
    removed: int
    api: ApiOut
