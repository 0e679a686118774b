"""Settings of the usage service; every field can be set as `TOLLGATE_USAGE_<NAME>`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tollgate.kit.settings import ServiceSettings, settings_dependency


class Settings(ServiceSettings):
    """Usage service settings."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_USAGE_", extra="ignore")

    port: int = Field(8082, ge=1, le=65535, description="HTTP port")
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/tollgate_usage",
        description="this service's own database",
    )
    request_log_retention_days: int = Field(
        7, ge=1, le=366, description="days of raw request log kept (dropped a day at a time)"
    )
    minute_retention_days: int = Field(
        35, ge=2, le=366, description="days of per-minute aggregates kept"
    )
    hour_retention_days: int = Field(
        400, ge=2, le=3660, description="days of per-hour aggregates kept (day views use them)"
    )
    ingest_batch_max_records: int = Field(
        2000, ge=1, le=50_000, description="most request events taken in one transaction"
    )
    offset_commit_interval_seconds: float = Field(
        1.0,
        ge=0,
        description="how often Kafka offsets are committed (0: after every batch); the "
        "positions in the database are the truth, Kafka's only say where to resume",
    )
    max_range_days: int = Field(
        400, ge=1, le=3660, description="longest time range an analytics query may span"
    )
    read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="longest an analytics or log read may take (503 query-timeout above)",
    )
    live_window_seconds: int = Field(
        10, ge=1, le=120, description="seconds of per-second counts in each live update"
    )
    live_max_stream_seconds: int = Field(
        3600, ge=1, le=86_400, description="a live stream ends after this; clients reconnect"
    )
    live_max_streams: int = Field(
        200, ge=1, description="concurrent live streams per replica (503 above)"
    )
    live_max_streams_per_org: int = Field(
        10, ge=1, description="concurrent live streams of one org per replica (429 above)"
    )
    live_max_streams_per_user: int = Field(
        5, ge=1, description="concurrent live streams of one user per replica (429 above)"
    )
    maintenance_interval_seconds: float = Field(
        300.0, gt=0, description="how often partitions are created ahead and old ones dropped"
    )


CurrentSettings = Annotated[Settings, Depends(settings_dependency(Settings))]
"""FastAPI dependency: the running app's settings."""
