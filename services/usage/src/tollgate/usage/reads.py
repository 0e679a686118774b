"""Read transactions of the HTTP API, each bounded in time.

A range may be up to `max_range_days` long, and some answers over it (top keys of one API
or route, which no per-key rollup holds) read every key-hour of the org in it. Without a
bound such a read holds its connection for as long as it takes, and any member of an org
may start many. Every read transaction sets `statement_timeout` to
`read_timeout_seconds` (waiting for a lock included); a read cancelled by it is a 503
problem (`query-timeout`, with `Retry-After`) that says to narrow the range, never a
hang or a 500. Never writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.kit.problems import ServiceUnavailable
from tollgate.usage.config import Settings

QUERY_CANCELED = "57014"
"""SQLSTATE of a statement cancelled by `statement_timeout`."""


@asynccontextmanager
async def read_transaction(session: AsyncSession, settings: Settings) -> AsyncIterator[None]:
    """A transaction whose statements give up after `read_timeout_seconds`."""
    timeout_ms = max(1, round(settings.read_timeout_seconds * 1000))
    try:
        async with session.begin():
            # SET takes no bind parameters; the value is an int we computed.
            await session.execute(text(f"SET LOCAL statement_timeout = {timeout_ms}"))
            yield
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != QUERY_CANCELED:
            raise
        raise ServiceUnavailable(
            "query-timeout",
            f"The query took longer than {settings.read_timeout_seconds:g} s; "
            "narrow the range or the filters.",
            headers={"Retry-After": "10"},
        ) from exc
