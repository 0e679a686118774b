"""Events the gateway publishes on `tollgate.gateway.requests.v1`: one per request.

Every request that reaches the gateway produces exactly one event: `RequestCompleted`
when it was proxied to the upstream (whatever the upstream answered, including 502/504
when it failed), `RequestRejected` when the gateway answered itself. The envelope id
equals `request_id`, so usage and billing deduplicate redeliveries on it. Neither event
carries key material, query strings or headers: only ids and measurements.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, Field

from tollgate.contracts.envelope import CREDITS_MAX, EventData, UtcDatetime

_PATH_PATTERN = r"^[^?#\x00]*$"  # the query string may carry `api_key`: never in an event
_TEXT = r"^[^\x00]*$"  # no NUL: no consumer's database can store it
# Bounds every consumer's columns hold: an event past them would be refused by the
# database on every retry, and block its partition.
_MS_MAX = 2**31 - 1  # about 24.8 days
_COUNT_MAX = 2**63 - 1


def _plausible(value: datetime) -> datetime:
    if not 2000 <= value.year < 2200:
        raise ValueError("a request time between the years 2000 and 2199")
    return value


RequestTime = Annotated[UtcDatetime, AfterValidator(_plausible)]


class RejectionReason(StrEnum):
    """Why the gateway answered a request itself instead of proxying it."""

    UNKNOWN_API = "unknown_api"
    MISSING_KEY = "missing_key"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED_KEY = "expired_key"
    DISABLED_KEY = "disabled_key"
    IP_NOT_ALLOWED = "ip_not_allowed"
    API_NOT_ALLOWED = "api_not_allowed"
    ROUTE_NOT_ALLOWED = "route_not_allowed"
    SCOPE_MISSING = "scope_missing"
    CREDITS_EXHAUSTED = "credits_exhausted"
    RATE_LIMITED = "rate_limited"
    API_RETIRED = "api_retired"  # the API, or the matched route past its Sunset (route_id set)
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_INVALID = "request_invalid"  # violates the API's OpenAPI document (validation on)
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"  # test key, no sandbox upstream and no mock


class RequestMode(StrEnum):
    """Which kind of key made a request: `live` traffic is charged, `test` never is."""

    LIVE = "live"
    TEST = "test"


class ServedBy(StrEnum):
    """Who produced the answer of a completed request."""

    UPSTREAM = "upstream"
    SANDBOX = "sandbox"
    MOCK = "mock"


class RequestCompleted(EventData):
    """A request was authenticated, admitted and proxied to the upstream.

    Sent by the gateway after the response has been sent to the client (off the hot
    path), once per request. Kafka key: `org_id`. The envelope id equals `request_id`.
    """

    event_type = "tollgate.gateway.request.completed.v1"
    key_field = "org_id"
    id_field = "request_id"

    request_id: UUID = Field(description="Request id (UUIDv7); equals the envelope id.")
    time: RequestTime = Field(
        description="When the gateway received the request (UTC; years 2000 to 2199)."
    )
    org_id: UUID = Field(description="Organisation that owns the key.")
    key_id: UUID = Field(description="API key that authenticated the request.")
    api_id: UUID = Field(description="API the request was routed to.")
    route_id: UUID | None = Field(
        None, description="Matched route of the API; null when no route matched."
    )
    method: str = Field(min_length=1, pattern=_TEXT, description="HTTP method, e.g. `GET`.")
    path: str = Field(
        pattern=_PATH_PATTERN,
        description="Path below the API slug as forwarded upstream, without query string.",
    )
    status: int = Field(ge=100, le=599, description="HTTP status returned to the client.")
    latency_ms: int = Field(
        ge=0,
        le=_MS_MAX,
        description="Total latency observed by the gateway, first byte in to last out.",
    )
    upstream_latency_ms: int = Field(
        ge=0,
        le=_MS_MAX,
        description="Time spent waiting for the upstream, included in `latency_ms`.",
    )
    request_bytes: int = Field(ge=0, le=_COUNT_MAX, description="Request body size in bytes.")
    response_bytes: int = Field(ge=0, le=_COUNT_MAX, description="Response body size in bytes.")
    client_ip: str = Field(
        pattern=_TEXT, description="Client IP address (after trusted proxy handling)."
    )
    cost: int = Field(
        ge=0, le=CREDITS_MAX, description="Credits charged for this request (integer)."
    )
    gateway_instance: str = Field(
        pattern=_TEXT, description="Gateway replica that served the request."
    )
    mode: RequestMode = Field(
        RequestMode.LIVE,
        description=(
            "`test` for a `tg_test_` key (never charged; served by the sandbox upstream "
            "or the mock), `live` otherwise. Absent in events before test mode: live."
        ),
    )
    served_by: ServedBy = Field(
        ServedBy.UPSTREAM,
        description="Who answered: the live upstream, the sandbox upstream or the built-in mock.",
    )
    contract_drift: list[str] | None = Field(
        None,
        description=(
            "Response validation (test mode, when enabled): the ways the answer violated "
            "the API's OpenAPI document, as `<JSON pointer>: <message>`; null when not "
            "checked, empty when it conformed. The answer itself is never altered."
        ),
    )


class RequestRejected(EventData):
    """The gateway refused a request without calling the upstream.

    Sent by the gateway after the error response, once per rejected request. Kafka key:
    `org_id` (null when the key could not be resolved). The envelope id equals
    `request_id`.
    """

    event_type = "tollgate.gateway.request.rejected.v1"
    key_field = "org_id"
    id_field = "request_id"

    request_id: UUID = Field(description="Request id (UUIDv7); equals the envelope id.")
    time: RequestTime = Field(
        description="When the gateway received the request (UTC; years 2000 to 2199)."
    )
    org_id: UUID | None = Field(None, description="Organisation of the key, when known.")
    key_id: UUID | None = Field(None, description="API key presented, when it was resolved.")
    api_id: UUID | None = Field(None, description="API addressed, when the slug was known.")
    route_id: UUID | None = Field(None, description="Route matched, when one was.")
    method: str = Field(min_length=1, pattern=_TEXT, description="HTTP method, e.g. `GET`.")
    path: str = Field(
        pattern=_PATH_PATTERN,
        description=(
            "Request path below the API slug (the whole path when the API is unknown), "
            "without query string."
        ),
    )
    status: int = Field(ge=100, le=599, description="HTTP status returned to the client.")
    reason: RejectionReason = Field(description="Why the request was rejected.")
    latency_ms: int = Field(
        ge=0, le=_MS_MAX, description="Time the gateway took to reject the request."
    )
    client_ip: str = Field(
        pattern=_TEXT, description="Client IP address (after trusted proxy handling)."
    )
    gateway_instance: str = Field(
        pattern=_TEXT, description="Gateway replica that served the request."
    )
    mode: RequestMode = Field(
        RequestMode.LIVE,
        description=(
            "`test` for a `tg_test_` key (never charged; served by the sandbox upstream "
            "or the mock), `live` otherwise. Absent in events before test mode: live."
        ),
    )
    violations: list[str] | None = Field(
        None,
        description=(
            "For `request_invalid`: each violation as `<JSON pointer>: <message>` "
            "(pointer into the request: `/body/...`, `/query/<name>`, `/header/<name>`, "
            "`/path/<name>`)."
        ),
    )
