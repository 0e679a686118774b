"""The gateway process: state follower, limiter, publisher and the HTTP front.

The HTTP server is the gateway's own (`listener`: llhttp parsing on uvloop, no router,
no middleware: the gate does its own dispatch); upstream calls go through keep-alive
pools on the same loop (`proxy.upstream_http`: llhttp parsing, no thread hand-off).
Both were chosen by measurement (bench/gateway/README.md).
Operational endpoints live under `/_tollgate/`:
`healthz` (alive), `readyz` (state replayed up to the high watermark and not
shutting down) and `metrics` (Prometheus), served on their own listener
(`ops_host`:`ops_port`); the public listener serves only what `public_ops` exposes
(default: the two probes, never metrics unless `all`). Both listeners are guarded
against slow clients (`listener`).

Start-up: tracing configured when `otlp_endpoint` is set, topics ensured, producer
started (spool replay begins), state replay started; the port opens at once but
readiness waits for the replay. Shutdown (SIGTERM/SIGINT): readiness turns 503, the
listener closes, in-flight requests get `shutdown_grace_s` to finish, then queued
events are produced (or spooled), the consumer and clients close and the last spans
are exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from tollgate.contracts import topics
from tollgate.gateway.config import Settings
from tollgate.gateway.events.publisher import EventPublisher
from tollgate.gateway.limits.limiter import RateLimiter
from tollgate.gateway.listener import ConnectionGuard, Handler, Listener, Request, Response
from tollgate.gateway.proxy.gate import Gate
from tollgate.gateway.proxy.headers import TrustedProxies
from tollgate.gateway.proxy.tracing import RequestSpans
from tollgate.gateway.proxy.upstreams import UpstreamClients
from tollgate.gateway.registry.replay import state_follower
from tollgate.gateway.registry.store import Registry
from tollgate.kit.kafka import ensure_topics
from tollgate.kit.metrics import exposition
from tollgate.kit.problems import PROBLEM_CONTENT_TYPE, problem_body
from tollgate.kit.sealing import Sealer
from tollgate.kit.telemetry import configure_tracing, shutdown_tracing

log = logging.getLogger(__name__)

TOPICS = (
    topics.ACCOUNTS_KEYS,
    topics.ACCOUNTS_APIS,
    topics.BILLING_BALANCES,
    topics.BILLING_PLANS,
    topics.GATEWAY_REQUESTS,
)
OPS_PREFIX = "/_tollgate/"
_PROBES = frozenset({"healthz", "readyz"})
_SWEEP_INTERVAL_S = 30.0
_JSON = {"Content-Type": "application/json"}


class Gateway:
    """One gateway replica: everything it runs, started and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        sealer = Sealer(settings.sealing_keys) if settings.sealing_keys.strip() else None
        self.registry = Registry(sealer, refuse_unknown_orgs=settings.refuse_unknown_orgs)
        self.follower = state_follower(settings, self.registry)
        self.limiter = RateLimiter(settings)
        self.publisher = EventPublisher(settings)
        self.upstreams = UpstreamClients(settings)
        self.gate: Gate | None = None
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        spans = None
        if self.settings.otlp_endpoint:
            configure_tracing("gateway", self.settings.otlp_endpoint)
            spans = RequestSpans(ratio=self.settings.trace_sample_ratio)
        if self.settings.kafka_create_topics:
            await ensure_topics(self.settings, TOPICS)
        await self.publisher.start()
        self.gate = Gate(
            self.settings, self.registry, self.limiter, self.publisher, self.upstreams, spans
        )
        self._tasks.append(asyncio.create_task(self.follower.run(), name="gateway-state"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="gateway-sweep"))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL_S)
            try:
                self.limiter.sweep()
            except Exception:  # a sweep that fails must not stop the next ones
                log.exception("limit counters sweep failed")

    @property
    def ready(self) -> bool:
        return self.follower.caught_up and not self.draining

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.publisher.close()
        await self.limiter.close()
        await self.upstreams.close()
        if self.settings.otlp_endpoint:
            # Last: the spans of the drained requests are exported. Blocking is fine here
            # (nothing else runs any more); a collector that is away costs the exporter's
            # retries, at most its timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s).
            shutdown_tracing()

    async def handle(self, request: Request) -> Response:
        """Every request on the public listener: the gate, or the operational endpoints
        `public_ops` exposes there (matched on the decoded path, so `%5F` spellings are
        the same endpoint)."""
        if request.path.startswith(OPS_PREFIX):
            exposed = self.settings.public_ops
            name = request.path[len(OPS_PREFIX) :]
            if exposed == "all" or (exposed == "probes" and name in _PROBES):
                return self._ops(request)
            return _not_found()
        if self.gate is None or not self.follower.caught_up:
            body = problem_body(503, "Service Unavailable", "The gateway is starting.")
            return Response(
                body=body,
                status=503,
                headers={"Content-Type": PROBLEM_CONTENT_TYPE, "Retry-After": "1"},
            )
        return await self.gate.handle(request)

    async def handle_ops(self, request: Request) -> Response:
        """Every request on the operational listener."""
        if request.path.startswith(OPS_PREFIX):
            return self._ops(request)
        return _not_found()

    def _ops(self, request: Request) -> Response:
        name = request.path[len(OPS_PREFIX) :]
        if name == "healthz":
            return Response(body=b'{"status":"ok"}', headers=_JSON)
        if name == "readyz":
            if self.ready:
                return Response(body=b'{"status":"ready"}', headers=_JSON)
            detail = "draining" if self.draining else "state not replayed yet"
            return Response(
                body=problem_body(503, "Service Unavailable", "Not ready: " + detail),
                status=503,
                headers={"Content-Type": PROBLEM_CONTENT_TYPE},
            )
        if name == "metrics":
            body, content_type = exposition()
            return Response(body=body, headers={"Content-Type": content_type})
        return _not_found()


def _not_found() -> Response:
    return Response(
        body=problem_body(404, "Not Found"),
        status=404,
        headers={"Content-Type": PROBLEM_CONTENT_TYPE},
    )


def http_server(handler: Handler, settings: Settings, per_ip: int) -> Listener:
    """An HTTP/1.1 listener of the gateway (public or operational), not yet listening."""
    guard = ConnectionGuard(
        per_ip, settings.client_header_timeout_s, TrustedProxies(settings.trusted_proxies)
    )
    return Listener(
        handler,
        guard,
        max_head_bytes=settings.max_head_bytes,
        keepalive_s=settings.client_keepalive_timeout_s,
        send_timeout_s=settings.client_send_timeout_s,
    )


async def _start_ops(gateway: Gateway, settings: Settings) -> Listener | None:
    """The operational listener, or None (`ops_port` 0, or the port is taken: logged,
    the gateway serves on without it, as traffic matters more than its metrics)."""
    if not settings.ops_port:
        return None
    host = settings.ops_host or settings.host
    listener = http_server(gateway.handle_ops, settings, 0)
    try:
        # A supervisor's next generation binds it while this one drains.
        await listener.start(host, settings.ops_port, reuse_port=settings.worker_slot is not None)
    except OSError as exc:
        log.error(
            "cannot open the operational listener; serving without it",
            extra={"host": host, "port": settings.ops_port, "error": str(exc)},
        )
        return None
    log.info("operational endpoints listening", extra={"host": host, "port": settings.ops_port})
    return listener


async def _notify_ready(gateway: Gateway, fd: int) -> None:
    """Tell the supervisor (one byte on its pipe) once the state is replayed."""
    try:
        await gateway.follower.caught_up_event.wait()
        os.write(fd, b"r")
    finally:
        os.close(fd)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run one gateway until SIGTERM/SIGINT (or `stop`), then shut down gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(settings)
    await gateway.start()
    listener = http_server(gateway.handle, settings, settings.max_connections_per_ip)
    if settings.worker_slot is not None:
        # A worker shares the port: it joins only once its state is replayed, so the
        # kernel never hands a connection to a worker that would answer 503 while
        # its siblings (or the generation it replaces, on reload) could serve it.
        replayed = asyncio.ensure_future(gateway.follower.caught_up_event.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({replayed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        replayed.cancel()
        stopping.cancel()
    if not stop.is_set():
        # Workers of one supervisor share the port; the kernel spreads connections.
        await listener.start(
            settings.host, settings.port, reuse_port=settings.worker_slot is not None
        )
        log.info("gateway listening", extra={"host": settings.host, "port": settings.port})
    ops_listener = await _start_ops(gateway, settings)
    notify = None
    if settings.worker_ready_fd is not None:
        notify = asyncio.create_task(_notify_ready(gateway, settings.worker_ready_fd))
    try:
        await stop.wait()
    finally:
        if notify is not None:
            notify.cancel()
        log.info("gateway shutting down: draining in-flight requests")
        gateway.draining = True
        await listener.close(settings.shutdown_grace_s)
        if ops_listener is not None:
            await ops_listener.close(1.0)
        await gateway.stop()
        log.info("gateway stopped")
