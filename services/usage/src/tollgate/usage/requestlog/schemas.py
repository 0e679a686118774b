"""Request log DTOs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tollgate.kit.pagination import Page
from tollgate.usage.models import RequestLogEntry


class RequestLogItem(BaseModel):
    """One request as the gateway reported it."""

    request_id: uuid.UUID
    time: datetime = Field(description="When the gateway received the request (UTC).")
    org_id: uuid.UUID | None
    key_id: uuid.UUID | None
    api_id: uuid.UUID | None
    route_id: uuid.UUID | None
    method: str
    path: str = Field(description="Path below the API slug, without query string.")
    status: int
    outcome: Literal["completed", "rejected"]
    rejection_reason: str | None = Field(description="Why the gateway rejected it, if it did.")
    latency_ms: int
    upstream_latency_ms: int | None
    request_bytes: int | None
    response_bytes: int | None
    client_ip: str
    cost: int = Field(description="Credits charged (integer).")
    gateway_instance: str
    mode: Literal["live", "test"] = Field(
        "live", description="`test` for a `tg_test_` key (never charged)."
    )
    served_by: str | None = Field(
        None, description="Who answered a completed request: `upstream`, `sandbox` or `mock`."
    )
    contract_drift: list[str] | None = Field(
        None,
        description="How a checked answer broke the API's OpenAPI document "
        "(`<pointer>: <message>`); null when not checked.",
    )

    @classmethod
    def of(cls, row: RequestLogEntry) -> RequestLogItem:
        return cls(
            request_id=row.request_id,
            time=row.time,
            org_id=row.org_id,
            key_id=row.key_id,
            api_id=row.api_id,
            route_id=row.route_id,
            method=row.method,
            path=row.path,
            status=row.status,
            outcome="rejected" if row.outcome == "rejected" else "completed",
            rejection_reason=row.reason,
            latency_ms=row.latency_ms,
            upstream_latency_ms=row.upstream_latency_ms,
            request_bytes=row.request_bytes,
            response_bytes=row.response_bytes,
            client_ip=row.client_ip,
            cost=row.cost,
            gateway_instance=row.gateway_instance,
            mode="test" if row.mode == "test" else "live",
            served_by=row.served_by,
            contract_drift=row.contract_drift,
        )


RequestLogPage = Page[RequestLogItem]
"""A page of the request log, newest first."""
