"""Read times of the analytics and request-log queries on `bench/console`'s data.

    .venv/bin/python services/usage/scripts/bench_reads.py [--samples 5] [--database NAME]

Creates (or, with `--database` naming an existing seeded one, reuses) a usage database on
the Postgres at BENCH_POSTGRES_ADMIN_URL, migrates it and seeds it with
`bench/console/bench_console.py`'s `load_log` (10,000 keys, 1,000,000 requests over 7
days, the aggregates and rollups computed from them), then calls the service functions
behind each route in-process and prints p50 / p95 ms. No HTTP, no auth: the queries and
the Python that shapes their answers, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from tollgate.kit import localdeps
from tollgate.usage.analytics import service as analytics
from tollgate.usage.analytics.repository import UsageFilter
from tollgate.usage.requestlog import service as requestlog
from tollgate.usage.requestlog.repository import LogFilter
from tollgate.usage.scope import TimeRange

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
ORG = uuid.UUID("11111111-1111-1111-1111-111111111111")
API = uuid.UUID("22222222-2222-2222-2222-222222222222")
Call = Callable[[AsyncSession], Awaitable[Any]]


def seed(url: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "console"))
    import bench_console  # type: ignore[import-not-found]

    env = {**os.environ, "TOLLGATE_USAGE_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "tollgate.usage", "migrate"], env=env, check=True)
    keys = [uuid.uuid4() for _ in range(10_000)]
    asyncio.run(bench_console.load_log(url, str(ORG), str(API), keys, 1_000_000))


def calls() -> list[tuple[str, Call]]:
    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    where = UsageFilter(org_id=ORG, mode="live")
    found: list[tuple[str, Call]] = []
    for name, length in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        span = TimeRange(now - length, now)
        logs = LogFilter(start=span.start, end=span.end, org_id=ORG)
        found += [
            (f"summary {name}", partial(analytics.summary, where=where, span=span)),
            (
                f"timeseries hour {name}",
                partial(analytics.timeseries, where=where, span=span, granularity="hour"),
            ),
            (f"errors {name}", partial(analytics.errors, where=where, span=span)),
        ]
        for by in ("api", "route", "key", "status"):
            top = partial(
                analytics.top, where=where, span=span, by=by, order_by="requests", limit=10
            )
            found.append((f"top {by} {name}", top))
        found.append(
            (f"logs {name}", partial(requestlog.list_requests, where=logs, cursor=None, limit=50))
        )
    month = TimeRange(now - timedelta(days=30), now)
    found += [
        ("summary 30d", partial(analytics.summary, where=where, span=month)),
        (
            "timeseries day 30d",
            partial(analytics.timeseries, where=where, span=month, granularity="day"),
        ),
        (
            "top key 30d",
            partial(
                analytics.top, where=where, span=month, by="key", order_by="requests", limit=10
            ),
        ),
    ]
    return found


async def measure(url: str, samples: int) -> None:
    engine = create_async_engine(url, pool_size=2)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    print(f"{'call':<28}{'p50 ms':>9}{'p95 ms':>9}")
    for name, call in calls():
        times = []
        for _ in range(samples + 1):
            async with sessions() as session:
                began = time.perf_counter()
                await call(session)
                times.append((time.perf_counter() - began) * 1000)
        times = sorted(times[1:])  # the first warms the connection and plan caches
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{name:<28}{statistics.median(times):>9.0f}{p95:>9.0f}", flush=True)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--database", help="an already seeded database to reuse (kept)")
    args = parser.parse_args()
    name = args.database or f"bench_usage_reads_{uuid.uuid4().hex[:8]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    if not args.database:
        url = localdeps.create_database(ADMIN_URL, name)
        seed(url)
    try:
        asyncio.run(measure(url, args.samples))
    finally:
        if not args.database:
            localdeps.drop_database(ADMIN_URL, name)


if __name__ == "__main__":
    main()
