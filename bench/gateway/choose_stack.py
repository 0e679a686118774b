"""Pick the gateway's HTTP server and upstream client by measurement.

Runs minimal pass-through proxies (no auth, no limits, no events) in several server /
client combinations, each pinned to the gateway core, against nginx serving a small
fixed answer on the load core, and prints wrk's req/s, p50/p99, the proxy's CPU% and
CPU µs per request for GET and POST 1 KB, next to nginx called directly, in the same
run. The `bare` variants answer by themselves (no upstream call): the server's own
cost. Candidates:

- aiohttp's low-level `web.Server` on uvloop (what the gateway's server is today),
- Granian (Rust, hyper) with its RSGI interface, one worker, uvloop,
- pyreqwest (Rust reqwest/hyper) as the upstream client, body buffered (`send`) or
  streamed (`build_streamed`, what a proxy needs for large bodies);
- the gateway's own upstream client (`tollgate.gateway.proxy.upstream_http`: HTTP/1.1
  keep-alive pools on the same loop, llhttp parsing; what the gateway uses today);
- a server of our own (`httptools-server`: an `asyncio.Protocol` parsing with llhttp and
  writing the answer's head itself), bare and with the gateway's client: what replacing
  aiohttp's server could save at best;
- `--variants all` adds the older aiohttp-client and httptools candidates.

Usage: .venv/bin/python bench/gateway/choose_stack.py [--seconds 5] [--variants all]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness

from tollgate.kit import localdeps
from tollgate.kit.localdeps import LocalProcess

BODY = b'{"message":"hello from the proxy"}'
DEFAULT_VARIANTS = (
    "aiohttp-server bare",
    "granian-rsgi bare",
    "aiohttp-server+pyreqwest",
    "aiohttp-server+pyreqwest-streamed",
    "aiohttp-server+tollgate-client",
    "httptools-server bare",
    "httptools-server+tollgate-client",
    "granian-rsgi+pyreqwest",
    "granian-rsgi+pyreqwest-streamed",
)
OLD_VARIANTS = ("aiohttp-server+aiohttp-client", "httptools-server+aiohttp-client")


def upstream_base() -> str:
    return os.environ["CHOOSE_STACK_UPSTREAM"]


async def pyreqwest_client() -> Any:
    from pyreqwest.client import ClientBuilder

    builder = (
        ClientBuilder()
        .max_connections(256)
        .http1_only()
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .follow_redirects(False)
    )
    return await builder.build().__aenter__()


async def relay_pyreqwest(
    client: Any, method: str, path_qs: str, body: bytes, streamed: bool
) -> tuple[int, bytes]:
    req = client.request(method, upstream_base() + path_qs)
    if body:
        req = req.body_bytes(body)
    if streamed:
        # What a proxy needs: headers first, body streamed (no size known up front).
        async with req.build_streamed() as resp:
            return int(resp.status), bytes(await resp.body_reader.bytes())
    resp = await req.build().send()
    return int(resp.status), bytes(await resp.bytes())


async def serve_aiohttp_lowlevel(port: int, client: str) -> None:
    from aiohttp import web

    base = upstream_base()
    if client == "bare":

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            await request.read()
            return web.Response(body=BODY, content_type="application/json")

    elif client == "aiohttp":
        session = aiohttp_session()

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            async with session.request(
                request.method,
                base + request.path_qs,
                headers=request.headers,
                data=request.content if request.body_exists else None,
            ) as resp:
                body = await resp.read()
                return web.Response(body=body, status=resp.status, headers=resp.headers)

    elif client == "tollgate":
        origin = tollgate_origin()

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            body = await request.read()
            status, data = await relay_tollgate(
                origin, request.method, request.raw_path, body if request.body_exists else None
            )
            return web.Response(body=data, status=status)

    else:
        rclient = await pyreqwest_client()
        streamed = client == "pyreqwest-streamed"

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            body = await request.read()
            status, data = await relay_pyreqwest(
                rclient, request.method, request.path_qs, body, streamed
            )
            return web.Response(body=data, status=status)

    server = web.Server(handler)
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def aiohttp_session() -> Any:
    """aiohttp's client as a proxy would set it up: pooled, bodies untouched."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
    )


async def relay_tollgate(
    origin: Any, method: str, target: str, body: bytes | None
) -> tuple[int, bytes]:
    upstream = await origin.request(method, target, [], body=body)
    try:
        return upstream.status, await upstream.read_all()
    finally:
        upstream.close()


def tollgate_origin() -> Any:
    """The gateway's own upstream client, one pool to the nginx upstream."""
    from urllib.parse import urlsplit

    from tollgate.gateway.proxy.upstream_http import Origin

    parts = urlsplit(upstream_base())
    host = parts.hostname or ""
    return Origin(
        "http",
        host,
        parts.port or 80,
        host,
        max_connections=256,
        connect_timeout=2,
        read_timeout=60,
    )


async def serve_httptools(port: int, client: str) -> None:
    """A server of our own: an `asyncio.Protocol` with llhttp (httptools) parsing and
    the answer's head written by hand; `bare`, or relaying with the aiohttp client or
    the gateway's own. One request at a time per connection (what wrk sends)."""
    import httptools

    base = upstream_base()
    relay: Any
    if client == "aiohttp":
        session = aiohttp_session()

        async def relay(method: str, url: str, body: bytes) -> tuple[int, bytes]:
            async with session.request(method, base + url, data=body or None) as resp:
                return resp.status, await resp.read()

    elif client == "tollgate":
        origin = tollgate_origin()

        async def relay(method: str, url: str, body: bytes) -> tuple[int, bytes]:
            return await relay_tollgate(origin, method, url, body or None)

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            self.p = httptools.HttpRequestParser(self)
            self.headers: list[tuple[bytes, bytes]] = []
            self.body = bytearray()

        def data_received(self, data: bytes) -> None:
            self.p.feed_data(data)

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, k: bytes, v: bytes) -> None:
            self.headers.append((k, v))

        def on_body(self, b: bytes) -> None:
            self.body += b

        def on_message_complete(self) -> None:
            if client == "bare":
                self.answer(200, BODY)
            else:
                method = self.p.get_method().decode()
                self.pending = asyncio.ensure_future(
                    self.respond(method, self.url.decode(), bytes(self.body))
                )
            self.headers = []
            self.body = bytearray()

        async def respond(self, method: str, url: str, body: bytes) -> None:
            self.answer(*await relay(method, url, body))

        def answer(self, status: int, data: bytes) -> None:
            head = f"HTTP/1.1 {status} OK\r\ncontent-length: {len(data)}\r\n\r\n"
            self.t.write(head.encode() + data)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    await loop.create_server(Proto, "127.0.0.1", port)
    await asyncio.Event().wait()


class RsgiProxy:
    """The Granian (RSGI) candidate: a fixed answer (`bare`) or a pyreqwest relay."""

    def __init__(self) -> None:
        self.mode = os.environ.get("CHOOSE_STACK_MODE", "bare")
        self.client: Any = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.mode != "bare":
            self.client = loop.run_until_complete(pyreqwest_client())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        body = await proto()
        if self.mode == "bare":
            proto.response_bytes(200, [("content-type", "application/json")], BODY)
            return
        path_qs = scope.path + (f"?{scope.query_string}" if scope.query_string else "")
        status, data = await relay_pyreqwest(
            self.client, scope.method, path_qs, body, self.mode == "pyreqwest-streamed"
        )
        proto.response_bytes(status, [], data)


rsgi_app = RsgiProxy()


def run_python_proxy(variant: str, port: int) -> None:
    import uvloop

    server, _, client = variant.replace(" ", "+").partition("+")
    client = client.removesuffix("-client")
    if server == "httptools-server":
        uvloop.run(serve_httptools(port, client))
        return
    uvloop.run(serve_aiohttp_lowlevel(port, client))


def start_variant(variant: str, workdir: Path, port: int, cpus: str, upstream: str) -> LocalProcess:
    env = {**os.environ, "CHOOSE_STACK_UPSTREAM": upstream}
    if variant.startswith("granian-rsgi"):
        env["CHOOSE_STACK_MODE"] = variant.removeprefix("granian-rsgi").lstrip("+ ")
        argv = [sys.executable, "-m", "granian", "--interface", "rsgi", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--workers", "1", "--runtime-threads", "1"]
        argv += ["--loop", "uvloop", "--http", "1", "--no-ws", "--no-access-log"]
        argv += ["--log-level", "warning", "--working-dir", str(harness.HERE)]
        argv += ["choose_stack:rsgi_app"]
    else:
        argv = [sys.executable, __file__, "--proxy", variant, "--port", str(port)]
    name = variant.replace(" ", "-").replace("+", "_")
    return localdeps.start_program(
        name, ["taskset", "-c", cpus, *argv], workdir, port=port, env=env
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept")
    parser.add_argument("--variants", default="default", help="'default', 'all' or a list")
    parser.add_argument("--gateway-cpus", default="0")
    parser.add_argument("--load-cpus", default="1")
    parser.add_argument("--proxy", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy:
        run_python_proxy(args.proxy, args.port)
        return
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    if args.variants == "all":
        variants = DEFAULT_VARIANTS + OLD_VARIANTS
    elif args.variants != "default":
        variants = tuple(args.variants.split(","))
    harness.debian_tool("wrk", "wrk")
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-choose-stack-"))
    keys = workdir / "keys.txt"
    keys.write_text("not-checked\n")
    scripts = {
        "GET": harness.wrk_script(workdir, keys, "GET", 0),
        "POST 1 KB": harness.wrk_script(workdir, keys, "POST", 1024),
    }
    paths = {"GET": "/hello", "POST 1 KB": "/echo/x"}
    up_port = localdeps.free_port()
    upstream = harness.start_nginx(
        "nginx-upstream", workdir, up_port, args.load_cpus, harness.upstream_block(up_port)
    )
    procs = {"direct (nginx)": (up_port, upstream)}
    runs: dict[tuple[str, str], list[harness.WrkResult]] = {}
    try:
        for variant in variants:
            port = localdeps.free_port()
            upstream_url = f"http://127.0.0.1:{up_port}"
            procs[variant] = (
                port,
                start_variant(variant, workdir, port, args.gateway_cpus, upstream_url),
            )
        # All candidates stay up (idle ones cost nothing) so rounds can interleave them.
        for port, _ in list(procs.values())[1:]:
            for workload, script in scripts.items():
                url = f"http://127.0.0.1:{port}{paths[workload]}"
                harness.wrk(url, script, 2, args.connections, cpus=args.load_cpus)  # warm-up
        for round_no in range(1, args.rounds + 1):
            for variant, (port, proc) in procs.items():
                for workload, script in scripts.items():
                    result = harness.wrk(
                        f"http://127.0.0.1:{port}{paths[workload]}",
                        script,
                        args.seconds,
                        args.connections,
                        cpus=args.load_cpus,
                        measure_pid=proc.pid,
                    )
                    runs.setdefault((variant, workload), []).append(result)
                    print(
                        f"  round {round_no} {variant:<36} {workload:<9} {result.rps:>8.0f} req/s",
                        flush=True,
                    )
    finally:
        for _, proc in reversed(procs.values()):
            proc.stop()
    rows = [(v, w, max(rs, key=lambda r: r.rps)) for (v, w), rs in runs.items()]
    print(
        f"\n## choose_stack.py: {args.seconds} s per cell, {args.connections} connections, "
        f"proxy on cpu {args.gateway_cpus}, nginx + wrk on cpu {args.load_cpus}, "
        f"load average {os.getloadavg()[0]:.2f}; best of {args.rounds} interleaved rounds "
        "per cell\n"
    )
    print(
        "| stack | workload | req/s | p50 ms | p99 ms | proxy CPU% | CPU µs/req | req/s per core "
        "| ÷ direct "
        "| non-2xx / errors |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    direct = {w: r.rps for v, w, r in rows if v.startswith("direct")}
    for variant, workload, res in rows:
        cpu = f"{res.cpu:.0f}" if res.cpu is not None else ""
        per_request = f"{res.cpu_us_per_request:.0f}" if res.cpu_us_per_request else ""
        per_core = f"{res.per_core:.0f}" if res.per_core else ""
        print(
            f"| {variant} | {workload} | {res.rps:.0f} | {res.p50_ms:.2f} | {res.p99_ms:.2f} "
            f"| {cpu} | {per_request} | {per_core} | {res.rps / direct[workload]:.2f} "
            f"| {res.non2xx} / {res.errors} |"
        )


if __name__ == "__main__":
    main()
