"""An in-process gate in front of a recording upstream, on a loop of its own thread.

Tests (Hypothesis ones too) drive it synchronously with raw HTTP/1.1 bytes over a
socket, so a request target reaches the gateway exactly as written, and then read
what the upstream received and which events the gate queued.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import struct
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tollgate.contracts.events.accounts import ApiStatus, ApiUpserted, KeyUpserted
from tollgate.gateway.app import http_server
from tollgate.gateway.config import Settings
from tollgate.gateway.limits.limiter import RateLimiter
from tollgate.gateway.proxy.gate import Gate
from tollgate.gateway.proxy.upstreams import UpstreamClients
from tollgate.gateway.registry.store import Registry
from tollgate.kit import apikeys
from tollgate.kit.sealing import Sealer, new_sealing_key

PEPPER = "in-process-pepper"
SEALING_KEY = new_sealing_key()


def api_event(slug: str, upstream_url: str, **fields: Any) -> ApiUpserted:
    return ApiUpserted.model_validate(
        {
            "api_id": fields.pop("api_id", uuid.uuid4()),
            "slug": slug,
            "name": slug,
            "api_version": "v1",
            "upstream_url": upstream_url,
            "status": ApiStatus.ACTIVE,
            "timeout_ms": 2000,
            "price": 1,
            "charge_failed_calls": False,
            "version": 1,
            "updated_at": datetime.now(UTC),
            **fields,
        }
    )


def key_event(raw: str, **fields: Any) -> KeyUpserted:
    return KeyUpserted.model_validate(
        {
            "key_id": fields.pop("key_id", uuid.uuid4()),
            "org_id": fields.pop("org_id", uuid.uuid4()),
            "key_hash": apikeys.hash_key(raw, PEPPER),
            "prefix": apikeys.display_prefix(raw),
            "last4": raw[-4:],
            "name": "k",
            "environment": "live",
            "enabled": True,
            "version": 1,
            "updated_at": datetime.now(UTC),
            **fields,
        }
    )


def sealed(headers: dict[str, str]) -> str:
    import orjson

    return Sealer(SEALING_KEY).seal(orjson.dumps(headers))


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class RecordingPublisher:
    """Stands in for the EventPublisher: keeps what the gate queues."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(
        self, key: str | None, event_type: str, data: dict[str, Any], traceparent: str
    ) -> None:
        self.events.append((event_type, dict(data)))


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class InProcessGateway:
    """Gate + upstream on a private loop; `apis(upstream_url)` builds the API records.
    `raw_upstream`: the upstream is that handler on a raw socket (it writes the answer
    byte for byte) instead of the recording one."""

    apis: Callable[[str], Iterable[ApiUpserted]]
    keys: Iterable[KeyUpserted]
    settings: dict[str, Any] = field(default_factory=dict)
    resolve: Any = None
    raw_upstream: RawHandler | None = None
    seen: list[Seen] = field(default_factory=list)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    port: int = 0
    upstream_url: str = ""

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        async def upstream(request: web.BaseRequest) -> web.Response:
            body = await request.read()
            self.seen.append(Seen(request.method, request.raw_path, dict(request.headers), body))
            return web.Response(body=b'{"ok":true}', content_type="application/json")

        # The body is kept as it arrived (not decoded): what the gateway sent is tested.
        self._upstream = web.ServerRunner(
            web.Server(upstream, access_log=None, auto_decompress=False)
        )
        await self._upstream.setup()
        site = web.TCPSite(self._upstream, "127.0.0.1", 0)
        await site.start()
        up_port = self._upstream.addresses[0][1]
        self._raw: asyncio.Server | None = None
        self._raw_writers: list[asyncio.StreamWriter] = []
        if self.raw_upstream is not None:
            self._raw = await asyncio.start_server(self._serve_raw, "127.0.0.1", 0)
            up_port = self._raw.sockets[0].getsockname()[1]
        self.upstream_url = f"http://127.0.0.1:{up_port}"
        settings = Settings(
            key_pepper=PEPPER,
            sealing_keys=SEALING_KEY,
            kafka_create_topics=False,
            **{"allow_private_upstreams": True, **self.settings},
        )
        registry = Registry(Sealer(SEALING_KEY))
        for api in self.apis(self.upstream_url):
            registry.apply_api(str(api.api_id), api)
        for key in self.keys:
            registry.apply_key(str(key.key_id), key)
        self.upstreams = (
            UpstreamClients(settings, self.resolve) if self.resolve else UpstreamClients(settings)
        )
        self.gate = Gate(
            settings,
            registry,
            RateLimiter(settings),
            self.publisher,  # type: ignore[arg-type]
            self.upstreams,
        )
        # The public listener's own server (its parser settings are part of what is tested).
        self._listener = http_server(self.gate.handle, settings, settings.max_connections_per_ip)
        await self._listener.start("127.0.0.1", 0)
        self.port = self._listener.port

    def request(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        """Send `target` byte for byte (latin-1) and read the answer."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall("\r\n".join(lines).encode("latin-1") + body)
            response = http.client.HTTPResponse(sock)
            response.begin()
            data = response.read()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    async def _serve_raw(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.raw_upstream is not None
        self._raw_writers.append(writer)
        try:
            await self.raw_upstream(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the gateway ended the connection: part of what is tested
        finally:
            writer.close()

    def raw(self, data: bytes, *, abort_after_s: float | None = None) -> bytes:
        """Send `data` as it is and read until the gateway closes; with `abort_after_s`,
        reset the connection that long after sending instead, reading nothing."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            if abort_after_s is not None:
                time.sleep(abort_after_s)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return b""
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            return received

    def close(self) -> None:
        async def stop() -> None:
            await self._listener.close(1.0)
            await self._upstream.cleanup()
            if self._raw is not None:
                self._raw.close()
                for writer in self._raw_writers:  # handlers still waiting on a connection
                    writer.close()
            await self.upstreams.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
