"""Events the usage service publishes on `tollgate.usage.events.v1` (key `org_id`).

Usage counts requests per key from the gateway's request stream and tells the org
when a key approaches or reaches its daily or monthly quota, so the notifier can send
an email or webhook before clients start seeing 429s. It also follows the API registry
and tells every org that called an API, or one of its routes, lately when that API or
route is deprecated.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from tollgate.contracts.envelope import EventData, UtcDatetime


class UsagePeriod(StrEnum):
    """The quota window a threshold applies to."""

    DAY = "day"
    MONTH = "month"


class UsageThresholdCrossed(EventData):
    """A key's usage in a period crossed a percentage of its limit.

    Sent by usage once per key, period and threshold (80 % and 100 % today). Kafka key:
    `org_id`.
    """

    event_type = "tollgate.usage.threshold.crossed.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation that owns the key.")
    key_id: UUID = Field(description="Key whose usage crossed the threshold.")
    period: UsagePeriod = Field(description="Quota window: day or month.")
    period_start: date = Field(description="First day of the window (UTC).")
    threshold_percent: int = Field(
        ge=1, le=100, description="Threshold crossed, in percent of `limit` (80 or 100)."
    )
    limit: int = Field(ge=1, description="Requests allowed in the window.")
    used: int = Field(ge=0, description="Requests counted in the window when crossed.")
    crossed_at: UtcDatetime = Field(description="When the threshold was crossed.")


class ApiDeprecationAnnounced(EventData):
    """An API the org called in the last days was deprecated (or its Sunset date moved).

    Sent by usage once per org, API and Sunset date, to the orgs whose live keys called
    the API in the window before the deprecation was seen; test-mode calls do not count.
    Kafka key: `org_id`.
    """

    event_type = "tollgate.usage.api_deprecation.announced.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation whose keys called the API.")
    api_id: UUID = Field(description="The deprecated API.")
    api_slug: str = Field(description="URL slug: the gateway serves the API at `/<slug>/...`.")
    api_name: str = Field(description="Human name of the API.")
    api_version: str = Field(description="The API's own version label, e.g. `v1`.")
    deprecated_at: UtcDatetime | None = Field(
        description="When the API was deprecated (`Deprecation` header); null when not set."
    )
    sunset_at: UtcDatetime | None = Field(
        description="When the API will be retired (`Sunset` header); null when not set yet."
    )
    requests: int = Field(
        ge=1, description="Live requests of the org to the API in the window (rejected included)."
    )
    window_start: UtcDatetime = Field(description="Start of the window the calls were counted in.")
    window_end: UtcDatetime = Field(description="End of the window (when usage saw the change).")


class RouteDeprecationAnnounced(EventData):
    """A route the org called in the last days was deprecated (or its Sunset date moved).

    Sent by usage once per org, route and Sunset date, to the orgs whose live keys called
    the route in the window before the deprecation was seen; test-mode calls do not
    count. From its Sunset date the gateway answers the route's calls 410. Kafka key:
    `org_id`.
    """

    event_type = "tollgate.usage.route_deprecation.announced.v1"
    key_field = "org_id"

    org_id: UUID = Field(description="Organisation whose keys called the route.")
    api_id: UUID = Field(description="The API the route belongs to.")
    api_slug: str = Field(description="URL slug: the gateway serves the API at `/<slug>/...`.")
    api_name: str = Field(description="Human name of the API.")
    api_version: str = Field(description="The API's own version label, e.g. `v1`.")
    route_id: UUID = Field(description="The deprecated route.")
    method: str = Field(description="The route's uppercase HTTP method, or `*` for any.")
    path_template: str = Field(
        description="The route's path template below the API slug, e.g. `/pets/{petId}`."
    )
    deprecated_at: UtcDatetime | None = Field(
        description="When the route was deprecated (`Deprecation` header); null when not set."
    )
    sunset_at: UtcDatetime | None = Field(
        description="When the route will be retired (`Sunset` header); null when not set yet."
    )
    requests: int = Field(
        ge=1,
        description="Live requests of the org to the route in the window (rejected included).",
    )
    window_start: UtcDatetime = Field(description="Start of the window the calls were counted in.")
    window_end: UtcDatetime = Field(description="End of the window (when usage saw the change).")
