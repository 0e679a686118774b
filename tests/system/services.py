"""Start Tollgate services as real processes for system tests.

Each service runs as `python -m tollgate.<name>` with its settings in the
environment, a fresh database with migrations applied, the harness's broker and a
per-test topic prefix, exactly as `make up` runs it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tollgate.kit import localdeps


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
        self.starts += 1
        ready = "/_tollgate/readyz" if self.name == "gateway" else "/readyz"
        self.proc = localdeps.start_program(
            f"{self.name}-{self.starts}",
            [sys.executable, "-m", f"tollgate.{self.name}"],
            self.workdir,
            port=self.port,
            env=self.env,
            ready_path=ready,
            timeout=60,
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
