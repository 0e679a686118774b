"""Pick the gateway's HTTP server and upstream client by measurement.

Runs a minimal pass-through proxy (no auth, no limits, no events) in several
server/client combinations against the demo upstream and prints wrk's req/s and
latency for each, next to the upstream called directly, in the same run.
Usage: .venv/bin/python bench/gateway/choose_stack.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_PORT = int(os.environ.get("UPSTREAM_PORT", "19920"))


async def serve_aiohttp_lowlevel(port: int, client: str) -> None:
    import aiohttp
    from aiohttp import web

    base = f"http://127.0.0.1:{UPSTREAM_PORT}"
    if client == "aiohttp":
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            async with session.request(
                request.method,
                base + request.path_qs,
                headers=request.headers,
                data=request.content if request.body_exists else None,
            ) as resp:
                body = await resp.read()
                return web.Response(body=body, status=resp.status, headers=resp.headers)
    else:
        from pyreqwest.client import ClientBuilder

        rclient = (
            await ClientBuilder()
            .max_connections(256)
            .http1_only()
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .follow_redirects(False)
            .build()
            .__aenter__()
        )
        streamed = client == "pyreqwest-streamed"

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            req = rclient.request(request.method, base + request.path_qs)
            body = await request.read()
            if body:
                req = req.body_bytes(body)
            if streamed:
                # What a proxy needs: headers first, body streamed (no size known up front).
                async with req.build_streamed() as resp:
                    data = await resp.body_reader.bytes()
            else:
                resp = await req.build().send()
                data = await resp.bytes()
            return web.Response(body=bytes(data), status=resp.status)

    server = web.Server(handler)
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def serve_httptools(port: int) -> None:
    import aiohttp
    import httptools

    base = f"http://127.0.0.1:{UPSTREAM_PORT}"
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
    )

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
            method = self.p.get_method().decode()
            self.pending = asyncio.ensure_future(
                self.respond(method, self.url.decode(), bytes(self.body))
            )
            self.headers = []
            self.body = bytearray()

        async def respond(self, method: str, url: str, body: bytes) -> None:
            async with session.request(method, base + url, data=body or None) as resp:
                data = await resp.read()
            head = f"HTTP/1.1 {resp.status} OK\r\ncontent-length: {len(data)}\r\n\r\n"
            self.t.write(head.encode() + data)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    await loop.create_server(Proto, "127.0.0.1", port)
    await asyncio.Event().wait()


def run_proxy(variant: str, port: int) -> None:
    import uvloop

    if variant == "aiohttp-server+aiohttp-client":
        uvloop.run(serve_aiohttp_lowlevel(port, "aiohttp"))
    elif variant == "aiohttp-server+pyreqwest-client":
        uvloop.run(serve_aiohttp_lowlevel(port, "pyreqwest"))
    elif variant == "aiohttp-server+pyreqwest-streamed":
        uvloop.run(serve_aiohttp_lowlevel(port, "pyreqwest-streamed"))
    elif variant == "httptools-server+aiohttp-client":
        uvloop.run(serve_httptools(port))


def wrk(url: str, seconds: int) -> tuple[float, str, str]:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return rps, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--proxy", default=None)
    parser.add_argument("--port", type=int, default=19921)
    args = parser.parse_args()
    if args.proxy:
        run_proxy(args.proxy, args.port)
        return
    py = sys.executable
    upstream = subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            py,
            str(ROOT / "infra/demo_upstream.py"),
            "--port",
            str(UPSTREAM_PORT),
        ]
    )
    time.sleep(1.5)
    try:
        rows = [("direct", *wrk(f"http://127.0.0.1:{UPSTREAM_PORT}/hello", args.seconds))]
        for variant in (
            "aiohttp-server+aiohttp-client",
            "httptools-server+aiohttp-client",
            "aiohttp-server+pyreqwest-client",
            "aiohttp-server+pyreqwest-streamed",
        ):
            proxy = subprocess.Popen(
                ["taskset", "-c", "0", py, __file__, "--proxy", variant, "--port", str(args.port)]
            )
            time.sleep(1.5)
            try:
                rows.append((variant, *wrk(f"http://127.0.0.1:{args.port}/hello", args.seconds)))
            finally:
                proxy.terminate()
                proxy.wait()
        direct = rows[0][1]
        print(f"{'stack':<36} {'req/s':>9} {'p50':>9} {'p99':>9} {'ratio':>6}")
        for name, rps, p50, p99 in rows:
            print(f"{name:<36} {rps:>9.0f} {p50:>9} {p99:>9} {rps / direct:>6.2f}")
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main()
