"""Settings of the gateway; every field can be set as `TOLLGATE_GATEWAY_<NAME>`."""

from __future__ import annotations

import os
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

    workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="gateway processes serving one port (SO_REUSEPORT); default: the "
        "usable cores when limits are counted in Redis, else 1 (local limits are per "
        "process); 1 runs today's single process without a supervisor",
    )
    rate_limit_policy: Literal["local", "redis"] | None = Field(
        None,
        description="`local`: limits counted in this process; `redis`: cluster-wide in "
        "Redis; default `redis` when `redis_url` is set and more than one worker runs, "
        "else `local`",
    )
    local_limits_per_worker: bool = Field(
        False,
        description="allow `local` limits with more than one worker (each process then "
        "counts on its own: a client spread over N workers gets up to N times a limit)",
    )
    worker_slot: int | None = Field(
        None,
        ge=0,
        description="set by the supervisor for its workers: spool subdirectory "
        "`worker-<slot>` and instance id suffix; not for operators",
    )
    worker_ready_fd: int | None = Field(
        None, description="set by the supervisor: a pipe the worker writes to once ready"
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
    cors_origins: str = Field(
        "",
        description="comma-separated browser origins (e.g. the console's, for the portal's "
        "try-it panel) allowed to call APIs through the gateway; preflights from them are "
        "answered without a key; empty: no CORS",
    )
    refuse_unknown_orgs: bool = Field(
        False,
        description="answer 402 for an org no balance state was published for yet (billing "
        "publishes one when an org is created): no free calls before billing has seen an "
        "org; turn on wherever billing runs",
    )
    mock_state_keys: int = Field(
        10_000,
        ge=1,
        description="stateful mock: (API, key) spaces kept in memory per process; the least "
        "recently used is dropped beyond it",
    )
    mock_state_items: int = Field(
        1_000,
        ge=1,
        description="stateful mock: resources kept per (API, key) space; the least recently "
        "written is dropped beyond it",
    )
    mock_state_bytes: int = Field(
        64 * 1024 * 1024,
        ge=65_536,
        description="stateful mock: bytes of JSON kept in memory per process, all spaces "
        "together; the oldest resource of the least recently used space is dropped beyond it",
    )
    identity_secrets: str = Field(
        "",
        description="comma-separated HMAC secrets (newest first) signing the caller identity "
        "headers sent upstream (X-Tollgate-*); empty: no identity is forwarded (client "
        "copies are still stripped)",
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
    trace_sample_ratio: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="with `otlp_endpoint`: share of new traces recorded (parent-based: a "
        "client's sampled flag decides for its trace); OTEL_TRACES_SAMPLER overrides it",
    )
    client_header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a new connection's request head must be complete by then, and each "
        "later head this long after its first byte",
    )
    max_head_bytes: int = Field(
        65_536,
        ge=8_192,
        le=1_048_576,
        description="largest request head (every header field's name and value together; "
        "one field is at most 16 KiB): a larger one is answered 431 and never forwarded",
    )
    client_body_idle_timeout_s: float = Field(
        30.0, gt=0, description="longest silence while a request body arrives (then 408)"
    )
    client_keepalive_timeout_s: float = Field(
        75.0, gt=0, description="idle kept-alive client connections are closed after this"
    )
    client_send_timeout_s: float = Field(
        60.0, gt=0, description="a client that reads none of its answer this long is cut off"
    )
    max_connections_per_ip: int = Field(
        256,
        ge=0,
        description="open connections per client address (0: unlimited); trusted proxies "
        "are exempt",
    )
    shutdown_grace_s: float = Field(15.0, ge=0, description="drain time for in-flight requests")

    @model_validator(mode="after")
    def _workers_and_policy(self) -> Settings:
        # Resolved here so every part of the process sees the effective values.
        redis_configured = "redis_url" in self.model_fields_set
        if self.workers is None:
            redis = self.rate_limit_policy == "redis" or (
                self.rate_limit_policy is None and redis_configured
            )
            self.workers = usable_cpus() if redis else 1
        if self.rate_limit_policy is None:
            self.rate_limit_policy = "redis" if redis_configured and self.workers > 1 else "local"
        if (
            self.workers > 1
            and self.rate_limit_policy == "local"
            and not (self.local_limits_per_worker)
        ):
            raise ValueError(
                "workers > 1 with the local limit policy counts every limit once per "
                "worker: set rate_limit_policy=redis (and redis_url), or "
                "local_limits_per_worker=true to accept it"
            )
        return self

    @model_validator(mode="after")
    def _default_spool_dir(self) -> Settings:
        # Derived from the port so replicas on one host never share (and lock) a spool,
        # and a restarted replica finds the spool it left behind.
        if self.spool_dir is None:
            self.spool_dir = Path(tempfile.gettempdir()) / f"tollgate-gateway-spool-{self.port}"
        return self

    @property
    def spool_path(self) -> Path:
        """The spool directory (always set after validation): a worker's own
        `worker-<slot>` subdirectory when a supervisor runs several."""
        assert self.spool_dir is not None
        if self.worker_slot is not None:
            return self.spool_dir / f"worker-{self.worker_slot}"
        return self.spool_dir

    @property
    def worker_count(self) -> int:
        """Gateway processes (always set after validation)."""
        assert self.workers is not None
        return self.workers


def usable_cpus() -> int:
    """Cores this process may run on (its affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
