"""How fast the notifier accepts one org's SMS sends (`POST /v1/sms/messages`).

Acceptance is where a prepaid org's credit check serialises the org's sends
(`outbound/credit.py`), so one org's campaign is bounded by how long a send holds
that serialisation, not by the machine. This bench runs the notifier's HTTP API as a
real process (uvicorn, uvloop + httptools as `python -m tollgate.notifier` runs it;
the app without its lifespan: no Kafka, no workers, the balances state set at start)
on a fresh database, with prepaid orgs that have plenty of credits, and N concurrent
clients per org posting messages with signed gateway identity headers. It prints,
per scenario, accepted messages/s and p50/p99 acceptance latency (client-side, loopback).

Scenarios: one org with 1 client, one org with `--concurrency` clients (a campaign),
the same with an `Idempotency-Key` on every send, and two orgs at once with
`--concurrency` clients each.

    .venv/bin/python bench/sms/bench_accept.py [--messages 1000] [--concurrency 24]
        [--rounds 1] [--replicas 1] [--baseline REV] [--server-cpus 0]
        [--client-cpus 1] [--only 2,4] [--profile DIR]

`--replicas N` runs N notifier processes on one database per target, the clients of
each org spread over them: the org's lock then serialises sends across processes, as
in production with several replicas, and one process's CPU stops being the ceiling
(give them the cores: `--server-cpus 0,1`).

`--baseline REV` also runs the notifier package of git revision REV (`git archive` of
its `services/notifier/src`, first on PYTHONPATH) on its own database, alternating with
this tree's in every round: a before/after from one run. `--profile DIR` records the
current tree's server with py-spy (`--idle`, speedscope) during the campaign scenario.

Postgres: BENCH_DATABASE_URL (server-level URL) when set, else the local one on
127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[2]
SERVER = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-gateway-identity-secret"
CREDITS = 10**12
PRICE = 7  # credits per segment, every destination
PATH = "/v1/sms/messages"


# ------------------------------------------------------------------ the server process


class LockWatch:
    """How long each send held its org's lock (its charge added to the org's row of
    `sms_org_charges`, or for revisions before that row the `sms-send:` advisory lock,
    to its COMMIT being sent, so the commit's own round trip comes on top) and how many
    statements it ran meanwhile: the window in which the org's other sends wait."""

    def __init__(self) -> None:
        self.held: list[float] = []
        self.statements: list[int] = []

    def attach(self, engine: Any) -> None:
        event.listen(engine, "after_cursor_execute", self._executed)
        event.listen(engine, "commit", self._ended)
        event.listen(engine, "rollback", self._ended)

    def _executed(self, conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        locking = statement.startswith("INSERT INTO sms_org_charges") or (
            "pg_advisory_xact_lock" in statement and "sms-send:" in str(parameters)
        )
        if locking and "bench_locked" not in conn.info:  # a second take is a statement
            conn.info["bench_locked"], conn.info["bench_statements"] = time.perf_counter(), 0
        elif "bench_locked" in conn.info:
            conn.info["bench_statements"] += 1

    def _ended(self, conn: Any) -> None:
        locked = conn.info.pop("bench_locked", None)
        if locked is not None:
            self.held.append(time.perf_counter() - locked)
            self.statements.append(conn.info.pop("bench_statements"))

    def take(self) -> dict[str, list[Any]]:
        taken = {"held": self.held, "statements": self.statements}
        self.held, self.statements = [], []
        return taken


def serve() -> None:
    """The notifier API on BENCH_PORT, database BENCH_URL, prepaid orgs BENCH_ORGS
    (run as `bench_accept.py --serve`, in a child process)."""
    import uvicorn

    from tollgate.contracts.events.billing import BalanceMode, BalanceState, BalanceStatus
    from tollgate.kit.db import create_engine, session_maker
    from tollgate.kit.sealing import new_sealing_key
    from tollgate.kit.testing.tokens import TokenMint
    from tollgate.notifier.app import create_app
    from tollgate.notifier.config import Settings

    settings = Settings(
        database_url=os.environ["BENCH_URL"],
        kafka_bootstrap_servers="127.0.0.1:1",
        instance_id="bench",
        sealing_keys=new_sealing_key(),
        gateway_identity_secrets=SECRET,
        sms_public_url="https://notifier.example.com",
    )
    app = create_app(settings)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    app.state.sessions = session_maker(engine)
    watch = LockWatch()
    watch.attach(engine.sync_engine)
    app.add_api_route("/bench/lock", watch.take, methods=["GET"])
    app.state.jwt_verifier = TokenMint().verifier()
    now = datetime.now(UTC)
    for org in os.environ["BENCH_ORGS"].split(","):
        app.state.notifier.sms_balances.apply(
            BalanceState(
                org_id=uuid.UUID(org),
                balance=CREDITS,
                status=BalanceStatus.OK,
                mode=BalanceMode.PREPAID,
                low_threshold=0,
                version=1,
                as_of=now,
                sms_charged=0,
            )
        )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


# ------------------------------------------------------------------ setup


async def _admin(sql: str) -> None:
    admin = create_async_engine(SERVER, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(sql))
    await admin.dispose()


def _number(org_index: int) -> str:
    return f"+4144555{org_index:04d}"


async def _seed(url: str, orgs: list[uuid.UUID]) -> None:
    from tollgate.kit.db import create_engine, session_maker
    from tollgate.notifier.outbound import repository
    from tollgate.notifier.sms import repository as numbers

    engine = create_engine(url)
    now = datetime.now(UTC)
    async with session_maker(engine)() as session, session.begin():
        await repository.upsert_price(session, "+", PRICE, now)
        for i, org in enumerate(orgs):
            await numbers.upsert_number(session, _number(i), org, now)
    await engine.dispose()


@dataclass
class Target:
    """One notifier under test: its replicas (processes) on one database."""

    name: str
    database: str
    url: str
    ports: list[int] = field(default_factory=list)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)


async def _start(
    name: str, orgs: list[uuid.UUID], cpus: str, pythonpath: str | None, replicas: int
) -> Target:
    from tollgate.kit.localdeps import free_port
    from tollgate.kit.migrations import upgrade_head

    database = f"bench_accept_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{database}"')
    url = SERVER.rsplit("/", 1)[0] + f"/{database}"
    await asyncio.to_thread(upgrade_head, "tollgate.notifier", url)
    await _seed(url, orgs)
    target = Target(name, database, url)
    for _ in range(replicas):
        await _start_replica(target, orgs, cpus, pythonpath, free_port())
    return target


async def _start_replica(
    target: Target, orgs: list[uuid.UUID], cpus: str, pythonpath: str | None, port: int
) -> None:
    env = {
        **os.environ,
        **({"PYTHONPATH": pythonpath} if pythonpath else {}),
        "BENCH_URL": target.url,
        "BENCH_PORT": str(port),
        "BENCH_ORGS": ",".join(map(str, orgs)),
    }
    command = [sys.executable, __file__, "--serve"]
    if cpus and shutil.which("taskset"):
        command = ["taskset", "-c", cpus, *command]
    process = await asyncio.create_subprocess_exec(*command, env=env)
    target.ports.append(port)
    target.processes.append(process)
    deadline = time.monotonic() + 180  # a loaded machine starts slowly
    async with httpx.AsyncClient() as client:
        while True:
            try:
                await client.get(f"http://127.0.0.1:{port}/healthz")
                return
            except httpx.TransportError:
                if process.returncode is not None or time.monotonic() > deadline:
                    await _stop(target)
                    raise RuntimeError(f"{target.name} did not start") from None
                await asyncio.sleep(0.2)


async def _stop(target: Target) -> None:
    for process in target.processes:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 20)
    await _admin(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


def _baseline_source(revision: str, workdir: Path) -> str:
    """The notifier package of `revision` (`git archive`), for PYTHONPATH."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "services/notifier/src"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive, check=True)
    return str(workdir / "services/notifier/src")


# ------------------------------------------------------------------ load


@dataclass(frozen=True)
class Scenario:
    """Who sends: `clients` concurrent clients for each of `orgs` orgs."""

    name: str
    orgs: int
    clients: int
    keyed: bool = False


@dataclass
class Result:
    scenario: str
    target: str
    accepted: int = 0
    refused: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    held: list[float] = field(default_factory=list)
    under_lock: list[int] = field(default_factory=list)


async def _client(
    http: httpx.AsyncClient,
    org: uuid.UUID,
    sender: str,
    keyed: bool,
    remaining: list[int],
    result: Result,
) -> None:
    from tollgate.kit.upstream_identity import identity_headers

    while remaining[0] > 0:
        remaining[0] -= 1
        n = remaining[0]
        headers = identity_headers(
            SECRET,
            method="POST",
            path=PATH,
            org_id=str(org),
            key_id=str(org),
            key_name="campaign",
            scopes=["sms:send"],
            request_id=str(uuid.uuid4()),
        )
        if keyed:
            headers["Idempotency-Key"] = f"campaign-{uuid.uuid4().hex}"
        body = {"to": f"+4179{n:07d}", "from": sender, "text": f"Your code is {n:06d}"}
        started = time.perf_counter()
        response = await http.post(PATH, json=body, headers=headers)
        result.latencies.append(time.perf_counter() - started)
        if response.status_code == 202:
            result.accepted += 1
        else:
            result.refused += 1
            if result.refused == 1:
                print(f"  refused: {response.status_code} {response.text[:200]}", file=sys.stderr)


async def run_scenario(
    target: Target, scenario: Scenario, orgs: list[tuple[int, uuid.UUID]], messages: int
) -> Result:
    """`messages` sends per org, `scenario.clients` at a time per org."""
    result = Result(scenario.name, target.name)
    limits = httpx.Limits(max_connections=scenario.orgs * scenario.clients + 4)
    async with contextlib.AsyncExitStack() as stack:
        https = [  # one per replica; client i talks to replica i % replicas
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120)
            )
            for port in target.ports
        ]
        for http in https:
            await http.get("/bench/lock")  # forget what came before
        started = time.perf_counter()
        tasks = []
        for index, org in orgs:
            remaining = [messages]
            tasks += [
                _client(
                    https[i % len(https)], org, _number(index), scenario.keyed, remaining, result
                )
                for i in range(scenario.clients)
            ]
        await asyncio.gather(*tasks)
        result.seconds = time.perf_counter() - started
        for http in https:
            lock = (await http.get("/bench/lock")).json()
            result.held += lock["held"]
            result.under_lock += lock["statements"]
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _print(results: list[Result], messages: int, concurrency: int, replicas: int) -> None:
    print(
        f"\nSMS acceptance: {messages} messages per org per scenario, "
        f"{concurrency} concurrent clients per org (campaign rows), "
        f"{replicas} notifier process(es) per target\n"
    )
    header = (
        f"{'scenario':<30} | {'notifier':<12} | {'accepted':>8} | {'refused':>7} | "
        f"{'messages/s':>10} | {'p50 ms':>8} | {'p99 ms':>8} | {'lock held p50 ms':>16} | "
        f"{'statements under lock':>21}"
    )
    print(header)
    print("-" * len(header))
    grouped: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        grouped.setdefault((r.scenario, r.target), []).append(r)
    for (scenario, target), runs in grouped.items():
        latencies = [x for r in runs for x in r.latencies]
        held = [x for r in runs for x in r.held]
        under = [x for r in runs for x in r.under_lock]
        rates = [r.accepted / r.seconds for r in runs]
        print(
            f"{scenario:<30} | {target:<12} | {sum(r.accepted for r in runs):>8} | "
            f"{sum(r.refused for r in runs):>7} | {statistics.median(rates):>10.1f} | "
            f"{_percentile(latencies, 0.5) * 1000:>8.1f} | "
            f"{_percentile(latencies, 0.99) * 1000:>8.1f} | "
            f"{(_percentile(held, 0.5) * 1000 if held else 0):>16.1f} | "
            f"{(statistics.mean(under) if under else 0):>21.1f}"
        )
    print(
        "\nmessages/s: median over rounds; latencies: all rounds together, client-side. "
        "Lock held: from the org's send lock granted to its COMMIT sent (the commit's round "
        "trip on top), the window in which the org's other sends wait."
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="per org per scenario")
    parser.add_argument("--concurrency", type=int, default=24, help="clients per org")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--replicas", type=int, default=1, help="notifier processes per target, one database"
    )
    parser.add_argument("--baseline", help="also the notifier of this git revision")
    parser.add_argument("--server-cpus", default="0", help="taskset for the notifier ('': any)")
    parser.add_argument("--client-cpus", default="1", help="affinity of the load ('': any)")
    parser.add_argument("--profile", type=Path, help="py-spy the campaign into this folder")
    parser.add_argument("--only", help="scenario numbers, e.g. 2,4 (1 = one org, one client)")
    args = parser.parse_args()
    if args.client_cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})

    scenarios = [
        Scenario("1 org, 1 client", 1, 1),
        Scenario(f"1 org, {args.concurrency} clients", 1, args.concurrency),
        Scenario(f"1 org, {args.concurrency} clients, keyed", 1, args.concurrency, keyed=True),
        Scenario(f"2 orgs, {args.concurrency} clients each", 2, args.concurrency),
    ]
    if args.only:
        wanted = {int(n) for n in args.only.split(",")}
        scenarios = [s for n, s in enumerate(scenarios, 1) if n in wanted]
    # Fresh orgs for every (round, scenario): one run's charges never weigh on the next's
    # credit check (its sum covers the org's recent charges).
    plan: list[tuple[Scenario, list[tuple[int, uuid.UUID]]]] = []
    count = 0
    for _ in range(args.rounds):
        for scenario in scenarios:
            plan.append((scenario, [(count + j, uuid.uuid4()) for j in range(scenario.orgs)]))
            count += scenario.orgs
    org_ids = [org for _, pairs in plan for _, org in pairs]

    with tempfile.TemporaryDirectory(prefix="bench-accept-") as workdir:
        targets: list[Target] = []
        results: list[Result] = []
        try:
            targets.append(
                await _start("this tree", org_ids, args.server_cpus, None, args.replicas)
            )
            if args.baseline:
                old = _baseline_source(args.baseline, Path(workdir))
                targets.append(
                    await _start(f"@{args.baseline}", org_ids, args.server_cpus, old, args.replicas)
                )
            for scenario, pairs in plan:
                for target in targets:
                    spy = None
                    if args.profile and target is targets[0]:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        out = args.profile / f"{scenario.name.replace(' ', '_')}.txt"
                        spy = await asyncio.create_subprocess_exec(
                            str(Path(sys.executable).parent / "py-spy"),
                            *("record", "--idle", "--format", "raw", "-r", "200"),
                            *("-o", str(out), "--pid", str(target.processes[0].pid)),
                            stdout=subprocess.DEVNULL,
                        )
                        await asyncio.sleep(1)
                    result = await run_scenario(target, scenario, pairs, args.messages)
                    if spy is not None:
                        spy.send_signal(2)
                        await spy.wait()
                    results.append(result)
                    print(
                        f"  {scenario.name} @ {target.name}: "
                        f"{result.accepted / result.seconds:.1f} messages/s",
                        file=sys.stderr,
                    )
        finally:
            for target in targets:
                await _stop(target)
    _print(results, args.messages, args.concurrency, args.replicas)


def _entry(argv: list[str]) -> Any:
    if argv[1:2] == ["--serve"]:
        return serve()
    return asyncio.run(main())


if __name__ == "__main__":
    _entry(sys.argv)
