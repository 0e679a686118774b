"""Migrated test databases without running the migrations per test.

The harness migrates one template database per migrations package per session
(`Harness.migrated_template`) and gives each test its own copy of it
(`CREATE DATABASE ... TEMPLATE`, a file-level copy in Postgres, far cheaper than
running every migration again). A copy is a real, separate database, so tests that
run service processes or use several connections see ordinary committed data and
never each other's rows.

`ensure_migrated(package, url)` is what a service's test factories call on a
database they are handed: a no-op (one query) on a copy of the template, a full
`upgrade head` on anything else.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from tollgate.kit import localdeps

__all__ = ["ensure_migrated", "head_revisions", "upgrade_head"]


@functools.cache
def head_revisions(package: str) -> frozenset[str]:
    """The head revision ids of `package`'s migrations (read once per process)."""
    from alembic.script import ScriptDirectory

    from tollgate.kit.migrations import alembic_config

    config = alembic_config(package, "postgresql+asyncpg://unused/unused")
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def applied_revisions(url: str) -> frozenset[str]:
    """The revisions recorded in `url`'s `alembic_version` table (empty without one)."""
    asyncpg = localdeps._asyncpg()
    dsn = localdeps._asyncpg_dsn(url)

    async def _read() -> frozenset[str]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
            if not exists:
                return frozenset()
            rows = await conn.fetch("SELECT version_num FROM alembic_version")
            return frozenset(row["version_num"] for row in rows)
        finally:
            await conn.close()

    return localdeps._run_sync(_read)


def upgrade_head(package: str, url: str) -> None:
    """`alembic upgrade head`, callable from sync code inside a running event loop too
    (alembic's env runs its own loop, so it then runs on a worker thread)."""
    from tollgate.kit.migrations import upgrade_head as upgrade

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        upgrade(package, url)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(upgrade, package, url).result()


def ensure_migrated(package: str, url: str) -> str:
    """Apply `package`'s migrations to `url` unless it is at head already; returns `url`.
    Synchronous: call it through `asyncio.to_thread` from async code."""
    if applied_revisions(url) != head_revisions(package):
        upgrade_head(package, url)
    return url
