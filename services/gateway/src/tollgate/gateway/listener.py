"""The gateway's HTTP listeners: connection guards and the answers to unparsable input.

aiohttp's low-level server, with its connection protocol (`RequestHandler`) extended
so that clients cannot pin the gateway or read back what they sent:

- a connection must deliver a complete request head within `client_header_timeout_s`
  of being accepted, or it is closed (a half-open connection that trickles a header
  byte by byte is closed too). Between requests on a kept-alive connection aiohttp's
  own keep-alive timeout (`client_keepalive_timeout_s`) closes a connection whose next
  head does not arrive. Idle request bodies are cut by the gate
  (`client_body_idle_timeout_s`, 408);
- at most `max_connections_per_ip` connections are open per client address (peers in
  `trusted_proxies` are exempt: one load balancer carries many clients); beyond it a
  new connection is closed at once, before anything is read;
- a request aiohttp cannot parse is answered with a fixed problem+json per status,
  never with aiohttp's message (which quotes the raw request line or header, and so
  could reflect a key), and logged by exception class only;
- no response names the framework: aiohttp's default `Server: Python/x aiohttp/y` is
  replaced by `Server: tollgate` for every response of this process.

This module relies on two attributes of aiohttp's protocol that are not public API
(`_request_count`, incremented for each parsed head, and the `web.Server` fields
`_loop`/`_kwargs`); aiohttp is pinned in constraints.txt and the listener tests
cover them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web, web_response
from aiohttp.web_protocol import RequestHandler
from prometheus_client import Counter

from tollgate.gateway.proxy.headers import TrustedProxies
from tollgate.kit.problems import PROBLEM_CONTENT_TYPE, problem_body

log = logging.getLogger(__name__)

# Every response of the process; set before any response is prepared.
web_response.SERVER_SOFTWARE = "tollgate"  # type: ignore[attr-defined]

REFUSED = Counter(
    "tollgate_gateway_connections_refused_total",
    "Connections closed at once: the client address had max_connections_per_ip open",
)
SLOW_HEADS = Counter(
    "tollgate_gateway_slow_heads_total",
    "Connections closed because no complete request head came in client_header_timeout_s",
)

_PARSE_ERRORS = {
    400: "The request could not be parsed.",
    413: "The request head is too large.",
    431: "The request head is too large.",
}

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class ConnectionGuard:
    """Counts open connections per client address and holds the head deadline."""

    def __init__(self, per_ip: int, head_timeout_s: float, trusted: TrustedProxies) -> None:
        self.per_ip = per_ip
        self.head_timeout_s = head_timeout_s
        self._trusted = trusted
        self._open: dict[str, int] = {}

    def admit(self, ip: str) -> bool:
        """Count one more connection from `ip`; False (not counted) when over the cap."""
        if self.per_ip <= 0 or self._trusted.trusts(ip):
            return True
        count = self._open.get(ip, 0)
        if count >= self.per_ip:
            return False
        self._open[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)

    @property
    def open_connections(self) -> int:
        return sum(self._open.values())


class GuardedConnection(RequestHandler):
    """aiohttp's connection protocol with the head deadline, the per-IP cap and
    problem+json parse errors."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._guard_ip: str | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else ""
        if not self._guard.admit(ip):
            # Closed before aiohttp sets anything up (no task, no timer): refusing a
            # flood must cost as little as possible.
            REFUSED.inc()
            self._refused = True
            transport.close()
            return
        super().connection_made(transport)
        self._guard_ip = ip
        self._head_timer = asyncio.get_running_loop().call_later(
            self._guard.head_timeout_s, self._head_overdue
        )

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._head_timer is not None and self._request_count:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if not self._request_count:
            SLOW_HEADS.inc()
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._guard_ip is not None:
            self._guard.release(self._guard_ip)
            self._guard_ip = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's message quotes the offending bytes: neither answered nor logged.
        log.info(
            "unparsable request",
            extra={"status": status, "error": type(exc).__name__ if exc else None},
        )
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        detail = _PARSE_ERRORS.get(status, "The request failed.")
        title = "Bad Request" if status < 500 else "Internal Server Error"
        response = web.Response(
            body=problem_body(status, title, detail),
            status=status,
            headers={"Content-Type": PROBLEM_CONTENT_TYPE},
        )
        response.force_close()
        return response


class GuardedServer(web.Server):
    """`web.Server` whose connections are `GuardedConnection`s."""

    def __init__(self, handler: Handler, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return GuardedConnection(self, guard=self.guard, loop=self._loop, **self._kwargs)
