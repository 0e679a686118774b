"""Tollgate's gateway against Fastify and nginx doing the same job, same run, loopback.

Starts a Tansu broker (events on), nginx as the upstream (one small fixed answer) and
three gateways, each pinned to the gateway core (`taskset`), with the upstream, the
broker, wrk and the fixed-rate client on the load core:

- Tollgate (`python -m tollgate.gateway`): 10,000 keys replayed from Kafka, each with
  a per-hour limit (evaluated on every request), credits check, one event per request;
- Fastify + @fastify/rate-limit + @fastify/http-proxy (`fastify/gateway.js`, pinned,
  `npm ci` into the temp dir): the 10,000 keys HMAC-hashed in a Map, a per-key limit,
  an org credits check; no events;
- nginx as a reverse proxy: a `map` of the 10,000 raw keys to their org, an org
  credits `map`, a per-key `limit_req`; no events.

Then, for GET and POST with a 1 KB body: wrk at saturation (req/s, p50/p99, CPU% of
the gateway's process tree, ratios to direct and to Fastify), and a fixed-rate pass
(`fixed_rate.py`, 1,000 req/s by default) giving each gateway's latency added over
the upstream called directly. Options, each in the same interleaved rounds:

- `--baseline REV`: also the gateway of git revision REV (`git archive` of its
  `services/gateway/src`, first on PYTHONPATH), a before/after in one run;
- `--identity`: also a Tollgate signing the caller identity headers;
- `--sandbox`: the price of the sandbox features (issue #16) on three more APIs of the
  same gateway: POST of a 1 KB JSON body through `plain` (no document) and through
  `checked` (validated against its OpenAPI document, then forwarded), and GET answers
  of `mock` (document example; `Prefer: dynamic=true`), in a table of their own;
- `--profile`: a py-spy pass on Tollgate (and on the identity-signing one with
  `--identity`; not counted in the tables) summarised by `gateway_profile.py`.

Usage (see README.md):

    .venv/bin/python bench/gateway/run.py [--seconds 8] [--rounds 2] [--workers N] \
        [--only tollgate,fastify,nginx] [--baseline REV] [--sandbox] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import gateway_profile
import harness
import sandbox_api
from harness import WrkResult

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.accounts import ApiUpserted, KeyUpserted
from tollgate.kit import apikeys, localdeps
from tollgate.kit.kafka import ensure_topics, make_producer, topic_name
from tollgate.kit.localdeps import LocalProcess
from tollgate.kit.settings import ServiceSettings

PEPPER = "bench-pepper"
KEYS = 10_000
WORKLOADS = (("GET", "/hello", 0), ("POST", "/echo/x", 1024))


@dataclass
class Target:
    name: str
    port: int
    prefix: str  # path prefix in front of the upstream path
    process: LocalProcess

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}{path}"


SANDBOX_APIS = {
    "plain": {},
    "checked": {
        "openapi_document": sandbox_api.DOCUMENT,
        "sandbox": {"validate_requests": True},
    },
    "mock": {"openapi_document": sandbox_api.DOCUMENT, "sandbox": {"mock": True}},
}


async def load_state(bootstrap: str, upstream: str, *, sandbox: bool) -> list[str]:
    """Publish the API (with `sandbox`, also `SANDBOX_APIS`) and KEYS keys (per-hour
    limit) the way accounts does."""
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, kafka_enable_idempotence=False)
    await ensure_topics(settings, topics.ALL_TOPICS)
    producer = make_producer(settings, client="bench")
    await producer.start()
    now = datetime.now(UTC)
    apis: dict[str, dict[str, object]] = {"api": {}, **(SANDBOX_APIS if sandbox else {})}
    for slug, fields in apis.items():
        api = ApiUpserted.model_validate(
            {
                "api_id": uuid.uuid4(),
                "slug": slug,
                "name": slug,
                "api_version": "v1",
                "upstream_url": upstream,
                "status": "active",
                "timeout_ms": 5000,
                "price": 1,
                "charge_failed_calls": False,
                "version": 1,
                "updated_at": now,
                **fields,
            }
        )
        await producer.send(
            topic_name(topics.ACCOUNTS_APIS, settings),
            encode(new_event(api, source="bench")),
            key=str(api.api_id).encode(),
        )
    raws = []
    org = uuid.uuid4()
    for _ in range(KEYS):
        raw = apikeys.generate().raw
        raws.append(raw)
        key = KeyUpserted(
            key_id=uuid.uuid4(),
            org_id=org,
            key_hash=apikeys.hash_key(raw, PEPPER),
            prefix=apikeys.display_prefix(raw),
            last4=raw[-4:],
            name="bench",
            environment="live",
            enabled=True,
            limits={"per_hour": 1_000_000_000},
            version=1,
            updated_at=now,
        )
        await producer.send(
            topic_name(topics.ACCOUNTS_KEYS, settings),
            encode(new_event(key, source="bench")),
            key=str(key.key_id).encode(),
        )
    await producer.stop()
    return raws


def start_tollgate(
    name: str,
    workdir: Path,
    bootstrap: str,
    args: argparse.Namespace,
    procs: list[LocalProcess],
    identity_secret: str = "",
    *,
    pythonpath: str | None = None,
) -> Target:
    """`python -m tollgate.gateway` pinned to the gateway cores, ready (state replayed);
    `pythonpath` first on the path (another revision's gateway package)."""
    port = localdeps.free_port()
    env = {
        **os.environ,
        **({"PYTHONPATH": pythonpath} if pythonpath else {}),
        "TOLLGATE_GATEWAY_PORT": str(port),
        "TOLLGATE_GATEWAY_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOLLGATE_GATEWAY_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "TOLLGATE_GATEWAY_KEY_PEPPER": PEPPER,
        "TOLLGATE_GATEWAY_SPOOL_DIR": str(workdir / f"spool-{name.replace('@', '-')}"),
        "TOLLGATE_GATEWAY_LOG_LEVEL": "WARNING",
        "TOLLGATE_GATEWAY_WORKERS": str(args.workers),
        # The peers count limits per process too (node:cluster workers, nginx
        # workers share a zone); the per-hour limit is never reached here.
        "TOLLGATE_GATEWAY_LOCAL_LIMITS_PER_WORKER": "true",
        # The upstream is nginx on loopback, refused by default (SSRF policy).
        "TOLLGATE_GATEWAY_ALLOW_PRIVATE_UPSTREAMS": "true",
        # The operational listener gets its own free port (default 9080 may be taken).
        "TOLLGATE_GATEWAY_OPS_PORT": str(localdeps.free_port()),
        "TOLLGATE_GATEWAY_IDENTITY_SECRETS": identity_secret,
        # One string-hash seed for every Tollgate: dict layouts then differ by code
        # alone, not by a per-process seed (worth a few percent between two processes).
        "PYTHONHASHSEED": "0",
    }
    argv = ["taskset", "-c", args.gateway_cpus, sys.executable, "-m", "tollgate.gateway"]
    proc = localdeps.start_program(
        name.replace("@", "-"),
        argv,
        workdir,
        port=port,
        env=env,
        ready_path="/_tollgate/readyz",
        timeout=120,
    )
    procs.append(proc)
    return Target(name, port, "/api", proc)


def baseline_source(revision: str, workdir: Path) -> str:
    """The gateway package of `revision` (`git archive`), for PYTHONPATH."""
    old = workdir / "baseline"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(harness.ROOT), "archive", revision, "services/gateway/src"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    return str(old / "services/gateway/src")


@dataclass
class Cell:
    """One sandbox measurement: a URL of one gateway, its wrk script, its process."""

    name: str
    url: str
    script: Path
    pid: int


def sandbox_cells(
    targets: list[Target], workdir: Path, keys_file: Path, args: argparse.Namespace
) -> list[Cell]:
    """The `--sandbox` cells on Tollgate (and the plain one on the baseline), each
    checked to answer 200 first (a 400 would be cheap, not honest)."""
    body = sandbox_api.order_body()
    json_type = {"Content-Type": "application/json"}
    specs = [
        ("POST 1 KB JSON, plain proxy", "/plain/orders", "POST", body, json_type),
        ("POST 1 KB JSON, validated + proxied", "/checked/orders", "POST", body, json_type),
        ("GET mock (document example)", "/mock/orders/7", "GET", b"", {}),
        (
            "GET mock (Prefer: dynamic=true)",
            "/mock/orders?limit=5",
            "GET",
            b"",
            {"Prefer": "dynamic=true"},
        ),
    ]
    gateways = [t for t in targets if t.name == "tollgate"]
    baseline = [t for t in targets if t.name.startswith("tollgate@")]
    cells = []
    for n, (name, path, method, data, headers) in enumerate(specs):
        script = harness.wrk_script(
            workdir, keys_file, method, body=data, headers=headers, name=f"cell{n}"
        )
        for target in gateways + (baseline if n == 0 else []):
            label = name if target.name == "tollgate" else f"{name} @ {args.baseline}"
            url = f"http://127.0.0.1:{target.port}{path}"
            check = harness.wrk(url, script, 1, 4, cpus=args.load_cpus)
            if check.non2xx or check.errors:
                sys.exit(f"{label}: {check.non2xx} non-2xx, {check.errors} errors")
            cells.append(Cell(label, url, script, target.process.pid))
    return cells


def status_of(url: str, key: str | None) -> int:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def check_job(target: Target, key: str) -> None:
    """Each gateway must really check keys: 200 with a key, 401 without."""
    with_key, without = status_of(target.url("/hello"), key), status_of(target.url("/hello"), None)
    if (with_key, without) != (200, 401):
        sys.exit(f"{target.name}: GET with a key {with_key}, without {without} (want 200, 401)")


def fixed_rate(
    target_url_port: int,
    path: str,
    method: str,
    body_bytes: int,
    keys_file: Path,
    args: argparse.Namespace,
    measure_pid: int | None,
) -> dict[str, float | int | str]:
    argv = ["taskset", "-c", args.load_cpus, sys.executable, str(harness.HERE / "fixed_rate.py")]
    argv += ["--port", str(target_url_port), "--path", path, "--method", method]
    argv += ["--body-bytes", str(body_bytes), "--keys", str(keys_file)]
    argv += ["--rate", str(args.rate), "--seconds", str(args.fixed_seconds)]
    meter = harness.CpuMeter(measure_pid)
    meter.start()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result: dict[str, float | int | str] = json.loads(out)
    cpu = meter.stop()
    result["cpu"] = cpu if cpu is not None else float("nan")
    return result


def profile_tollgate(
    target: Target, get_script: Path, workdir: Path, args: argparse.Namespace, workers: int
) -> None:
    out = workdir / f"{target.name}-profile.speedscope.json"
    spy = gateway_profile.start_recording(
        target.process.pid, out, args.profile_seconds, cpus=args.load_cpus, subprocesses=workers > 1
    )
    time.sleep(0.5)
    threads_before = gateway_profile.thread_cpu(target.process.pid)
    result = harness.wrk(
        target.url("/hello"),
        get_script,
        args.profile_seconds,
        args.connections,
        cpus=args.load_cpus,
        measure_pid=target.process.pid,
    )
    threads = gateway_profile.thread_cpu_delta(
        threads_before, gateway_profile.thread_cpu(target.process.pid)
    )
    spy.wait(60)
    print(
        f"\nprofile pass of {target.name} (py-spy --native at 100 Hz, not counted above): "
        f"GET {result.rps:.0f} "
        f"req/s, gateway CPU {result.cpu:.0f}%; speedscope file: {out}"
    )
    print(gateway_profile.format_threads(threads))
    print(gateway_profile.format_summary(gateway_profile.summarise(out), top=args.profile_top))


def fmt_ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else ""


def print_saturation(
    rows: list[tuple[str, str, WrkResult, tuple[float, float]]], rounds: int
) -> None:
    print(f"\n## Saturation (wrk -t1, gateway pinned to its core; best of {rounds} rounds)\n")
    print(
        "| workload | target | req/s | p50 ms | p99 ms | gateway CPU% | CPU µs/req "
        "| req/s per core | ÷ direct | ÷ Fastify | ÷ Fastify per core | non-2xx / errors "
        "| req/s range |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workload in dict.fromkeys(w for w, _, _, _ in rows):
        mine = {t: r for w, t, r, _ in rows if w == workload}
        spread = {t: s for w, t, _, s in rows if w == workload}
        direct = mine.get("direct")
        fastify = mine.get("fastify")
        for name, res in mine.items():
            is_gateway = name != "direct"
            cpu = f"{res.cpu:.0f}" if res.cpu is not None else ""
            per_request = f"{res.cpu_us_per_request:.0f}" if res.cpu_us_per_request else ""
            per_core = f"{res.per_core:.0f}" if res.per_core else ""
            vs_fastify_core = ""
            if fastify and is_gateway and res.per_core and fastify.per_core:
                vs_fastify_core = fmt_ratio(res.per_core, fastify.per_core)
            print(
                f"| {workload} | {name} | {res.rps:.0f} | {res.p50_ms:.2f} | {res.p99_ms:.2f} | "
                f"{cpu}{'' if is_gateway else ' (upstream)'} | {per_request} | {per_core} | "
                f"{fmt_ratio(res.rps, direct.rps) if direct and is_gateway else ''} | "
                f"{fmt_ratio(res.rps, fastify.rps) if fastify and is_gateway else ''} | "
                f"{vs_fastify_core} | {res.non2xx} / {res.errors} | "
                f"{spread[name][0]:.0f}..{spread[name][1]:.0f} |"
            )


def print_fixed(rows: list[tuple[str, str, dict[str, float | int | str]]], rate: float) -> None:
    print(
        f"\n## Fixed rate {rate:.0f} req/s (fixed_rate.py, latency from the planned send; "
        "round with the lowest p99)\n"
    )
    print(
        "| workload | target | p50 ms | p99 ms | p99.9 ms | added p50 | added p99 | "
        "gateway CPU% | CPU µs/req | answered/s | non-2xx / errors | client lag p99 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workload in dict.fromkeys(w for w, _, _ in rows):
        mine = {t: r for w, t, r in rows if w == workload}
        direct = mine.get("direct")
        for name, res in mine.items():
            p50, p99 = float(res["p50_ms"]), float(res["p99_ms"])
            added = ("", "")
            if direct and name != "direct":
                added = (
                    f"{p50 - float(direct['p50_ms']):+.2f}",
                    f"{p99 - float(direct['p99_ms']):+.2f}",
                )
            cpu = float(res["cpu"])
            per_request = cpu * 10_000 / float(res["achieved_rps"]) if res["achieved_rps"] else 0
            verdict = "" if res["verdict"] == "ok" else f" ({res['verdict']})"
            lag = float(res["send_lag_p99_ms"])
            print(
                f"| {workload} | {name} | {p50:.2f} | {p99:.2f} | {float(res['p999_ms']):.2f} | "
                f"{added[0]} | {added[1]} | {cpu:.0f}{'' if name != 'direct' else ' (upstream)'} "
                f"| {per_request:.0f} | {res['achieved_rps']} | "
                f"{res['non2xx']} / {res['errors']}{verdict} | {lag:.2f} |"
            )


def print_baseline(
    saturation: list[tuple[str, str, WrkResult, tuple[float, float]]],
    fixed: list[tuple[str, str, dict[str, float | int | str]]],
    baseline: str,
    rate: float,
) -> None:
    """Tollgate against the baseline revision, same run: CPU per request and req/s."""
    print(f"\n## tollgate against {baseline} (same run)\n")
    print(
        "| workload | pass | CPU µs/req before | after | after ÷ before | req/s before "
        "| after | after ÷ before |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for workload in dict.fromkeys(w for w, _, _, _ in saturation):
        mine = {t: r for w, t, r, _ in saturation if w == workload}
        before, after = mine.get(baseline), mine.get("tollgate")
        if before and after and before.cpu_us_per_request and after.cpu_us_per_request:
            print(
                f"| {workload} | saturation | {before.cpu_us_per_request:.0f} "
                f"| {after.cpu_us_per_request:.0f} "
                f"| {after.cpu_us_per_request / before.cpu_us_per_request:.2f} "
                f"| {before.rps:.0f} | {after.rps:.0f} | {after.rps / before.rps:.2f} |"
            )
        at_rate = {t: r for w, t, r in fixed if w == workload}
        fb, fa = at_rate.get(baseline), at_rate.get("tollgate")
        if fb and fa and fb["achieved_rps"] and fa["achieved_rps"]:
            cb = float(fb["cpu"]) * 10_000 / float(fb["achieved_rps"])
            ca = float(fa["cpu"]) * 10_000 / float(fa["achieved_rps"])
            print(
                f"| {workload} | {rate:.0f} req/s | {cb:.0f} | {ca:.0f} | {ca / cb:.2f} "
                f"| {fb['achieved_rps']} | {fa['achieved_rps']} | |"
            )


Pairs = dict[tuple[str, str], list[tuple[WrkResult, WrkResult]]]


def print_paired(pairs: Pairs, title: str, note: str) -> None:
    """Each pair is `tollgate` and another Tollgate (`--identity`, `--baseline`) measured
    together; the median over rounds of their ratio is the figure, its range the noise.
    `--baseline HEAD` makes an A/A pair: the band a real difference must leave."""
    print(f"\n## {title}\n\n{note}\n")
    print(
        "| workload | target | rounds | req/s ÷ tollgate, median | range "
        "| CPU µs/req ÷ tollgate, median | range |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for (workload, name), results in pairs.items():
        rps = sorted(b.rps / a.rps for a, b in results if a.rps and b.rps)
        cpu = sorted(
            b.cpu_us_per_request / a.cpu_us_per_request
            for a, b in results
            if a.cpu_us_per_request and b.cpu_us_per_request
        )
        if rps and cpu:
            print(
                f"| {workload} | {name} | {len(rps)} | {statistics.median(rps):.3f} "
                f"| {rps[0]:.2f}..{rps[-1]:.2f} | {statistics.median(cpu):.3f} "
                f"| {cpu[0]:.2f}..{cpu[-1]:.2f} |"
            )


def sharing_the_core(
    mine: Target, other: Target, url_path: str, script: Path, args: argparse.Namespace
) -> tuple[WrkResult, WrkResult]:
    """`mine` and `other` saturated at once, on the one gateway core: the scheduler
    gives each half of it, and whatever else slows the machine slows both alike, so
    their req/s ratio is their per-request cost ratio without the drift between cells."""
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(
                harness.wrk,
                target.url(url_path),
                script,
                args.seconds,
                args.connections,
                cpus=args.load_cpus,
                measure_pid=target.process.pid,
            )
            for target in (mine, other)
        ]
        first, second = (run.result() for run in runs)
    return first, second


def print_sandbox(runs: dict[str, list[WrkResult]], rounds: int) -> None:
    """The sandbox cells, best round each, against plain proxying of the same body."""
    best = {name: max(results, key=lambda r: r.rps) for name, results in runs.items()}
    base = next(iter(best.values()))
    print(f"\n## Sandbox features (best of {rounds} rounds; ratios to the first row)\n")
    print(
        "| cell | req/s | ÷ plain proxy | p50 ms | p99 ms | gateway CPU% | CPU µs/req "
        "| Δ CPU µs/req vs plain | non-2xx / errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in best.items():
        per = result.cpu_us_per_request
        delta = (
            f"{per - base.cpu_us_per_request:+.0f}"
            if per is not None and base.cpu_us_per_request is not None
            else ""
        )
        print(
            f"| {name} | {result.rps:.0f} | {result.rps / base.rps:.2f} "
            f"| {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.cpu or 0:.0f} "
            f"| {per or 0:.0f} | {delta} | {result.non2xx} / {result.errors} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per cell")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000, help="fixed-rate pass, req/s")
    parser.add_argument("--fixed-seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept")
    parser.add_argument("--warmup-seconds", type=int, default=3, help="per gateway and workload")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes: TOLLGATE_GATEWAY_WORKERS for Tollgate (a supervisor and N "
        "workers), worker_processes for nginx, node:cluster workers for Fastify",
    )
    parser.add_argument("--gateway-cpus", default="0", help="taskset list for the gateways")
    parser.add_argument("--load-cpus", default="1", help="taskset list: upstream, broker, load")
    parser.add_argument("--only", default="tollgate,fastify,nginx", help="gateways to run")
    parser.add_argument(
        "--identity", action="store_true", help="also a Tollgate signing identity headers"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="a git revision: its gateway runs every Tollgate cell too (before/after, one run)",
    )
    parser.add_argument(
        "--sandbox", action="store_true", help="also the sandbox cells (mock, validation)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy pass on Tollgate (GET)")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args()
    only = set(args.only.split(","))

    harness.debian_tool("wrk", "wrk")
    harness.debian_tool("nginx", "nginx")
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    fastify_js = harness.install_fastify(workdir) if "fastify" in only else None
    procs: list[LocalProcess] = []
    started = time.time()
    load_before = os.getloadavg()
    try:
        broker = localdeps.start_tansu(workdir)
        procs.append(broker)
        harness.pin_threads(broker.pid, args.load_cpus)
        up_port = localdeps.free_port()
        upstream = harness.start_nginx(
            "nginx-upstream", workdir, up_port, args.load_cpus, harness.upstream_block(up_port)
        )
        procs.append(upstream)
        raws = asyncio.run(
            load_state(broker.url, f"http://127.0.0.1:{up_port}", sandbox=args.sandbox)
        )
        keys_file = workdir / "keys.txt"
        keys_file.write_text("\n".join(raws) + "\n")
        keys_map = workdir / "keys.map"
        keys_map.write_text("".join(f'"{raw}" org-1;\n' for raw in raws))

        targets = [Target("direct", up_port, "", upstream)]
        # `--identity`: a second Tollgate signing the caller identity headers (issue #15);
        # `--baseline REV`: the gateway of another revision. Same interleaved rounds, so
        # each differs from `tollgate` by that alone.
        if "tollgate" in only:
            targets.append(start_tollgate("tollgate", workdir, broker.url, args, procs))
            if args.identity:
                targets.append(
                    start_tollgate("tg-ident", workdir, broker.url, args, procs, "bench-identity")
                )
            if args.baseline:
                old = baseline_source(args.baseline, workdir)
                targets.append(
                    start_tollgate(
                        f"tollgate@{args.baseline}",
                        workdir,
                        broker.url,
                        args,
                        procs,
                        pythonpath=old,
                    )
                )
        if fastify_js is not None:
            port = localdeps.free_port()
            node, _ = harness.node_tool()
            argv = [
                "taskset",
                "-c",
                args.gateway_cpus,
                node,
                str(fastify_js),
                str(port),
                f"http://127.0.0.1:{up_port}",
                str(keys_file),
                PEPPER,
                str(args.workers),
            ]
            proc = localdeps.start_program("fastify", argv, workdir, port=port)
            procs.append(proc)
            targets.append(Target("fastify", port, "/api", proc))
        if "nginx" in only:
            port = localdeps.free_port()
            block = harness.proxy_block(port, up_port, keys_map)
            proc = harness.start_nginx(
                "nginx-proxy", workdir, port, args.gateway_cpus, block, workers=args.workers
            )
            procs.append(proc)
            targets.append(Target("nginx", port, "/api", proc))
        for target in targets[1:]:
            check_job(target, raws[0])

        scripts = {m: harness.wrk_script(workdir, keys_file, m, b) for m, _, b in WORKLOADS}
        cells = sandbox_cells(targets, workdir, keys_file, args) if args.sandbox else []
        runs: dict[tuple[str, str], list[WrkResult]] = {}
        fixed_runs: dict[tuple[str, str], list[dict[str, float | int | str]]] = {}
        # Warm-up, not counted: V8's JIT, CPython's caches and every pool get going.
        for target in targets[1:]:
            for method, path, _ in WORKLOADS:
                harness.wrk(
                    target.url(path),
                    scripts[method],
                    args.warmup_seconds,
                    args.connections,
                    cpus=args.load_cpus,
                )
        for cell in cells:
            harness.wrk(
                cell.url, cell.script, args.warmup_seconds, args.connections, cpus=args.load_cpus
            )
        sandbox_runs: dict[str, list[WrkResult]] = {}
        # `--identity`, `--baseline`: Tollgates compared with `tollgate` pair by pair.
        paired = [t for t in targets if t.name == "tg-ident" or t.name.startswith("tollgate@")]
        reference = next((t for t in targets if t.name == "tollgate"), targets[0])
        shared: Pairs = {}
        # Rounds interleave the targets so a burst of load from elsewhere hits them all,
        # in the opposite order every other round: no target always runs right after
        # another (the broker holds every event of the run, and grows as it goes).
        for round_no in range(1, args.rounds + 1):
            in_order = targets if round_no % 2 else targets[::-1]
            for cell in cells:
                result = harness.wrk(
                    cell.url,
                    cell.script,
                    args.seconds,
                    args.connections,
                    cpus=args.load_cpus,
                    measure_pid=cell.pid,
                )
                sandbox_runs.setdefault(cell.name, []).append(result)
                print(f"  round {round_no} {cell.name:<40} {result.rps:>8.0f} req/s", flush=True)
            for method, path, body in WORKLOADS:
                workload = f"{method} {'1 KB' if body else path}"
                for target in in_order:
                    result = harness.wrk(
                        target.url(path),
                        scripts[method],
                        args.seconds,
                        args.connections,
                        cpus=args.load_cpus,
                        measure_pid=target.process.pid,
                    )
                    runs.setdefault((workload, target.name), []).append(result)
                    print(
                        f"  round {round_no} {workload:<10} {target.name:<9} "
                        f"{result.rps:>8.0f} req/s",
                        flush=True,
                    )
            for method, path, body in WORKLOADS:
                workload = f"{method} {'1 KB' if body else path}"
                for target in in_order:
                    result_fixed = fixed_rate(
                        target.port,
                        target.prefix + path,
                        method,
                        body,
                        keys_file,
                        args,
                        target.process.pid,
                    )
                    fixed_runs.setdefault((workload, target.name), []).append(result_fixed)
                    print(
                        f"  round {round_no} {workload:<10} {target.name:<9} fixed-rate p99 "
                        f"{float(result_fixed['p99_ms']):.2f} ms",
                        flush=True,
                    )
            for method, path, body in WORKLOADS:
                workload = f"{method} {'1 KB' if body else path}"
                for other in paired:
                    pair = sharing_the_core(reference, other, path, scripts[method], args)
                    shared.setdefault((workload, other.name), []).append(pair)
                    print(
                        f"  round {round_no} {workload:<10} tollgate|{other.name} at once "
                        f"{pair[1].rps / pair[0].rps:.3f}",
                        flush=True,
                    )
        # Noise from other processes only ever slows a cell down: keep each cell's best
        # round (highest req/s; lowest fixed-rate p99) and show the saturation spread.
        saturation = [
            (w, t, max(rs, key=lambda r: r.rps), (min(r.rps for r in rs), max(r.rps for r in rs)))
            for (w, t), rs in runs.items()
        ]
        fixed = [
            (w, t, min(rs, key=lambda r: float(r["p99_ms"]))) for (w, t), rs in fixed_runs.items()
        ]

        print(f"\n# bench/gateway/run.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"host: {os.cpu_count()} cores, {platform.python_implementation()} "
            f"{platform.python_version()}, load average before {load_before[0]:.2f}, "
            f"after {os.getloadavg()[0]:.2f} (1 min), {time.time() - started:.0f} s"
        )
        print(
            f"pinning: gateways on cpu {args.gateway_cpus}; nginx upstream, broker, wrk, "
            f"fixed-rate client on cpu {args.load_cpus}; {KEYS} keys; "
            f"{args.connections} wrk connections, {args.seconds} s per cell"
        )
        print(
            f"workers: {args.workers} requested (TOLLGATE_GATEWAY_WORKERS={args.workers}); "
            + ", ".join(
                f"{t.name} runs {len(harness.process_tree(t.process.pid))} process(es)"
                for t in targets[1:]
            )
        )
        print_saturation(saturation, args.rounds)
        print_fixed(fixed, args.rate)
        if args.baseline:
            print_baseline(saturation, fixed, f"tollgate@{args.baseline}", args.rate)
        if paired:
            print_paired(
                {
                    (w, t): list(zip(runs[(w, "tollgate")], rs, strict=True))
                    for (w, t), rs in runs.items()
                    if t in {p.name for p in paired}
                },
                "Paired rounds: each against tollgate in the same round",
                "The saturation cells above, one ratio per round.",
            )
            print_paired(
                shared,
                "Sharing the core: each against tollgate, both saturated at once",
                "Both on the gateway core at the same time (two wrk, one per gateway): "
                "noise that moves whole cells moves both, so this is the tighter A/B.",
            )
        if cells:
            print_sandbox(sandbox_runs, args.rounds)
        if args.profile and "tollgate" in only:
            for target in targets:
                if target.name in ("tollgate", "tg-ident"):
                    profile_tollgate(target, scripts["GET"], workdir, args, args.workers)
        print(f"\nlogs and configs: {workdir}")
    finally:
        for proc in reversed(procs):
            proc.stop()


if __name__ == "__main__":
    main()
