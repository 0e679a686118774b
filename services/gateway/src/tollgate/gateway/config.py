"""Settings of the gateway; every field can be set as `TOLLGATE_GATEWAY_<NAME>`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from tollgate.kit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Gateway settings."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_GATEWAY_", extra="ignore")

    port: int = Field(8080, ge=1, le=65535, description="HTTP port")

    rate_limit_policy: Literal["local", "redis"] = Field(
        "local",
        description="`local`: limits counted in this process; `redis`: cluster-wide in Redis",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for `redis` policy")
    redis_timeout_ms: int = Field(
        50, ge=1, description="a Redis limit check slower than this falls back"
    )
    redis_fallback: Literal["local", "closed", "open"] = Field(
        "local",
        description="when Redis is down: `local` limits, `closed` (reject 503) or `open`",
    )
    redis_retry_ms: int = Field(
        1000, ge=10, description="after a Redis failure, how long to stay on the fallback"
    )
    global_per_second: int | None = Field(None, ge=1, description="gateway-wide limit")
    global_per_minute: int | None = Field(None, ge=1, description="gateway-wide limit")

    spool_dir: Path | None = Field(
        None,
        description="on-disk spool for request events while Kafka is unreachable, one "
        "directory per replica (locked); default <tmp>/tollgate-gateway-spool-<port>. "
        "Put it on a persistent volume in production",
    )
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20, description="spool cap; above: drop")
    events_batch_size: int = Field(500, ge=1, description="events per produce batch")
    events_linger_ms: int = Field(20, ge=1, description="max wait before a batch is produced")
    events_spill_after_ms: int = Field(
        2000,
        ge=10,
        description="a produce batch unacknowledged this long sends new events to the spool",
    )
    events_memory_max: int = Field(
        20_000, ge=100, description="events queued in memory before spilling to the spool"
    )

    upstream_connections: int = Field(
        512, ge=1, description="pooled keep-alive connections per upstream host"
    )
    upstream_connect_timeout_ms: int = Field(2000, ge=1)
    upstream_read_timeout_ms: int = Field(
        60_000,
        ge=1,
        description="longest silence while streaming an upstream body (the API's own "
        "timeout bounds the wait for the response head)",
    )
    allow_private_upstreams: bool = Field(
        False,
        description="allow upstreams on loopback and private addresses (local runs); "
        "link-local and metadata addresses stay refused",
    )
    upstream_allowed_networks: str = Field(
        "",
        description="comma-separated CIDRs upstreams may be on whatever the other rules say",
    )
    upstream_dns_ttl_s: float = Field(
        30.0,
        gt=0,
        description="how long a checked resolution of an upstream name is used before it is "
        "resolved and checked again (in the background)",
    )
    trusted_proxies: str = Field(
        "",
        description="comma-separated CIDRs whose X-Forwarded-For/Proto are believed "
        "(client IP = last untrusted hop)",
    )
    ops_host: str | None = Field(
        None,
        description="interface of the operational listener (/_tollgate/healthz, readyz, "
        "metrics); default: `host`",
    )
    ops_port: int = Field(
        9080,
        ge=0,
        le=65535,
        description="port of the operational listener; 0: none (then only what "
        "`public_ops` exposes is served)",
    )
    public_ops: Literal["none", "probes", "all"] = Field(
        "probes",
        description="operational endpoints also served on the public port: `probes` "
        "(healthz and readyz, for load balancers), `all` (metrics too) or `none`",
    )
    client_header_timeout_s: float = Field(
        10.0, gt=0, description="a new connection's request head must be complete by then"
    )
    client_body_idle_timeout_s: float = Field(
        30.0, gt=0, description="longest silence while a request body arrives (then 408)"
    )
    client_keepalive_timeout_s: float = Field(
        75.0, gt=0, description="idle kept-alive client connections are closed after this"
    )
    max_connections_per_ip: int = Field(
        256,
        ge=0,
        description="open connections per client address (0: unlimited); trusted proxies "
        "are exempt",
    )
    shutdown_grace_s: float = Field(15.0, ge=0, description="drain time for in-flight requests")

    @model_validator(mode="after")
    def _default_spool_dir(self) -> Settings:
        # Derived from the port so replicas on one host never share (and lock) a spool,
        # and a restarted replica finds the spool it left behind.
        if self.spool_dir is None:
            self.spool_dir = Path(tempfile.gettempdir()) / f"tollgate-gateway-spool-{self.port}"
        return self

    @property
    def spool_path(self) -> Path:
        """The spool directory (always set after validation)."""
        assert self.spool_dir is not None
        return self.spool_dir
