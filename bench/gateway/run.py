"""Gateway vs upstream called directly, same run, with wrk on loopback.

Starts a Tansu broker (events on), the demo upstream (infra/demo_upstream.py), and
one gateway process pinned to core 0 (`taskset`); the upstream and wrk share core
1. Loads 10k keys (each with a per-hour limit, so limits are evaluated on every
request), then runs wrk for GET /hello and POST /echo/x with a 1 KB body, directly
and through the gateway, rotating over the 10k keys, and prints req/s, p50, p99
and the gateway/direct ratio. Usage (see README.md):

    .venv/bin/python bench/gateway/run.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tollgate.contracts import topics  # noqa: E402
from tollgate.contracts.envelope import encode, new_event  # noqa: E402
from tollgate.contracts.events.accounts import ApiUpserted, KeyUpserted  # noqa: E402
from tollgate.kit import apikeys, localdeps  # noqa: E402
from tollgate.kit.kafka import ensure_topics, make_producer, topic_name  # noqa: E402
from tollgate.kit.settings import ServiceSettings  # noqa: E402

PEPPER = "bench-pepper"
KEYS = 10_000


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def need_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is missing: apt-get install -y wrk (Debian package)")
    return wrk


async def load_state(bootstrap: str, upstream: str) -> list[str]:
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, kafka_enable_idempotence=False)
    await ensure_topics(settings, topics.ALL_TOPICS)
    producer = make_producer(settings, client="bench")
    await producer.start()
    now = datetime.now(UTC)
    api = ApiUpserted(
        api_id=uuid.uuid4(),
        slug="api",
        name="bench",
        api_version="v1",
        upstream_url=upstream,
        status="active",
        timeout_ms=5000,
        price=1,
        charge_failed_calls=False,
        version=1,
        updated_at=now,
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


LUA = """
local keys = {%s}
local n = 0
wrk.method = "%s"
%s
request = function()
  n = n + 1
  return wrk.format(nil, nil, {["X-API-Key"] = keys[(n %% #keys) + 1]%s})
end
"""


def wrk_run(url: str, script: Path, seconds: int, connections: int) -> tuple[float, str, str]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            need_wrk(),
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"warning: {non2xx.group(1)} non-2xx answers from {url}", file=sys.stderr)
    return rps, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway (GET run)")
    args = parser.parse_args()
    need_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    broker = localdeps.start_tansu(workdir)
    up_port, gw_port = localdeps.free_port(), localdeps.free_port()
    py = sys.executable
    upstream = subprocess.Popen(
        ["taskset", "-c", "1", py, str(ROOT / "infra/demo_upstream.py"), "--port", str(up_port)]
    )
    gateway = None
    try:
        localdeps.wait_for_port("127.0.0.1", up_port)
        raws = asyncio.run(load_state(broker.url, f"http://127.0.0.1:{up_port}"))
        env = {
            **os.environ,
            "TOLLGATE_GATEWAY_PORT": str(gw_port),
            "TOLLGATE_GATEWAY_KAFKA_BOOTSTRAP_SERVERS": broker.url,
            "TOLLGATE_GATEWAY_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "TOLLGATE_GATEWAY_KEY_PEPPER": PEPPER,
            "TOLLGATE_GATEWAY_SPOOL_DIR": str(workdir / "spool"),
            "TOLLGATE_GATEWAY_LOG_LEVEL": "WARNING",
        }
        gateway = subprocess.Popen(
            ["taskset", "-c", "0", py, "-m", "tollgate.gateway"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "gateway.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 60
        while not ready(f"http://127.0.0.1:{gw_port}/_tollgate/readyz"):
            if time.monotonic() > deadline:
                sys.exit("gateway not ready; see " + str(workdir / "gateway.log"))
            time.sleep(0.2)
        keys = ",".join(f'"{k}"' for k in raws)
        get_script = workdir / "get.lua"
        get_script.write_text(LUA % (keys, "GET", "", ""))
        post_script = workdir / "post.lua"
        post_script.write_text(
            LUA
            % (
                keys,
                "POST",
                'wrk.body = string.rep("x", 1024)',
                ', ["Content-Type"] = "application/octet-stream"',
            )
        )
        rows = []
        for name, script, path in (
            ("GET /hello", get_script, "/hello"),
            ("POST /echo 1KB", post_script, "/echo/x"),
        ):
            direct = wrk_run(
                f"http://127.0.0.1:{up_port}{path}", script, args.seconds, args.connections
            )
            spy = None
            if args.profile and name.startswith("GET"):
                spy = subprocess.Popen(
                    [
                        str(Path(py).parent / "py-spy"),
                        "record",
                        "-o",
                        str(workdir / "profile.txt"),
                        "-f",
                        "raw",
                        "-d",
                        str(args.seconds),
                        "-p",
                        str(gateway.pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            through = wrk_run(
                f"http://127.0.0.1:{gw_port}/api{path}", script, args.seconds, args.connections
            )
            if spy is not None:
                spy.wait()
                print(f"profile (collapsed stacks): {workdir / 'profile.txt'}")
            rows.append((name, direct, through))
        print(f"{'workload':<16} {'path':<8} {'req/s':>9} {'p50':>9} {'p99':>9} {'ratio':>6}")
        for name, direct, through in rows:
            print(f"{name:<16} {'direct':<8} {direct[0]:>9.0f} {direct[1]:>9} {direct[2]:>9}")
            print(
                f"{'':<16} {'gateway':<8} {through[0]:>9.0f} {through[1]:>9} {through[2]:>9} "
                f"{through[0] / direct[0]:>6.2f}"
            )
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        upstream.terminate()
        upstream.wait()
        broker.stop()


if __name__ == "__main__":
    main()
