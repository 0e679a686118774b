"""Analytics DTOs. Counts and credits are integers; latencies are milliseconds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tollgate.usage.requestlog.schemas import RequestLogItem

Granularity = Literal["minute", "hour", "day"]
TopDimension = Literal["api", "route", "key", "status"]
TopOrder = Literal["requests", "errors", "rejected", "credits"]


class LatencyStats(BaseModel):
    """Latency of completed requests (rejections excluded), from merged histograms;
    percentiles are within 1 % of the exact nearest-rank value. Null without traffic."""

    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class UsageTotals(BaseModel):
    """What happened in a range."""

    requests: int = Field(description="Every request, completed or rejected.")
    completed: int = Field(description="Requests proxied to the upstream.")
    rejected: int = Field(description="Requests the gateway refused (401/402/403/429...).")
    errors: int = Field(description="Completed requests answered with status ≥ 400.")
    client_errors: int = Field(description="Completed requests answered with 4xx.")
    server_errors: int = Field(description="Completed requests answered with 5xx.")
    error_rate: float = Field(description="errors / completed (0 without traffic).")
    bytes_in: int
    bytes_out: int
    credits: int = Field(description="Credits charged (integer).")
    contract_drift: int = Field(
        0,
        description="Test-mode answers that broke the API's OpenAPI document (response "
        "validation on); the request log lists the violations.",
    )
    latency: LatencyStats


class UsageSummary(UsageTotals):
    """Totals of an org (or, for admins, of everything) over a range."""

    org_id: uuid.UUID | None
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")


class TimeseriesPoint(BaseModel):
    """One bucket of a time series; buckets without traffic are present with zeros."""

    time: datetime = Field(description="Start of the bucket (UTC).")
    requests: int
    rejected: int
    errors: int
    credits: int
    bytes_in: int
    bytes_out: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class Timeseries(BaseModel):
    """Usage over time at a fixed granularity."""

    org_id: uuid.UUID | None
    granularity: Granularity
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    points: list[TimeseriesPoint]


class TopItem(BaseModel):
    """One API, route, key or status and its usage."""

    value: str | None = Field(description="Id or status; null for 'none' (e.g. no route).")
    requests: int
    rejected: int
    errors: int
    credits: int
    latency: LatencyStats


class TopList(BaseModel):
    """The busiest values of a dimension."""

    org_id: uuid.UUID | None
    by: TopDimension
    order_by: TopOrder
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    items: list[TopItem]


class ErrorCount(BaseModel):
    """Requests with one status and rejection reason."""

    status: int
    rejection_reason: str | None
    requests: int


class ErrorBreakdown(BaseModel):
    """Errors and rejections of a range, by status class, reason and status."""

    org_id: uuid.UUID | None
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    requests: int
    by_class: dict[str, int] = Field(description="Completed errors per class: 4xx, 5xx.")
    rejected_by_reason: dict[str, int]
    items: list[ErrorCount]


class QuotaStanding(BaseModel):
    """A key's limits and what it used in the current UTC day and month."""

    per_day: int | None
    used_today: int
    per_month: int | None
    used_this_month: int


class KeyStats(BaseModel):
    """One key: totals over the range, quota standing and its latest requests."""

    key_id: uuid.UUID
    org_id: uuid.UUID
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    totals: UsageTotals
    quota: QuotaStanding
    recent: list[RequestLogItem]
