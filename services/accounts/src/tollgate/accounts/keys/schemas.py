"""Request and response DTOs of API keys. Responses never carry the key's hash; the
raw key appears only in `KeyIssuedOut`, once, on create and rotate."""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from tollgate.accounts.limits import LimitsIn
from tollgate.accounts.storable import UtcDatetime, storable_json
from tollgate.kit.requests import JSON_INTEGER, RequestModel, StrictFlag

MAX_METADATA_BYTES = 4096
Scope = Annotated[str, Field(pattern=r"^[A-Za-z0-9:._/*-]{1,64}$")]


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as exc:
        raise ValueError(f"not an IPv4/IPv6 network: {value[:50]!r}") from exc


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    storable_json(value)
    if len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
    return value


Cidr = Annotated[str, Field(max_length=64), AfterValidator(_cidr)]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
KeyName = Annotated[str, Field(min_length=1, max_length=200)]
GraceSeconds = Annotated[int, Field(ge=0, le=30 * 86_400), JSON_INTEGER]


class KeyFields(RequestModel):
    """The changeable fields of a key."""

    name: KeyName
    enabled: StrictFlag = True
    expires_at: UtcDatetime | None = None
    scopes: list[Scope] = Field(default_factory=list, max_length=50)
    allowed_api_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=100, description="empty = every API"
    )
    limits: LimitsIn = Field(default_factory=LimitsIn)
    ip_allowlist: list[Cidr] = Field(default_factory=list, max_length=100)
    metadata: Metadata = Field(default_factory=dict)


class KeyCreateIn(KeyFields):
    environment: Literal["live", "test"] = "live"


class KeyPatch(RequestModel):
    """Only these fields may change; anything else (or a read-only field) is a 422."""

    name: KeyName | None = None
    enabled: StrictFlag | None = None
    expires_at: UtcDatetime | None = None
    scopes: list[Scope] | None = Field(None, max_length=50)
    allowed_api_ids: list[uuid.UUID] | None = Field(None, max_length=100)
    limits: LimitsIn | None = None
    ip_allowlist: list[Cidr] | None = Field(None, max_length=100)
    metadata: Metadata | None = None


class RotateIn(RequestModel):
    grace_seconds: GraceSeconds | None = Field(
        None, description="how long the old secret keeps working"
    )


class RetiredSecretOut(BaseModel):
    expires_at: datetime


class KeyOut(BaseModel):
    """A key as listed: prefix and last 4 only, never the key or its hash."""

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
    ip_allowlist: list[str]
    metadata: dict[str, Any]
    retired_secrets: list[RetiredSecretOut]
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


class KeyIssuedOut(KeyOut):
    """Returned once by create and rotate: `key` is the raw secret; store it now."""

    key: str
