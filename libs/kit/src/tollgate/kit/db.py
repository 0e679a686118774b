"""Async SQLAlchemy on asyncpg: one engine per service, sessions per unit of work.

Transports (HTTP handlers, Kafka consumers) own transactions: they open a session
and `async with session.begin():`; services and repositories never commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

BIGINT_MAX = 2**63 - 1
"""The most a PostgreSQL bigint holds (and -BIGINT_MAX - 1 the least)."""

SessionMaker = async_sessionmaker[AsyncSession]


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine with a bounded pool and liveness checks."""
    return _create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def session_maker(engine: AsyncEngine) -> SessionMaker:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    except Exception:
        return False
    return True


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: SessionMaker = request.app.state.sessions
    async with maker() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(_request_session)]
"""FastAPI dependency: a session from `app.state.sessions`, closed after the request."""
