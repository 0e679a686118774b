"""The settings base every service extends.

Each service declares one subclass with its own env prefix (`TOLLGATE_<SERVICE>_`),
so a field named `kafka_bootstrap_servers` is set as
`TOLLGATE_BILLING_KAFKA_BOOTSTRAP_SERVERS`. Only fields shared by several services
live here.

A handler asks for its service's settings with the dependency `settings_dependency`
builds once per service (`CurrentSettings` in each service's `config` module);
`create_app(settings=...)` puts them where it looks.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Literal, TypeVar

from fastapi import Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ServiceSettings(BaseSettings):
    """Fields every Tollgate service has; subclass and set `env_prefix`."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field("127.0.0.1", description="interface the HTTP server binds")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port")
    instance_id: str = Field(
        default_factory=_default_instance_id,
        description="name of this replica, used in event sources and client ids",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = Field(True, description="JSON log lines (false: plain text for humans)")
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector, e.g. http://otel:4318 (/v1/traces is appended "
        "unless given)",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="request body cap (413 above)")
    database_pool_size: int = Field(
        10,
        ge=1,
        le=100,
        description="database connections a process keeps open (as many again may open "
        "briefly under load); size it to PostgreSQL's max_connections over every process",
    )
    cors_origins: str = Field(
        "",
        description="comma-separated origins (e.g. https://console.example.com) whose "
        "browser pages may call this API; empty = CORS off",
    )

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="comma-separated")
    kafka_topic_prefix: str = Field(
        "", description="prepended to every topic name (namespaces on a shared cluster)"
    )
    kafka_enable_idempotence: bool = Field(
        True, description="idempotent producer; must be false on the embedded Tansu broker"
    )
    kafka_acks: Literal["all", "1", "0"] = "all"
    kafka_linger_ms: int = Field(5, ge=0, description="producer batching delay")
    kafka_compression: Literal["none", "gzip"] = "none"
    kafka_session_timeout_ms: int = Field(10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    kafka_create_topics: bool = Field(True, description="create missing topics at start-up")
    kafka_replication_factor: int = Field(1, ge=1)

    sealing_keys: str = Field(
        "",
        description="comma-separated Fernet keys, newest first, for secrets that cross "
        "services (upstream credentials, reset tokens); see tollgate.kit.sealing",
    )
    key_pepper: str = Field(
        "", description="server pepper for API key hashes (HMAC-SHA256); empty = SHA-256"
    )

    jwks_url: str = Field(
        "http://127.0.0.1:8081/.well-known/jwks.json",
        description="where the accounts service publishes its token signing keys",
    )
    jwt_issuer: str = "tollgate-accounts"
    jwt_audience: str = "tollgate"


S = TypeVar("S", bound=ServiceSettings)


def settings_dependency(cls: type[S]) -> Callable[[Request], S]:
    """A FastAPI dependency giving the running app's settings as the service's class:
    `CurrentSettings = Annotated[Settings, Depends(settings_dependency(Settings))]`."""

    def current_settings(request: Request) -> S:
        settings = request.app.state.settings
        if not isinstance(settings, cls):
            raise TypeError(f"app.state.settings is not a {cls.__name__}")
        return settings

    return current_settings


def origins(setting: str) -> list[str]:
    """The origins of a comma-separated `cors_origins` value."""
    return [origin.strip().rstrip("/") for origin in setting.split(",") if origin.strip()]
