"""Open-loop HTTP/1.1 load at a fixed rate, latency measured from the intended send time.

wrk keeps N requests in flight and waits for each answer before it sends the next, so a
stall delays the requests it should have sent and hides them (coordinated omission);
Debian has no wrk2. This client plans request i at `start + i / rate` and measures
every latency from that planned instant, so time spent waiting for a free connection,
or behind the client's own late wake-up, counts against the target like a real
client's would. Its own lateness (send lag) is reported apart. Raw asyncio protocol
on uvloop, keep-alive connections opened before the clock starts, one request at a
time per connection, rotating over the keys file. Bounded: `rate * (warmup + seconds)`
requests, then at most 10 s for the last answers; a backlog over 2 s of requests aborts.

    python bench/gateway/fixed_rate.py --port P --path /api/hello --keys keys.txt \
        [--rate 1000] [--seconds 5] [--warmup 1] [--method POST --body-bytes 1024]

Prints one JSON object: achieved rate, errors, non-2xx, p50/p90/p99/p99.9/max latency
and the send lag p50/p99 (all ms; the warm-up second is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from pathlib import Path

import uvloop


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, load: FixedRateLoad) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.planned = 0.0
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, planned: float, counted: bool) -> None:
        self.planned, self.counted = planned, counted
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = head.find(b"\r\ncontent-length:")
        if length >= 0:
            stop = head.find(b"\r\n", length + 2)
            size = int(head[length + 17 : stop if stop >= 0 else None])
            if len(self.buffer) < end + 4 + size:
                return
        elif b"\r\ntransfer-encoding: chunked" in head and not self.buffer.endswith(b"0\r\n\r\n"):
            return
        status = int(head[9:12])
        self.buffer.clear()
        self.load.answered(self, status, time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.lost(self)


class FixedRateLoad:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        keys = [k for k in Path(args.keys).read_text().splitlines() if k]
        body = b"x" * args.body_bytes
        extra = b""
        if body:
            extra = b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n" % len(body)
        self.requests = [
            (
                f"{args.method} {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
                f"X-API-Key: {key}\r\n"
            ).encode()
            + extra
            + b"\r\n"
            + body
            for key in keys
        ]
        self.idle: collections.deque[Connection] = collections.deque()
        self.waiting: collections.deque[tuple[bytes, float, bool]] = collections.deque()
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.errors = 0
        self.non2xx = 0
        self.outstanding = 0
        self.done = asyncio.Event()

    def answered(self, conn: Connection, status: int, now: float) -> None:
        if conn.counted:
            self.latencies.append((now - conn.planned) * 1000)
            if not 200 <= status < 300:
                self.non2xx += 1
        self.outstanding -= 1
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            self.idle.append(conn)
        if self.outstanding == 0:
            self.done.set()

    def lost(self, conn: Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)
            return
        self.errors += 1
        self.outstanding -= 1
        asyncio.get_running_loop().create_task(self.replace())

    async def replace(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: Connection(self), "127.0.0.1", self.args.port
            )
        except OSError:
            return
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            self.idle.append(conn)

    def dispatch(self, index: int, planned: float, counted: bool) -> None:
        request = self.requests[index % len(self.requests)]
        self.outstanding += 1
        self.done.clear()
        if counted:
            self.lags.append((time.perf_counter() - planned) * 1000)
        if self.idle:
            self.idle.popleft().send(request, planned, counted)
        else:
            self.waiting.append((request, planned, counted))

    async def run(self) -> dict[str, float | int | str]:
        args = self.args
        loop = asyncio.get_running_loop()
        for _ in range(args.connections):
            _, conn = await loop.create_connection(lambda: Connection(self), "127.0.0.1", args.port)
            self.idle.append(conn)
        warm = int(args.rate * args.warmup)
        total = warm + int(args.rate * args.seconds)
        interval = 1.0 / args.rate
        start = time.perf_counter() + 0.05
        index = 0
        verdict = "ok"
        while index < total:
            now = time.perf_counter()
            while index < total and start + index * interval <= now:
                self.dispatch(index, start + index * interval, index >= warm)
                index += 1
            if len(self.waiting) > 2 * args.rate:
                verdict = "aborted: backlog over 2 s of requests"
                break
            if index < total:
                await asyncio.sleep(max(0.0, start + index * interval - time.perf_counter()))
        measured_start = start + warm * interval
        try:
            await asyncio.wait_for(self.done.wait(), timeout=10)
        except TimeoutError:
            verdict = f"timeout: {self.outstanding} answers missing"
        elapsed = time.perf_counter() - measured_start
        lat = self.latencies
        return {
            "verdict": verdict,
            "rate": args.rate,
            "answered": len(lat),
            "achieved_rps": round(len(lat) / elapsed, 1) if elapsed > 0 else 0,
            "errors": self.errors,
            "non2xx": self.non2xx,
            "p50_ms": percentile(lat, 0.50),
            "p90_ms": percentile(lat, 0.90),
            "p99_ms": percentile(lat, 0.99),
            "p999_ms": percentile(lat, 0.999),
            "max_ms": max(lat) if lat else float("nan"),
            "send_lag_p50_ms": percentile(self.lags, 0.50),
            "send_lag_p99_ms": percentile(self.lags, 0.99),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-bytes", type=int, default=0)
    parser.add_argument("--keys", required=True, help="file with one API key per line")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(FixedRateLoad(args).run())))


if __name__ == "__main__":
    main()
