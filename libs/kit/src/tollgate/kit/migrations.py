"""Alembic wiring shared by every service.

Each service keeps its revisions inside its package (`tollgate/<svc>/migrations/`),
so `python -m tollgate.<svc> migrate` works from a wheel as well as a checkout. The
service's `env.py` is two lines: import the metadata and call `run_env(metadata)`.
"""

from __future__ import annotations

import asyncio

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(package: str, database_url: str) -> Config:
    """Alembic config for `package` (e.g. "tollgate.billing") against `database_url`."""
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_head(package: str, database_url: str) -> None:
    """Apply every migration of `package`. Synchronous: call it outside an event loop
    (or through `asyncio.to_thread`)."""
    command.upgrade(alembic_config(package, database_url), "head")


def _run_sync(connection: Connection, metadata: MetaData) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str, metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync, metadata)
    finally:
        await engine.dispose()


def run_env(metadata: MetaData) -> None:
    """Body of a service's alembic `env.py` (online mode only)."""
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; run through `python -m tollgate.<svc>`")
    asyncio.run(_run_async(url, metadata))
