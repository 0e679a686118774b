"""Answers the gate could not relay as they came, and clients that leave: each gets a
problem+json answer (or none, to a client that left) and exactly one recorded event."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from tollgate.gateway.events.publisher import COMPLETED
from tollgate.kit import apikeys

from .inprocess import InProcessGateway, RawHandler, api_event, key_event

KEY = apikeys.generate().raw


def gateway(upstream: RawHandler, **settings: object) -> InProcessGateway:
    return InProcessGateway(
        lambda url: [api_event("open", url)], [key_event(KEY)], settings, raw_upstream=upstream
    )


def completed(gw: InProcessGateway, within: float = 0.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + within
    while True:
        found = [data for kind, data in gw.publisher.events if kind == COMPLETED]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def cut_short(end: str) -> RawHandler:
    """Announces 100 bytes, sends 3, then goes silent ("stall") or closes ("close";
    `InProcessGateway` closes every raw connection when its handler returns)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
        await writer.drain()
        if end == "stall":
            await reader.read()  # until the gateway gives up on this connection

    return handler


@pytest.mark.parametrize(("end", "status"), [("stall", 504), ("close", 502)])
def test_an_answer_cut_short_before_it_was_relayed_is_a_problem_and_recorded(
    end: str, status: int
) -> None:
    # Before: aiohttp's bare 500 (or an empty 504) with no request id, and no event.
    gw = gateway(cut_short(end), upstream_read_timeout_ms=300)
    try:
        reply = gw.request("GET", "/open/x", {"X-API-Key": KEY})
        assert reply.status == status
        assert reply.headers["content-type"] == "application/problem+json"
        assert orjson.loads(reply.body)["request_id"] == reply.headers["x-request-id"]
        assert [event["status"] for event in completed(gw)] == [status]
    finally:
        gw.close()


async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await writer.drain()


def test_an_http_1_0_client_gets_an_answer_of_unknown_length_whole() -> None:
    # Before: HTTP/1.0 clients (ab, nginx's default proxy_pass) got a 500, and the
    # upstream's answer was dropped unrecorded: aiohttp refuses chunks for HTTP/1.0.
    gw = gateway(chunked)
    try:
        answer = gw.raw(f"GET /open/x HTTP/1.0\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n".encode())
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ")[1] == b"200", head
        assert b"transfer-encoding" not in head.lower()
        assert body == b"abcde"  # ended by the close
        assert gw.request("GET", "/open/x", {"X-API-Key": KEY}).body == b"abcde"  # HTTP/1.1
        assert [event["status"] for event in completed(gw)] == [200, 200]
    finally:
        gw.close()


async def reads_everything(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    while await reader.read(65536):
        pass


@pytest.mark.parametrize(("declared", "sent"), [(1_000_000, 300_000), (1_000, 10)])
def test_a_client_that_leaves_mid_upload_is_recorded_once_and_charged_nothing(
    declared: int, sent: int
) -> None:
    # Before: the client's reset escaped the gate (aiohttp logged a 500), with no event.
    gw = gateway(reads_everything, max_body_bytes=10_000_000)
    try:
        head = (
            f"POST /open/x HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        gw.raw(head.encode() + b"x" * sent, abort_after_s=0.3)
        events = completed(gw, within=3)
        assert [(event["status"], event["cost"]) for event in events] == [(499, 0)]
        assert events[0]["request_bytes"] <= sent
    finally:
        gw.close()


async def sleeps_for_its_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request after as many milliseconds as its last path segment says."""
    while head := await reader.readuntil(b"\r\n\r\n"):
        target = head.split(b" ", 2)[1].decode()
        await asyncio.sleep(int(target.rsplit("/", 1)[1]) / 1000)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()


def test_each_request_gets_its_own_upstream_deadline_among_many() -> None:
    # The deadlines of one API share a timer: each must still fire at its own time,
    # only for a request still waiting, and never for one that already ended.
    gw = InProcessGateway(
        lambda url: [api_event("open", url, timeout_ms=400)],
        [key_event(KEY)],
        raw_upstream=sleeps_for_its_path,
    )

    def call(delay_s: float, path: str) -> tuple[str, int, float]:
        time.sleep(delay_s)
        started = time.monotonic()
        reply = gw.request("GET", path, {"X-API-Key": KEY})
        return path, reply.status, time.monotonic() - started

    plan = [(0.0, "/open/a/1500"), (0.0, "/open/b/0"), (0.2, "/open/c/1500"), (0.25, "/open/d/50")]
    plan += [(0.05 * i, f"/open/e{i}/10") for i in range(10)]
    try:
        with ThreadPoolExecutor(len(plan)) as pool:
            results = list(pool.map(lambda step: call(*step), plan))
    finally:
        gw.close()
    for path, status, took in results:
        if path.endswith("/1500"):
            assert status == 504, path
            assert 0.35 < took < 1.2, (path, took)  # its own 400 ms, not the first one's
        else:
            assert status == 200, (path, status)
