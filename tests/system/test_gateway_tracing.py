"""The gateway is a span of the client's trace, not a hole in it: with `otlp_endpoint`
set, a real gateway process exports one SERVER span per request (to a fake OTLP/HTTP
collector in this process) whose parent is the client's span and whose id is the
parent the upstream receives and the request event carries on Kafka; refusals and
upstream failures are spans too; no key, query or upstream secret is ever exported.
Without tracing, request events still carry a `traceparent` header of the client's
trace, also when they went through the spool during a broker outage."""

from __future__ import annotations

import asyncio
import gzip
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tollgate.contracts import topics
from tollgate.kit import apikeys, localdeps
from tollgate.kit.sealing import Sealer, new_sealing_key
from tollgate.kit.testing import unique_name
from tollgate.kit.testing.plugin import BrokerControl

from .gateway_support import StatePublisher, api_event, gateway, key_event, start_upstream

pytestmark = pytest.mark.system(timed=False)
UPSTREAM_SECRET = "upstream-s3cret-value"


class Collector:
    """A fake OTLP/HTTP trace collector on its own thread and loop, so it answers
    while the test blocks (starting or stopping a process)."""

    def __init__(self) -> None:
        self.port = localdeps.free_port()
        self.bodies: list[bytes] = []
        self.spans: list[Span] = []
        self.resources: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    async def _export(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            self.bodies.append(body)
            for resource_spans in export.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
                    self.resources.extend(resource for _ in scope_spans.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def exported_bytes(self) -> bytes:
        with self._lock:
            return b"".join(self.bodies)

    async def span_of(self, request_id: str, within: float = 30.0) -> Span:
        """The exported span of one request (polled: the exporter sends in batches)."""
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                for span in self.spans:
                    if attributes(span).get("tollgate.request_id") == request_id:
                        return span
            if time.monotonic() > deadline:
                raise AssertionError(f"no span exported for request {request_id}")
            await asyncio.sleep(0.1)


def attributes(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute in span.attributes:
        value = attribute.value
        out[attribute.key] = value.int_value if value.HasField("int_value") else value.string_value
    return out


def parse_traceparent(value: str) -> tuple[str, str, str]:
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", value)
    assert match is not None, value
    return match.group(1), match.group(2), match.group(3)


def client_trace() -> tuple[str, str, str]:
    """A client's trace id, span id and the `traceparent` naming them."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


async def request_records(
    bootstrap: str, prefix: str, within: float = 30.0, want: set[str] | None = None
) -> dict[str, dict[str, bytes]]:
    """Headers of the request events on the topic by event id, polled until every
    id in `want` is there (or the deadline)."""
    name = prefix + topics.GATEWAY_REQUESTS.name
    deadline = time.monotonic() + within
    found: dict[str, dict[str, bytes]] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        event_id = orjson.loads(record.value)["id"]
                        found[event_id] = dict(record.headers)
            if want is None or want <= set(found):
                break
    finally:
        await consumer.stop()
    return found


@dataclass
class Stack:
    url: str
    bootstrap: str
    prefix: str
    key: str
    ids: dict[str, str]
    collector: Collector

    async def call(self, path: str, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.get(path, headers=headers)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("gateway-tracing")
    prefix = unique_name("t", sep="") + "."
    collector = Collector()
    collector.start()
    upstream = start_upstream(workdir)
    sealing_key = new_sealing_key()
    sealed = Sealer(sealing_key).seal(orjson.dumps({"X-Upstream-Token": UPSTREAM_SECRET}))
    raw = apikeys.generate().raw
    ids = {name: uuid.uuid4() for name in ("shop", "dead", "org", "key")}
    closed_port = localdeps.free_port()

    async def publish() -> None:
        async with StatePublisher(kafka_bootstrap, prefix) as state:
            await state.publish(
                api_event("shop", upstream.url, api_id=ids["shop"], upstream_headers_sealed=sealed),
                api_event("dead", f"http://127.0.0.1:{closed_port}", api_id=ids["dead"]),
                key_event(ids["org"], raw, key_id=ids["key"]),
            )

    asyncio.run(publish())
    service = gateway(
        workdir,
        kafka_bootstrap,
        prefix,
        {"SEALING_KEYS": sealing_key, "OTLP_ENDPOINT": collector.endpoint},
    )
    # Export every 100 ms instead of every 5 s: the test waits for spans, not for a timer.
    service.env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    service.start()
    try:
        yield Stack(
            service.url,
            kafka_bootstrap,
            prefix,
            raw,
            {name: str(value) for name, value in ids.items()},
            collector,
        )
    finally:
        service.stop()
        upstream.stop()
        collector.stop()


async def test_a_proxied_request_is_one_span_between_the_client_and_the_upstream(
    stack: Stack,
) -> None:
    trace_id, client_span, traceparent = client_trace()
    response = await stack.call(
        "/shop/echo/items?color=blue",
        {"traceparent": traceparent, "tracestate": "vendor=1", "X-API-Key": stack.key},
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    forwarded = response.json()["headers"]

    span = await stack.collector.span_of(request_id)
    assert span.trace_id.hex() == trace_id
    assert span.parent_span_id.hex() == client_span
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.name == "GET shop"
    assert span.status.code != Status.STATUS_CODE_ERROR
    assert attributes(span) == {
        "http.request.method": "GET",
        "url.path": "/shop/echo/items",
        "url.scheme": "http",
        "client.address": "127.0.0.1",
        "tollgate.request_id": request_id,
        "tollgate.api_id": stack.ids["shop"],
        "tollgate.org_id": stack.ids["org"],
        "tollgate.key_id": stack.ids["key"],
        "http.response.status_code": 200,
    }
    # The upstream's spans become children of the gateway's span.
    sent_trace, sent_parent, _flags = parse_traceparent(forwarded["traceparent"])
    assert (sent_trace, sent_parent) == (trace_id, span.span_id.hex())
    assert forwarded["tracestate"] == "vendor=1"

    headers = (await request_records(stack.bootstrap, stack.prefix, want={request_id}))[request_id]
    assert headers["traceparent"].decode() == forwarded["traceparent"]
    assert headers["content-type"] == b"application/cloudevents+json"


async def test_a_refusal_is_a_span_with_its_reason(stack: Stack) -> None:
    trace_id, client_span, traceparent = client_trace()
    unknown = apikeys.generate().raw
    refused = await stack.call(
        f"/shop/hello?api_key={unknown}&color=red", {"traceparent": traceparent}
    )
    assert refused.status_code == 401
    request_id = refused.headers["x-request-id"]
    span = await stack.collector.span_of(request_id)
    assert span.trace_id.hex() == trace_id
    assert span.parent_span_id.hex() == client_span
    assert span.name == "GET shop"
    found = attributes(span)
    assert found["tollgate.rejection_reason"] == "unknown_key"
    assert found["http.response.status_code"] == 401
    assert found["tollgate.api_id"] == stack.ids["shop"]
    assert "tollgate.key_id" not in found
    assert unknown.encode() not in stack.collector.exported_bytes()

    nowhere = await stack.call("/nope/hello", {})
    assert nowhere.status_code == 404
    anonymous = await stack.collector.span_of(nowhere.headers["x-request-id"])
    assert anonymous.name == "gateway"
    assert attributes(anonymous)["tollgate.rejection_reason"] == "unknown_api"

    headers = (await request_records(stack.bootstrap, stack.prefix, want={request_id}))[request_id]
    # A refusal's event carries the gateway's own span as the parent.
    assert parse_traceparent(headers["traceparent"].decode())[:2] == (
        trace_id,
        span.span_id.hex(),
    )


async def test_an_unreachable_upstream_is_an_error_span(stack: Stack) -> None:
    failed = await stack.call("/dead/hello", {"X-API-Key": stack.key})
    assert failed.status_code == 502
    span = await stack.collector.span_of(failed.headers["x-request-id"])
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert attributes(span)["http.response.status_code"] == 502
    assert attributes(span)["error.type"] == "502"


async def test_no_key_query_or_upstream_secret_is_exported(stack: Stack) -> None:
    query_key = await stack.call(f"/shop/hello?api_key={stack.key}&token=q-s3cret", {})
    bearer = await stack.call("/shop/hello", {"Authorization": f"Bearer {stack.key}"})
    assert (query_key.status_code, bearer.status_code) == (200, 200)
    for response in (query_key, bearer):
        await stack.collector.span_of(response.headers["x-request-id"])
    exported = stack.collector.exported_bytes()
    assert stack.collector.resources[0]["service.name"] == "tollgate-gateway"
    for secret in (stack.key, "q-s3cret", "color=", "Bearer", UPSTREAM_SECRET, "api_key"):
        assert secret.encode() not in exported, secret


async def test_a_graceful_stop_exports_the_last_spans(stack: Stack, tmp_path: Path) -> None:
    service = gateway(
        tmp_path, stack.bootstrap, stack.prefix, {"OTLP_ENDPOINT": stack.collector.endpoint}
    )
    # No scheduled export during the test: only the flush at shutdown can send the span.
    service.env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
    service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            response = await client.get("/shop/hello")
        assert response.status_code == 401
        await asyncio.to_thread(service.stop)
    finally:
        service.stop()
    assert "gateway stopped" in service.logs()
    await stack.collector.span_of(response.headers["x-request-id"], within=0)


async def test_without_tracing_events_keep_the_traceparent_through_the_spool(
    tmp_path: Path, kafka_broker: BrokerControl
) -> None:
    bootstrap = kafka_broker.bootstrap
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(tmp_path)
    raw = apikeys.generate().raw
    async with StatePublisher(bootstrap, prefix) as state:
        await state.publish(api_event("api", upstream.url), key_event(uuid.uuid4(), raw))
    service = gateway(tmp_path, bootstrap, prefix, {"EVENTS_SPILL_AFTER_MS": "300"})
    service.start()
    sent: dict[str, str] = {}  # request id -> the client's trace id
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:

            async def call() -> str:
                trace_id, _span, traceparent = client_trace()
                response = await client.get(
                    "/api/hello", headers={"X-API-Key": raw, "traceparent": traceparent}
                )
                assert response.status_code == 200
                sent[response.headers["x-request-id"]] = trace_id
                return response.headers["x-request-id"]

            live = await call()
            await request_records(bootstrap, prefix, want={live})
            with kafka_broker.paused():
                await call()
                # Its batch is now on disk as doubtful (it may land when the broker
                # returns); the next events are appended to the spool and drained from it.
                await until_spooled(client, 1)
                for _ in range(4):
                    await call()
                await until_spooled(client, 5)
        records = await request_records(bootstrap, prefix, within=60, want=set(sent))
    finally:
        kafka_broker.resume()
        service.stop()
        upstream.stop()
    assert set(records) == set(sent)
    for request_id, trace_id in sent.items():
        assert parse_traceparent(records[request_id]["traceparent"].decode())[0] == trace_id


async def until_spooled(client: httpx.AsyncClient, count: int, within: float = 30.0) -> None:
    """Wait until the gateway reports `count` events written to its spool."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        metrics = (await client.get("/_tollgate/metrics")).text
        match = re.search(r"^tollgate_gateway_events_spooled_total (\S+)$", metrics, re.M)
        if match and float(match.group(1)) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} events not spooled within {within} s")
