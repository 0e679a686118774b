"""Start Tollgate services as real processes for system tests.

Each service runs as `python -m tollgate.<name>` with its settings in the
environment, a fresh database with migrations applied, the harness's broker and a
per-test topic prefix, exactly as `make up` runs it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tollgate.kit import localdeps
from tollgate.kit.sealing import new_sealing_key


@dataclass
class ServiceProcess:
    """A service under test; `restart()` brings it back with the same settings."""

    name: str
    port: int
    env: dict[str, str]
    workdir: Path
    proc: localdeps.LocalProcess | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        start_all([self])

    def next_program(self) -> localdeps.Program:
        """What `start` runs, its log numbered by the start."""
        self.starts += 1
        return localdeps.Program(
            f"{self.name}-{self.starts}",
            [sys.executable, "-m", f"tollgate.{self.name}"],
            self.port,
            env=self.env,
            ready_path="/_tollgate/readyz" if self.name == "gateway" else "/readyz",
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=20)

    def logs(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"{self.name}-*.log"))
        )


def start_all(services: Sequence[ServiceProcess]) -> None:
    """Start `services` together and wait until each is ready (a service waits for what
    it needs from the others, as in production): a stack is up in about the time of its
    slowest service instead of the sum."""
    workdirs = {service.workdir for service in services}
    assert len(workdirs) == 1, "one stack, one folder"
    if len(services) > 1:
        # As compose, Helm and `make up` do: every topic exists before any service
        # starts. Without it, services started together (several creating the same
        # topics at once) left the SMS tests' gateway without the org's balance: 402s.
        first = services[0]
        prefix = f"TOLLGATE_{first.name.upper()}_"
        kafka = {
            f"TOLLGATE_{name}": first.env[prefix + name]
            for name in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC_PREFIX")
        }
        localdeps.run_checked(
            [sys.executable, "-m", "tollgate.kit.topics_init"], env={**os.environ, **kafka}
        )
    programs = [service.next_program() for service in services]
    procs = localdeps.start_programs(programs, workdirs.pop(), timeout=60)
    for service, proc in zip(services, procs, strict=True):
        service.proc = proc


def service_process(
    name: str,
    workdir: Path,
    *,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str | None = None,
    extra: dict[str, str] | None = None,
) -> ServiceProcess:
    """Prepare (migrate) a service; call `.start()` to run it."""
    port = localdeps.free_port()
    prefix = f"TOLLGATE_{name.upper()}_"
    values = {
        "PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        # Two test workers run a stack each beside in-process tests: small pools keep
        # every process within PostgreSQL's default 100 connections.
        "DATABASE_POOL_SIZE": "3",
        **(extra or {}),
    }
    if database_url:
        values["DATABASE_URL"] = database_url
    env = {**os.environ, **{prefix + k: v for k, v in values.items()}, "PYTHONUNBUFFERED": "1"}
    if database_url:
        localdeps.run_checked([sys.executable, "-m", f"tollgate.{name}", "migrate"], env=env)
    return ServiceProcess(name=name, port=port, env=env, workdir=workdir)


ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "operator-Pass-2026"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Platform:
    """Accounts, the gateway, billing when asked for, and the demo upstream on
    loopback, prepared (migrated) as `make up` runs them; `running()` starts them."""

    accounts: ServiceProcess
    gateway: ServiceProcess
    billing: ServiceProcess | None
    workdir: Path
    upstream_port: int = field(default_factory=localdeps.free_port)

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PlatformClients]:
        """Every part started; clients of accounts and billing signed in as the
        platform admin, and of the gateway; everything stopped on the way out."""
        services = [s for s in (self.accounts, self.billing, self.gateway) if s is not None]
        upstream = localdeps.start_program(
            "upstream",
            [
                sys.executable,
                str(ROOT / "infra" / "demo_upstream.py"),
                "--port",
                str(self.upstream_port),
            ],
            self.workdir,
            port=self.upstream_port,
            ready_path="/healthz",
        )
        try:
            start_all(services)
            billing_url = self.billing.url if self.billing else self.accounts.url
            async with (
                httpx.AsyncClient(base_url=self.accounts.url, timeout=10) as acc,
                httpx.AsyncClient(base_url=billing_url, timeout=10) as bil,
                httpx.AsyncClient(base_url=self.gateway.url, timeout=10) as gw,
            ):
                login = await acc.post(
                    "/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
                )
                assert login.status_code == 200, login.text
                admin = {"authorization": f"Bearer {login.json()['access_token']}"}
                acc.headers.update(admin)
                bil.headers.update(admin)
                yield PlatformClients(acc, bil, gw)
        finally:
            for service in reversed(services):
                service.stop()
            upstream.stop()


@dataclass
class PlatformClients:
    accounts: httpx.AsyncClient
    billing: httpx.AsyncClient
    gateway: httpx.AsyncClient


def platform(
    workdir: Path,
    *,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
    name: str,
    billing: dict[str, str] | None = None,
    gateway: dict[str, str] | None = None,
) -> Platform:
    """A `Platform` whose databases are named after `name`; billing runs when
    `billing` (its extra settings, JWKS added) is given; `gateway` adds settings."""
    secrets = {"SEALING_KEYS": new_sealing_key(), "KEY_PEPPER": uuid.uuid4().hex}
    broker = {"kafka_bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix}
    accounts = service_process(
        "accounts",
        workdir,
        **broker,
        database_url=database_factory(f"{name}_accounts"),
        extra={
            **secrets,
            "SIGNING_KEY_FILE": str(workdir / "signing.pem"),
            "SIGNING_KEY_GENERATE": "true",
            "ALLOW_PRIVATE_UPSTREAMS": "true",
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
        },
    )
    billing_process = None
    if billing is not None:
        billing_process = service_process(
            "billing",
            workdir,
            **broker,
            database_url=database_factory(f"{name}_billing"),
            extra={"JWKS_URL": f"{accounts.url}/.well-known/jwks.json", **billing},
        )
    gateway_process = service_process(
        "gateway",
        workdir,
        **broker,
        extra={
            **secrets,
            "SPOOL_DIR": str(workdir / "spool"),
            "ALLOW_PRIVATE_UPSTREAMS": "true",  # the demo upstream is on loopback
            **(gateway or {}),
        },
    )
    return Platform(accounts, gateway_process, billing_process, workdir)
