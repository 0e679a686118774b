"""A small upstream API for local runs, tests and benchmarks (stands in for a customer's API).

Routes: `GET /hello` (a JSON greeting), `ANY /echo/{path}` (method, path, query, body
size and the headers it received, so tests can see what the gateway forwarded),
`GET /status/{code}`, `GET /slow?ms=N`, `GET /bytes/{n}` (n bytes, streamed).
Run: `python infra/demo_upstream.py --port 9000`.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

CHUNK = b"x" * 65536


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"message": "hello from the demo upstream"})


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "body_bytes": len(body),
            "headers": {k.lower(): v for k, v in request.headers.items()},
        }
    )


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.json_response({"status": code}, status=code)


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.query.get("ms", "1000")) / 1000)
    return web.json_response({"slept_ms": int(request.query.get("ms", "1000"))})


async def many_bytes(request: web.Request) -> web.StreamResponse:
    remaining = int(request.match_info["n"])
    response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
    response.content_length = remaining
    await response.prepare(request)
    while remaining > 0:
        chunk = CHUNK[: min(remaining, len(CHUNK))]
        await response.write(chunk)
        remaining -= len(chunk)
    await response.write_eof()
    return response


def build_app() -> web.Application:
    app = web.Application(client_max_size=200 * 1024 * 1024)
    app.router.add_get("/hello", hello)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/status/{code:\\d+}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/bytes/{n:\\d+}", many_bytes)
    app.router.add_get("/healthz", hello)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    web.run_app(build_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
