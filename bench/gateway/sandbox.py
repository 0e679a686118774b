"""The price of the sandbox features, same run, loopback: mock answers per second, and
request validation of a 1 KB JSON body against plain proxying of the same body.

Starts a Tansu broker (events on), nginx as the upstream (one small fixed answer) and
one Tollgate gateway pinned to the gateway core, serving three APIs replayed from Kafka:

- `plain`: no document, no mock, no validation (the plain proxy path);
- `checked`: an OpenAPI document and `validate_requests` (the body is parsed and
  checked by the compiled validator, then forwarded);
- `mock`: the same document with the mock on (no upstream call).

Then wrk at saturation, interleaved rounds, best kept, for: POST of a 1 KB JSON body
through `plain` and through `checked`; GET of a mocked resource (document example) and
of a mocked list with `Prefer: dynamic=true` (generated from the schema). Prints one
table with req/s, p50/p99, the gateway's CPU% and CPU µs/request, and each cell's
ratio to plain proxying. Usage:

    .venv/bin/python bench/gateway/sandbox.py [--seconds 5] [--rounds 2] [--baseline REV]

`--baseline REV` also starts the gateway package of git revision REV (`git archive`,
first on PYTHONPATH) and measures its plain proxying in the same rounds: the plain
path's cost before and after a change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import harness
from harness import WrkResult

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.accounts import ApiUpserted, KeyUpserted
from tollgate.kit import apikeys, localdeps
from tollgate.kit.kafka import ensure_topics, make_producer, topic_name
from tollgate.kit.localdeps import LocalProcess
from tollgate.kit.settings import ServiceSettings

PEPPER = "bench-pepper"
KEYS = 1_000

ORDER_SCHEMA = {
    "type": "object",
    "required": ["customer", "currency", "lines"],
    "additionalProperties": False,
    "properties": {
        "customer": {"type": "string", "format": "email"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "CNY"]},
        "note": {"type": "string", "maxLength": 2000},
        "lines": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["sku", "quantity"],
                "additionalProperties": False,
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z0-9-]{4,20}$"},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "unit_price": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}
DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "bench", "version": "1"},
    "paths": {
        "/orders": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ORDER_SCHEMA}},
                },
                "responses": {"200": {"description": "ok"}},
            },
            "get": {
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 50}}
                ],
                "responses": {
                    "200": {
                        "description": "orders",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "maxItems": 5, "items": ORDER_SCHEMA}
                            }
                        },
                    }
                },
            },
        },
        "/orders/{id}": {
            "get": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": {
                        "description": "an order",
                        "content": {
                            "application/json": {
                                "schema": ORDER_SCHEMA,
                                "example": {
                                    "customer": "a@example.com",
                                    "currency": "EUR",
                                    "lines": [{"sku": "AB-12", "quantity": 2}],
                                },
                            }
                        },
                    }
                },
            }
        },
    },
}


def order_body(size: int = 1024) -> bytes:
    """A valid order of exactly `size` bytes (the note pads it)."""
    order = {
        "customer": "buyer@example.com",
        "currency": "EUR",
        "lines": [{"sku": f"SKU-{n:04d}", "quantity": n + 1, "unit_price": 250} for n in range(8)],
        "note": "",
    }
    empty = len(json.dumps(order, separators=(",", ":")))
    order["note"] = "x" * (size - empty)
    body = json.dumps(order, separators=(",", ":")).encode()
    assert len(body) == size
    return body


WRK_LUA = """
local keys = {}
for line in io.lines("%s") do keys[#keys + 1] = line end
local n = 0
wrk.method = "%s"
%s
request = function()
  n = n + 1
  return wrk.format(nil, nil, {["X-API-Key"] = keys[(n %% #keys) + 1]%s})
end
"""


def script(workdir: Path, keys: Path, name: str, method: str, body: bytes, extra: str) -> Path:
    lua_body = "wrk.body = [[" + body.decode() + "]]" if body else ""
    path = workdir / f"{name}.lua"
    path.write_text(WRK_LUA % (keys, method, lua_body, extra))
    return path


async def load_state(bootstrap: str, upstream: str) -> list[str]:
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, kafka_enable_idempotence=False)
    await ensure_topics(settings, topics.ALL_TOPICS)
    producer = make_producer(settings, client="bench-sandbox")
    await producer.start()
    now = datetime.now(UTC)
    apis = {
        "plain": {},
        "checked": {"openapi_document": DOCUMENT, "sandbox": {"validate_requests": True}},
        "mock": {"openapi_document": DOCUMENT, "sandbox": {"mock": True}},
    }
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per cell")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup-seconds", type=int, default=2)
    parser.add_argument("--gateway-cpus", default="0")
    parser.add_argument("--load-cpus", default="1")
    parser.add_argument(
        "--baseline",
        default=None,
        help="a git revision: its gateway also runs the plain-proxy cell (same run), "
        "e.g. the commit before the sandbox features, to show the plain path's cost",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-sandbox-"))
    procs: list[LocalProcess] = []
    started = time.time()
    load_before = os.getloadavg()
    try:
        broker = localdeps.start_tansu(workdir)
        procs.append(broker)
        harness.pin_threads(broker.pid, args.load_cpus)
        up_port = localdeps.free_port()
        procs.append(
            harness.start_nginx(
                "nginx-upstream", workdir, up_port, args.load_cpus, harness.upstream_block(up_port)
            )
        )
        raws = asyncio.run(load_state(broker.url, f"http://127.0.0.1:{up_port}"))
        keys = workdir / "keys.txt"
        keys.write_text("\n".join(raws) + "\n")

        def start_gateway(name: str, pythonpath: str | None) -> tuple[LocalProcess, int]:
            port = localdeps.free_port()
            env = {
                **os.environ,
                **({"PYTHONPATH": pythonpath} if pythonpath else {}),
                "TOLLGATE_GATEWAY_PORT": str(port),
                "TOLLGATE_GATEWAY_KAFKA_BOOTSTRAP_SERVERS": broker.url,
                "TOLLGATE_GATEWAY_KAFKA_ENABLE_IDEMPOTENCE": "false",
                "TOLLGATE_GATEWAY_KEY_PEPPER": PEPPER,
                "TOLLGATE_GATEWAY_SPOOL_DIR": str(workdir / f"spool-{name}"),
                "TOLLGATE_GATEWAY_LOG_LEVEL": "WARNING",
                "TOLLGATE_GATEWAY_WORKERS": "1",
                "TOLLGATE_GATEWAY_ALLOW_PRIVATE_UPSTREAMS": "true",
                "TOLLGATE_GATEWAY_OPS_PORT": str(localdeps.free_port()),
            }
            argv = ["taskset", "-c", args.gateway_cpus, sys.executable, "-m", "tollgate.gateway"]
            proc = localdeps.start_program(
                name, argv, workdir, port=port, env=env, ready_path="/_tollgate/readyz"
            )
            procs.append(proc)
            return proc, port

        gateway, port = start_gateway("tollgate", None)
        baseline: tuple[LocalProcess, int] | None = None
        if args.baseline:
            # The gateway package of another revision (e.g. before the sandbox features),
            # first on the path; the same broker, APIs, keys and upstream.
            old = workdir / "baseline"
            old.mkdir()
            archive = subprocess.run(
                [
                    "git",
                    "-C",
                    str(harness.HERE.parents[1]),
                    "archive",
                    args.baseline,
                    "services/gateway/src",
                ],
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            baseline = start_gateway("baseline", str(old / "services/gateway/src"))

        body = order_body()
        json_type = ', ["Content-Type"] = "application/json"'
        prefer_dynamic = ', ["Prefer"] = "dynamic=true"'
        cells = [
            (
                "POST 1 KB JSON, plain proxy",
                gateway,
                port,
                "/plain/orders",
                "POST",
                body,
                json_type,
            ),
            (
                "POST 1 KB JSON, validated + proxied",
                gateway,
                port,
                "/checked/orders",
                "POST",
                body,
                json_type,
            ),
            ("GET mock (document example)", gateway, port, "/mock/orders/7", "GET", b"", ""),
            (
                "GET mock (Prefer: dynamic=true)",
                gateway,
                port,
                "/mock/orders?limit=5",
                "GET",
                b"",
                prefer_dynamic,
            ),
        ]
        if baseline is not None:
            cells.append(
                (
                    f"POST 1 KB JSON, plain proxy @ {args.baseline}",
                    baseline[0],
                    baseline[1],
                    "/plain/orders",
                    "POST",
                    body,
                    json_type,
                )
            )
        scripts = [
            script(workdir, keys, f"cell{n}", method, data, extra)
            for n, (*_, method, data, extra) in enumerate(cells)
        ]
        # Every cell answers 200 before it is measured (a 400 would be cheap, not honest).
        for (name, _, port, path, *_), lua in zip(cells, scripts, strict=True):
            check = harness.wrk(f"http://127.0.0.1:{port}{path}", lua, 1, 4, cpus=args.load_cpus)
            if check.non2xx or check.errors:
                sys.exit(f"{name}: {check.non2xx} non-2xx, {check.errors} errors")
        for (_, _, port, path, *_), lua in zip(cells, scripts, strict=True):
            harness.wrk(
                f"http://127.0.0.1:{port}{path}",
                lua,
                args.warmup_seconds,
                args.connections,
                cpus=args.load_cpus,
            )
        runs: dict[str, list[WrkResult]] = {}
        for round_no in range(1, args.rounds + 1):
            for (name, proc, port, path, *_), lua in zip(cells, scripts, strict=True):
                result = harness.wrk(
                    f"http://127.0.0.1:{port}{path}",
                    lua,
                    args.seconds,
                    args.connections,
                    cpus=args.load_cpus,
                    measure_pid=proc.pid,
                )
                runs.setdefault(name, []).append(result)
                print(f"  round {round_no} {name:<38} {result.rps:>8.0f} req/s", flush=True)
        best = {name: max(results, key=lambda r: r.rps) for name, results in runs.items()}
        base = best[cells[0][0]]
        print(f"\n# bench/gateway/sandbox.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"host: {os.cpu_count()} cores, load average before {load_before[0]:.2f}, after "
            f"{os.getloadavg()[0]:.2f}; gateway on cpu {args.gateway_cpus}, nginx upstream, "
            f"broker and wrk on cpu {args.load_cpus}; {KEYS} keys, {args.connections} "
            f"connections, {args.seconds} s per cell, best of {args.rounds} rounds, "
            f"{time.time() - started:.0f} s\n"
        )
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
        print(f"\nlogs and configs: {workdir}")
    finally:
        for proc in reversed(procs):
            proc.stop()


if __name__ == "__main__":
    main()
