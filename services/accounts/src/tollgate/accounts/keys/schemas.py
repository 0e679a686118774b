"""Request and response DTOs of API keys. Responses never carry the key's hash; the
raw key appears only in `KeyIssuedOut`, once, on create and rotate."""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypeAliasType

from tollgate.accounts.limits import LimitsIn
from tollgate.accounts.scopes import Scope
from tollgate.accounts.storable import UtcDatetime, json_unstorable
from tollgate.kit.problems import Unprocessable
from tollgate.kit.requests import JSON_INTEGER, RequestModel, StrictFlag

MAX_METADATA_BYTES = 4096


def canonical_networks(values: list[str]) -> list[str]:
    """CIDRs (or single addresses) in canonical form; a 422 `invalid-network` names the
    first that is not one (the document states the characters only)."""
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError as exc:
            raise Unprocessable(
                "invalid-network", f"Not an IPv4/IPv6 network: {value[:50]!r}."
            ) from exc
    return networks


def check_metadata(value: dict[str, Any]) -> None:
    """A 422 `invalid-metadata` for metadata jsonb cannot store or over 4 KiB of JSON."""
    reason = json_unstorable(value)
    if reason is None and len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
        reason = f"at most {MAX_METADATA_BYTES} bytes of JSON"
    if reason is not None:
        raise Unprocessable("invalid-metadata", f"Invalid metadata: {reason}.")


Cidr = Annotated[
    str,
    Field(
        max_length=64,
        pattern=r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$",
        description="an IPv4/IPv6 address or CIDR (422 `invalid-network` when it is not one)",
    ),
]
# Free-form JSON, documented as such: text anywhere in it (keys too) is NUL-free, as
# RequestModel enforces, and object keys outside that pattern are refused, not open.
_Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]
_Closed = Field(json_schema_extra={"additionalProperties": False})
MetadataValue = TypeAliasType(
    "MetadataValue",
    "_Text | int | float | bool | list[MetadataValue] "
    "| Annotated[dict[_Text, MetadataValue], _Closed] | None",
)
Metadata = Annotated[
    dict[_Text, MetadataValue],
    _Closed,
    Field(
        description=f"free-form JSON, at most {MAX_METADATA_BYTES} bytes (422 `invalid-metadata`)"
    ),
]
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
    """Only these fields may change; anything else (or a read-only field) is a 422.
    Omitted fields stay as they are; null is a value of `expires_at` only (never)."""

    # None marks an omitted field; the document offers null only where it means something
    # (the service refuses it elsewhere with a 422).
    name: KeyName | SkipJsonSchema[None] = None
    enabled: StrictFlag | SkipJsonSchema[None] = None
    expires_at: UtcDatetime | None = None
    # Constraints inside the Annotated: on the union they would be applied to None too.
    scopes: Annotated[list[Scope], Field(max_length=50)] | SkipJsonSchema[None] = None
    allowed_api_ids: Annotated[list[uuid.UUID], Field(max_length=100)] | SkipJsonSchema[None] = None
    limits: LimitsIn | SkipJsonSchema[None] = None
    ip_allowlist: Annotated[list[Cidr], Field(max_length=100)] | SkipJsonSchema[None] = None
    metadata: Metadata | SkipJsonSchema[None] = None


class RotateIn(RequestModel):
    grace_seconds: GraceSeconds | None = Field(
        None, description="how long the old secret keeps working"
    )


class RetiredSecretOut(BaseModel):
    expires_at: datetime


class KeyStatus(StrEnum):
    """Where a key is in its life, for filtering lists."""

    active = "active"  # enabled, not expired, not revoked
    disabled = "disabled"
    expired = "expired"
    revoked = "revoked"


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
