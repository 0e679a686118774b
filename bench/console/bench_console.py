"""Console page times with a big org: 10,000 keys and 1,000,000 logged requests.

    .venv/bin/python bench/console/bench_console.py [--keys 10000] [--rows 1000000] [--samples 40]

Starts a Tansu broker, accounts, usage and the console as real processes (`python -m
tollgate.<name>`, default settings but for URLs, ports and databases) on fresh databases of
the Postgres at BENCH_POSTGRES_ADMIN_URL (default: local postgres on 5432). Seeds through
the REST APIs what has behaviour (the user, the org, the API), then bulk-loads the
volume straight into the owners' tables: the keys into accounts' `api_keys`
(INSERT ... SELECT), the request log into usage's `request_log` with COPY, and usage's
minute and hour aggregates computed from it in SQL, as the ingest consumer would have.
Billing and notifier are not started (the overview's credits panel then says billing is
unavailable; no other page measured calls them).

Then signs in to the console and loads each heavy page `--samples` times, one after the
other, and prints p50 / p95 / max of the time to the last byte (loopback, so it is the
server's time: console plus the backing calls it makes). Budget: p95 <= 300 ms. The usage
page's top keys card comes after the page (htmx) and is timed as its own row. A second
table times the pages' backing calls made directly, to show which service the time is in.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx

from tollgate.kit import localdeps
from tollgate.kit.sealing import new_sealing_key

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
ADMIN = ("bench-admin@example.com", "bench-Admin-pass-2026")
USER = ("bench-owner@example.com", "bench-Owner-pass-2026")
BUDGET_MS = 300
DAYS = 7  # the log spans the last week (the usage page's default range is 24 h)
NIL = uuid.UUID(int=0)


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def start(name: str, workdir: Path, env: dict[str, str], port: int) -> localdeps.LocalProcess:
    return localdeps.start_program(
        name,
        [sys.executable, "-m", f"tollgate.{name}"],
        workdir,
        port=port,
        env=env,
        ready_path="/readyz",
        timeout=90,
    )


def service_env(name: str, values: dict[str, str]) -> dict[str, str]:
    prefix = f"TOLLGATE_{name.upper()}_"
    return {**os.environ, **{prefix + k: v for k, v in values.items()}, "PYTHONUNBUFFERED": "1"}


async def load_keys(accounts_db: str, org_id: str, count: int) -> list[uuid.UUID]:
    """`count` more keys of the org, shaped like the one made through the API."""
    conn = await asyncpg.connect(dsn(accounts_db))
    try:
        await conn.execute(
            """
            INSERT INTO api_keys (id, org_id, name, key_hash, prefix, last4, environment,
                enabled, revoked_at, scopes, allowed_api_ids, ip_allowlist, limits, metadata,
                created_at, updated_at, version)
            SELECT gen_random_uuid(), $1::uuid, 'bench key ' || n,
                md5(random()::text) || md5(random()::text), 'tg_live_',
                lpad((n % 10000)::text, 4, '0'),
                'live', n % 10 <> 0, CASE WHEN n % 25 = 0 THEN now() END, '{}', '{}', '{}',
                '{"per_day": 100000}', '{}', now() - n * interval '1 second',
                now() - n * interval '1 second', 1
            FROM generate_series(1, $2::int) AS n
            """,
            uuid.UUID(org_id),
            count,
        )
        rows = await conn.fetch("SELECT id FROM api_keys WHERE org_id = $1", uuid.UUID(org_id))
        return [r["id"] for r in rows]
    finally:
        await conn.close()


async def load_log(
    usage_db: str, org_id: str, api_id: str, keys: list[uuid.UUID], rows: int
) -> None:
    """`rows` requests over the last DAYS days by COPY, then the minute and hour
    aggregates the ingest consumer keeps, computed from them."""
    conn = await asyncpg.connect(dsn(usage_db))
    try:
        today = datetime.now(UTC).date()
        for offset in range(-DAYS - 1, 3):
            day = today + timedelta(days=offset)
            for table in ("request_log", "usage_minute"):
                await conn.execute(partition_ddl(table, day))
        now = datetime.now(UTC)
        org, api = uuid.UUID(org_id), uuid.UUID(api_id)
        rng = random.Random(7)
        paths = [f"/items/{n}" for n in range(50)]

        def record(n: int) -> tuple[object, ...]:
            status = 200 if n % 20 else rng.choice((404, 429, 500, 502))
            rejected = status == 429
            latency = rng.randint(5, 120)
            return (
                uuid.UUID(int=rng.getrandbits(128)),
                now - timedelta(seconds=rng.uniform(0, DAYS * 86400)),
                org,
                keys[n % len(keys)],
                api,
                None,
                "GET" if n % 4 else "POST",
                paths[n % len(paths)],
                status,
                "rejected" if rejected else "completed",
                "rate_limited" if rejected else None,
                latency,
                None if rejected else latency - 2,
                100,
                2000,
                "127.0.0.1",
                0 if rejected else 1,
                "bench",
            )

        columns = [
            "request_id",
            "time",
            "org_id",
            "key_id",
            "api_id",
            "route_id",
            "method",
            "path",
            "status",
            "outcome",
            "reason",
            "latency_ms",
            "upstream_latency_ms",
            "request_bytes",
            "response_bytes",
            "client_ip",
            "cost",
            "gateway_instance",
        ]
        batch = 100_000
        for start_at in range(0, rows, batch):
            records = [record(n) for n in range(start_at, min(rows, start_at + batch))]
            await conn.copy_records_to_table("request_log", records=records, columns=columns)
        for table, unit in (("usage_minute", "minute"), ("usage_hour", "hour")):
            await conn.execute(aggregate_sql(table, unit))
        await conn.execute("SELECT usage_org_rollup_rebuild()")  # the org rollups, from those
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def partition_ddl(table: str, day: date) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table}_p{day:%Y%m%d} PARTITION OF {table} "
        f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') "
        f"TO ('{(day + timedelta(days=1)).isoformat()} 00:00:00+00')"
    )


def aggregate_sql(table: str, unit: str) -> str:
    # Latencies are below 128 ms, where a histogram bucket is the latency itself.
    return f"""
        INSERT INTO {table} (org_id, bucket, key_id, api_id, route_id, method, status, reason,
            requests, bytes_in, bytes_out, credits, latency_ms_sum, latency_hist, mode, drifted)
        SELECT org_id, b, key_id, api_id, route_id, method, status, reason, sum(n), sum(bi),
            sum(bo), sum(c), sum(ls), jsonb_object_agg(lat::text, n), 'live', 0
        FROM (
            SELECT org_id, date_trunc('{unit}', time) AS b, key_id, api_id,
                coalesce(route_id, '{NIL}'::uuid) AS route_id, method, status,
                coalesce(reason, '') AS reason, latency_ms AS lat, count(*) AS n,
                sum(request_bytes) AS bi, sum(response_bytes) AS bo, sum(cost) AS c,
                sum(latency_ms) AS ls
            FROM request_log GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        ) AS g
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    """


def measure(client: httpx.Client, path: str, samples: int) -> tuple[list[float], int]:
    """Times of `samples` loads, and how many did not answer 200 (a backing call past the
    console's timeout turns into a 503 page or a panel that says the service is down)."""
    client.get(path)  # warm: connection pools, template compilation
    times, failed = [], 0
    for _ in range(samples):
        began = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        failed += answer.status_code != 200 or "Usage is unavailable" in answer.text
    return times, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-console-"))
    tag = uuid.uuid4().hex[:8]
    processes: list[localdeps.LocalProcess] = []
    databases: list[str] = []
    try:
        tansu = localdeps.start_tansu(workdir)
        processes.append(tansu)
        common = {
            "KAFKA_BOOTSTRAP_SERVERS": tansu.url,
            "KAFKA_TOPIC_PREFIX": f"bench{tag}.",
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
        }
        urls = {}
        for name in ("accounts", "usage"):
            db = f"bench_console_{name}_{tag}"
            urls[name] = localdeps.create_database(ADMIN_URL, db)
            databases.append(db)
        ports = {name: localdeps.free_port() for name in ("accounts", "usage", "console")}
        base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        accounts_env = service_env(
            "accounts",
            {
                **common,
                "PORT": str(ports["accounts"]),
                "DATABASE_URL": urls["accounts"],
                "SEALING_KEYS": new_sealing_key(),
                "KEY_PEPPER": uuid.uuid4().hex,
                "EMAIL_VERIFICATION_REQUIRED": "false",  # the bench user issues live keys
                "SIGNING_KEY_FILE": str(workdir / "signing.pem"),
                "SIGNING_KEY_GENERATE": "true",
                "ALLOW_PRIVATE_UPSTREAMS": "true",
                "ADMIN_EMAIL": ADMIN[0],
                "ADMIN_PASSWORD": ADMIN[1],
            },
        )
        usage_env = service_env(
            "usage",
            {
                **common,
                "PORT": str(ports["usage"]),
                "DATABASE_URL": urls["usage"],
                "JWKS_URL": f"{base['accounts']}/.well-known/jwks.json",
            },
        )
        console_env = service_env(
            "console",
            {
                "PORT": str(ports["console"]),
                "ACCOUNTS_URL": base["accounts"],
                "USAGE_URL": base["usage"],
                "BILLING_URL": f"http://127.0.0.1:{localdeps.free_port()}",
                "NOTIFIER_URL": f"http://127.0.0.1:{localdeps.free_port()}",
                "SESSION_KEYS": new_sealing_key(),
            },
        )
        for name, env in (("accounts", accounts_env), ("usage", usage_env)):
            localdeps.run_checked([sys.executable, "-m", f"tollgate.{name}", "migrate"], env=env)
        for name, env in (
            ("accounts", accounts_env),
            ("usage", usage_env),
            ("console", console_env),
        ):
            processes.append(start(name, workdir, env, ports[name]))

        accounts = httpx.Client(base_url=base["accounts"], timeout=30)
        admin_token = accounts.post(
            "/v1/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]}
        ).json()["access_token"]
        registered = accounts.post(
            "/v1/auth/register", json={"email": USER[0], "password": USER[1], "name": "Bench"}
        )
        assert registered.status_code == 201, registered.text
        token = accounts.post(
            "/v1/auth/token", data={"username": USER[0], "password": USER[1]}
        ).json()["access_token"]
        org = accounts.post(
            "/v1/orgs", json={"name": "Bench Ltd"}, headers={"authorization": f"Bearer {token}"}
        ).json()
        api = accounts.post(
            "/v1/apis",
            json={"slug": "bench", "name": "Bench API", "upstream_url": "http://127.0.0.1:9"},
            headers={"authorization": f"Bearer {admin_token}"},
        ).json()
        began = time.perf_counter()
        keys = asyncio.run(load_keys(urls["accounts"], org["id"], args.keys))
        keys_s = time.perf_counter() - began
        began = time.perf_counter()
        asyncio.run(load_log(urls["usage"], org["id"], api["id"], keys, args.rows))
        log_s = time.perf_counter() - began
        print(
            f"loaded {len(keys):,} keys in {keys_s:.1f} s, {args.rows:,} requests in {log_s:.1f} s"
        )

        console = httpx.Client(base_url=base["console"], timeout=30)
        console.get("/signin")
        signed = console.post(
            "/signin",
            data={"email": USER[0], "password": USER[1], "csrf_token": console.cookies["tg_csrf"]},
        )
        assert signed.status_code == 303, signed.text
        org_path = f"/orgs/{org['id']}"
        pages = [
            ("keys", f"{org_path}/keys"),
            ("keys, revoked", f"{org_path}/keys?status=revoked"),
            ("key page", f"{org_path}/keys/{keys[len(keys) // 2]}"),
            ("usage 24 h", f"{org_path}/usage"),
            ("usage 7 d", f"{org_path}/usage?range=7d"),
            ("usage 30 d", f"{org_path}/usage?range=30d"),
            # the top keys card, which the usage page loads after its first paint (htmx)
            ("top keys 24 h", f"{org_path}/usage/top-keys"),
            ("top keys 7 d", f"{org_path}/usage/top-keys?range=7d"),
            ("top keys 30 d", f"{org_path}/usage/top-keys?range=30d"),
            ("logs", f"{org_path}/logs"),
            ("logs, 5xx", f"{org_path}/logs?status=5xx"),
            ("logs, one key", f"{org_path}/logs?key_id={keys[7]}"),
            ("overview", org_path),
        ]
        print(
            f"\n{'page':<16}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'degraded':>10}"
            f"  budget {BUDGET_MS} ms"
        )
        for name, path in pages:
            times, failed = measure(console, path, args.samples)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            verdict = "ok" if p95 <= BUDGET_MS else "OVER"
            print(
                f"{name:<16}{statistics.median(times):>9.0f}{p95:>9.0f}{times[-1]:>9.0f}"
                f"{failed:>10}  {verdict}"
            )
        # Where the time goes: the backing calls of those pages, made directly (one at a
        # time; the console makes a page's calls concurrently).
        now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = {"from": (now - timedelta(hours=24)).isoformat(), "to": now.isoformat()}
        week = {"from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}
        scope = {"org_id": org["id"]}
        calls = [
            ("accounts", f"/v1/orgs/{org['id']}/keys", {"limit": 200}),
            ("usage", "/v1/usage/timeseries", {**scope, **day, "granularity": "hour"}),
            ("usage", "/v1/usage/timeseries", {**scope, **week, "granularity": "hour"}),
            ("usage", "/v1/usage/errors", {**scope, **day}),
            *(
                ("usage", "/v1/usage/top", {**scope, **day, "by": by, "limit": 10})
                for by in ("api", "route", "key", "status")
            ),
            ("usage", "/v1/usage/top", {**scope, **week, "by": "key", "limit": 10}),
            ("usage", "/v1/usage/logs", {**scope, "limit": 50}),
            ("usage", "/v1/usage/logs", {**scope, **day, "limit": 50}),
            ("usage", "/v1/usage/summary", {**scope, **day}),
        ]
        auth = {"authorization": f"Bearer {token}"}
        print(f"\n{'backing call':<60}{'p50 ms':>9}{'p95 ms':>9}")
        for service, path, params in calls:
            client = httpx.Client(base_url=base[service], headers=auth, timeout=60)
            times = []
            for _ in range(max(5, args.samples // 4)):
                began = time.perf_counter()
                answer = client.get(path, params=params)
                times.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, (path, answer.text[:300])
            times.sort()
            label = f"{service} {path}" + (
                f" {params.get('by') or params.get('granularity') or ''}"
                f"{' 7d' if params.get('from') == week['from'] else ''}"
                f"{' 24h' if path.endswith('logs') and 'from' in params else ''}"
            )
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(f"{label:<60}{statistics.median(times):>9.0f}{p95:>9.0f}")
    finally:
        for proc in reversed(processes):
            proc.stop()
        for db in databases:
            localdeps.drop_database(ADMIN_URL, db)


if __name__ == "__main__":
    main()
