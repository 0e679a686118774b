"""The gateway's HTTP/1.1 listeners: a server of its own, with the connection guards.

An `asyncio.Protocol` parsing with llhttp (`httptools`, as the upstream client does) and
writing answers itself. It replaced aiohttp's low-level server: 17-21 % more requests
per core in the same run (bench/gateway/README.md, "Seventh pass"). What it does:

- requests are handled one at a time per connection, in order (pipelined ones wait
  their turn, and reading pauses meanwhile), each in a task of its own running the
  handler (`Handler`) on a `Request`, started only once the data it came in parsed
  without error; the handler returns a `Response`, or a `StreamResponse` it wrote;
- a connection must deliver a complete request head within `client_header_timeout_s`
  of being accepted, and every later head within as long from its first byte, or it
  is closed (after the answer in flight, if any); a kept-alive connection idle for
  `client_keepalive_timeout_s` is closed; a client that reads none of its answer for
  `client_send_timeout_s` is cut off; idle request bodies are cut by the gate
  (`client_body_idle_timeout_s`, 408);
- at most `max_connections_per_ip` connections are open per client address (peers in
  `trusted_proxies` are exempt: one load balancer carries many clients); beyond it a
  new connection is closed at once, before anything is read;
- a head field is at most 16 KiB and the request target 16 KiB; a head is held up to
  twice `max_head_bytes` while it arrives (the gate refuses one whose fields sum past
  `max_head_bytes`, 431, with a request id); a chunked body's framing and trailers
  (dropped: the body is sent on re-chunked) at most 16 KiB plus 32 bytes a chunk;
- a request llhttp cannot parse, an HTTP version other than 1.1 and 1.0, `CONNECT`, and
  a protocol upgrade with a body are answered with a fixed problem+json per status
  (the requests complete before it are answered first), never with a message quoting
  the request (which could reflect a key), and logged by exception class only; the
  connection is closed. A plain upgrade request is answered as a plain request;
- `Server: tollgate` on every answer that has no `Server` of its own (an upstream's);
  the framing fields are the listener's, and an answer never goes past its length;
- request bodies are flow-controlled (reading pauses while 256 KiB wait unread) and
  never decoded: a proxy relays the bytes it was sent, with their `Content-Encoding`;
- an answer sent before its request body was read whole closes the connection after
  it (the body is read and dropped for up to `_LINGER_S`, so the client sees the answer
  and not a reset);
- `close(grace_s)` stops accepting, closes idle connections, lets answers in flight
  finish for up to `grace_s`, then cuts the rest (their handlers' `finally` still run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import Counter

from tollgate.gateway.proxy.headers import TrustedProxies
from tollgate.kit.problems import PROBLEM_CONTENT_TYPE, problem_body

log = logging.getLogger(__name__)

REFUSED = Counter(
    "tollgate_gateway_connections_refused_total",
    "Connections closed at once: the client address had max_connections_per_ip open",
)
SLOW_HEADS = Counter(
    "tollgate_gateway_slow_heads_total",
    "Connections closed because no complete request head came in client_header_timeout_s",
)

_PARSE_ERRORS = {
    400: ("Bad Request", "The request could not be parsed."),
    414: ("URI Too Long", "The request target is too long."),
    431: ("Request Header Fields Too Large", "The request head is too large."),
    505: ("HTTP Version Not Supported", "Only HTTP/1.1 and HTTP/1.0 are served here."),
    500: ("Internal Server Error", "The request failed."),
}
_MAX_FIELD = 16_384  # one header field (name and value), and the request target
_BODY_HIGH = 262_144  # unread request body bytes at which reading pauses
_LINGER_S = 2.0  # how long an unread request body is drained before closing
_REASONS = {status.value: status.phrase for status in HTTPStatus} | {499: "Client Closed Request"}
_NO_BODY = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_FRAMING = frozenset({"content-length", "transfer-encoding"})
_SPECIAL_LENGTHS = frozenset({4, 6, 14, 17})  # date, server, and the framing fields


class Request:
    """One request as the handler sees it. Header names and values, and the target, are
    decoded as UTF-8 with undecodable bytes kept as surrogates (`surrogateescape`), so
    they are sent on exactly as received."""

    __slots__ = (
        "_connection",
        "_response",
        "body_exists",
        "content",
        "content_length",
        "head_size",
        "headers",
        "keep_alive",
        "method",
        "raw_path",
        "remote",
        "version",
    )
    scheme = "http"

    def __init__(
        self,
        connection: _Connection,
        method: str,
        raw_path: str,
        version: str,
        fields: list[tuple[str, str]],
        head_size: int,
        keep_alive: bool,
    ) -> None:
        self._connection = connection
        self._response: StreamResponse | None = None  # once one was prepared
        self.method = method
        self.raw_path = raw_path
        self.version = version
        self.head_size = head_size  # the header fields' names and values, in bytes
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict(fields))
        self.remote: str = connection.ip
        self.keep_alive = keep_alive
        # llhttp refused a malformed, repeated or conflicting Content-Length.
        declared = self.headers.get("Content-Length")
        self.content_length = int(declared) if declared is not None else None
        self.body_exists = bool(self.content_length) or "Transfer-Encoding" in self.headers
        self.content = Body(connection, self.body_exists)

    @property
    def path(self) -> str:
        """The target's path, percent-decoded."""
        return unquote(self.raw_path.partition("?")[0])

    async def send_continue(self) -> None:
        """`100 Continue`: the client may send the body it announced with `Expect`."""
        if self.version == "1.1":
            await self._connection.write(_CONTINUE)


class Body:
    """A request body as it arrives; the handler reads it (`read`, `readany`)."""

    __slots__ = ("_chunks", "_connection", "_dropped", "_eof", "_error", "_size", "_waiter")

    def __init__(self, connection: _Connection, expected: bool) -> None:
        self._connection = connection
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = not expected
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._dropped = False  # the answer went out: what still arrives is discarded

    def feed(self, data: bytes) -> None:
        if self._dropped:
            return
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _BODY_HIGH:
            self._connection.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self._eof:
            self._error = error
            self._wake()

    def drop(self) -> None:
        self._dropped = True
        self._chunks.clear()
        self._size = 0

    def is_eof(self) -> bool:
        """Whether the whole body has arrived (it may still wait unread)."""
        return self._eof

    def read_nowait(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._taken(len(data))
        return data

    async def readany(self) -> bytes:
        """What has arrived (waiting for something); b"" at the end."""
        await self._wait()
        return self.read_nowait()

    async def read(self, limit: int) -> bytes:
        """Up to `limit` bytes (waiting for something); b"" at the end."""
        await self._wait()
        if not self._chunks:
            return b""
        data = self._chunks.popleft()
        if len(data) > limit:
            self._chunks.appendleft(data[limit:])
            data = data[:limit]
        self._taken(len(data))
        return data

    async def _wait(self) -> None:
        while not self._chunks and not self._eof:
            if self._error is not None:
                raise self._error
            self._waiter = self._connection.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _taken(self, size: int) -> None:
        self._size -= size
        if self._size <= _BODY_HIGH:
            self._connection.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


HeaderItems = Mapping[str, str] | CIMultiDict[str] | Sequence[tuple[str, str]]


class Response:
    """An answer sent whole: status, header fields, body."""

    __slots__ = ("body", "closing", "headers", "status")

    def __init__(self, *, body: bytes = b"", status: int = 200, headers: HeaderItems = ()) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.closing = False

    def force_close(self) -> None:
        """Close the connection after this answer."""
        self.closing = True


class StreamResponse(Response):
    """An answer the handler writes as it goes: `prepare`, `write`…, `write_eof`. With a
    `content_length` it is sent as is; without, chunked (to an HTTP/1.0 client: ended
    by closing the connection)."""

    __slots__ = ("_chunked", "_request", "_sent", "content_length", "finished")

    def __init__(self, *, status: int = 200, headers: HeaderItems = ()) -> None:
        super().__init__(status=status, headers=headers)
        self.content_length: int | None = None
        self._request: Request | None = None
        self._chunked = False
        self._sent = 0
        self.finished = False

    async def prepare(self, request: Request) -> None:
        self._request = request
        connection = request._connection
        bodiless = request.method == "HEAD" or self.status in _NO_BODY
        if self.content_length is None and not bodiless:
            if request.version == "1.1":
                self._chunked = True
            else:
                self.closing = True
        connection.write_nowait(connection.head(request, self))
        request._response = self
        await connection.drain()

    async def write(self, data: bytes) -> None:
        request = self._request
        assert request is not None, "prepare() first"
        if self.finished or not data or request.method == "HEAD" or self.status in _NO_BODY:
            return
        if self.content_length is not None and self._sent + len(data) > self.content_length:
            # Never past the announced end (the next bytes would read as another answer).
            data = data[: self.content_length - self._sent]
            self.closing = True
            if not data:
                return
        self._sent += len(data)
        connection = request._connection
        if self._chunked:
            connection.write_nowait(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            connection.write_nowait(data)
        await connection.drain()

    async def write_eof(self) -> None:
        request = self._request
        assert request is not None, "prepare() first"
        if self.finished:
            return
        bodiless = request.method == "HEAD" or self.status in _NO_BODY
        if self._chunked:
            await request._connection.write(b"0\r\n\r\n")
        elif not bodiless and self.content_length not in (None, self._sent):
            self.closing = True  # the client cannot tell where this answer ends
        self.finished = True


Handler = Callable[[Request], Awaitable[Response]]


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


def _failed() -> Response:
    """500, the connection closed after it: the handler failed."""
    title, detail = _PARSE_ERRORS[500]
    response = Response(
        body=problem_body(500, title, detail),
        status=500,
        headers={"Content-Type": PROBLEM_CONTENT_TYPE},
    )
    response.force_close()
    return response


class ClientGone(ConnectionResetError):
    """The client connection is closed, or its request cannot be read any further: what
    a request body's reads and an answer's writes raise."""


class _Refused(Exception):
    """Raised in a parser callback: answer `status` (a `_PARSE_ERRORS` one) and close."""

    def __init__(self, status: int) -> None:
        self.status = status


_date = ["", 0]  # the Date field's value and the second it was made in


def _http_date() -> str:
    now = int(time.time())
    if now != _date[1]:
        _date[0] = formatdate(now, usegmt=True)
        _date[1] = now
    return _date[0]  # type: ignore[return-value]


class _Connection(asyncio.Protocol):
    """One client connection: parsing, the requests' tasks in order, the answers.

    Heads are parsed as data arrives, but a request's handler starts only once the data
    it came in was parsed without error (llhttp finds some errors, such as an unknown
    `Transfer-Encoding`, just after the head), one request at a time."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.loop = listener.loop
        self.ip = ""
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._counted = False  # counted by the guard (released on close)
        self._closed = False
        # One wait at a time (a head, an idle keep-alive, a linger): what ends it and
        # when. The timer is re-armed only when it fires early, so a request on a
        # kept-alive connection costs no timer of its own.
        self._deadline = 0.0  # loop time; 0: not waiting
        self._on_deadline: Callable[[], None] = self.close
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._send_timer: asyncio.TimerHandle | None = None  # while writing is paused
        self._head_from = 0.0  # when the head being parsed began
        self._head_bytes = 0
        self._in_head = False
        self._url = b""
        self._fields: list[tuple[str, str]] = []
        self._fields_size = 0
        self._messages = 0  # heads begun on this connection
        self._fed_body = 0  # body bytes the current read delivered
        self._overhead = 0  # bytes of the current message's body that were not body
        self._chunks = 0  # chunks of the current message's body
        self._current: Request | None = None  # being parsed (its body arriving)
        self._queue: deque[Request] = deque()  # parsed, waiting for their turn
        self._active: Request | None = None  # being handled
        self._task: asyncio.Task[None] | None = None
        self._stop_parsing = False  # an upgrade, a refusal, the client's end: no more
        self._draining = False  # the answer in flight is the last one
        self._peer_done = False  # the client closed its side
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        guard = self.listener.guard
        if not guard.admit(self.ip):
            # Closed before anything is set up (no timer, no task): refusing a flood
            # must cost as little as possible.
            REFUSED.inc()
            self._closed = True
            transport.close()
            return
        self._counted = True
        self.listener.connections.add(self)
        self._wait_until(self.loop.time() + guard.head_timeout_s, self._head_overdue)

    def data_received(self, data: bytes) -> None:
        if self._closed or self._stop_parsing:
            return  # refused, upgraded or lingering: dropped
        in_body = not self._in_head and self._current is not None
        if not in_body:
            self._head_bytes += len(data)
        messages = self._messages
        self._fed_body = 0
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgraded()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._parse_failed(cause.status if isinstance(cause, _Refused) else 400, cause)
        except httptools.HttpParserError as exc:
            self._parse_failed(400, exc)
        else:
            if self._in_head:
                if self._head_bytes > 2 * self.listener.max_head + _MAX_FIELD:
                    self._parse_failed(431, None)
                elif not self._deadline:  # a head cut across reads (rare): its deadline
                    self._wait_until(
                        self._head_from + self.listener.guard.head_timeout_s,
                        self._head_overdue,
                    )
            elif in_body and self._current is not None and self._messages == messages:
                # Chunk sizes, extensions and trailers are held by the parser until they
                # are whole: bounded here, as a head is.
                self._overhead += len(data) - self._fed_body
                if self._overhead > _MAX_FIELD + 32 * self._chunks:
                    self._parse_failed(431, None)
        if self._active is None and self._queue:
            self._start(self._queue.popleft())
        if self._queue:
            self.pause_reading()  # pipelined requests wait: read no more meanwhile

    def eof_received(self) -> bool | None:
        self._peer_done = True
        self._stop_parsing = True  # the client sends nothing more: the last answers
        if self._current is not None:
            self._current.content.fail(ClientGone("the client closed its side"))
        if self._active is None:
            self.close()
        return True  # half-closed: the answers in flight may still be sent

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closed = True
        for timer in (self._timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._send_timer = None
        if self._counted:
            self._counted = False
            self.listener.guard.release(self.ip)
            self.listener.connections.discard(self)
        gone = ClientGone("the client connection was lost")
        for request in (self._active, self._current, *self._queue):
            if request is not None:
                request.content.fail(gone)
        self._queue.clear()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(gone)
        self.listener.connection_gone()

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._send_timer is None:
            # A client that stops reading is cut off (nginx's `send_timeout`).
            self._send_timer = self.loop.call_later(self.listener.send_timeout_s, self.abort)

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None and not self._closed:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._queue:
            return  # pipelined requests still wait
        if self._reading_paused and self._transport is not None and not self._closed:
            self._reading_paused = False
            self._transport.resume_reading()

    def write_nowait(self, data: bytes) -> None:
        if self._closed or self._transport is None or self._transport.is_closing():
            raise ClientGone("cannot write: the client connection is closed")
        self._transport.write(data)

    async def drain(self) -> None:
        if self._writing_paused and not self._closed:
            self._drain_waiter = self.loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    async def write(self, data: bytes) -> None:
        self.write_nowait(data)
        await self.drain()

    def close(self) -> None:
        transport = self._transport
        if not self._closed and transport is not None:
            self._closed = True
            transport.close()
            if transport.get_write_buffer_size() and self._send_timer is None:
                # What is still buffered goes out, unless the client stopped reading.
                self._send_timer = self.loop.call_later(
                    self.listener.send_timeout_s, transport.abort
                )

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    def drain_and_close(self) -> None:
        """The listener is closing: close now if idle, else after the answer in flight."""
        self._draining = True
        if self._active is None:
            self.close()

    # ------------------------------------------------------------------ timers

    def _wait_until(self, deadline: float, then: Callable[[], None]) -> None:
        self._deadline = deadline
        self._on_deadline = then
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(deadline, self._tick)
            self._timer_at = deadline

    def _tick(self) -> None:
        self._timer = None
        if not self._deadline or self._closed:
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._tick)
            self._timer_at = self._deadline
            return
        self._deadline = 0.0
        self._on_deadline()

    def _head_overdue(self) -> None:
        SLOW_HEADS.inc()
        if self._active is None:
            self.close()
        else:  # a pipelined head trickles: the answer in flight is the last
            self._stop_parsing = True
            self._draining = True

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self._in_head = True
        self._messages += 1
        self._url = b""
        self._fields = []
        self._fields_size = 0
        self._overhead = 0
        self._chunks = 0
        if self._on_deadline != self._head_overdue:
            # Each head within the deadline from its first byte (the first one's runs
            # from the accept); armed only if the head does not come whole in one read.
            self._deadline = 0.0
            self._head_from = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_FIELD:
            raise _Refused(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a trailer: not forwarded (the body is sent on re-chunked)
        size = len(name) + len(value)
        if size > _MAX_FIELD:
            raise _Refused(431)
        self._fields_size += size
        self._fields.append(
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        )

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._in_head = False
        self._head_bytes = 0
        self._deadline = 0.0
        self._on_deadline = self.close
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _Refused(505)
        request = Request(
            self,
            parser.get_method().decode("ascii"),
            self._url.decode("utf-8", "surrogateescape"),
            version,
            self._fields,
            self._fields_size,
            parser.should_keep_alive(),
        )
        if version == "1.0" and "Transfer-Encoding" in request.headers:
            raise _Refused(400)  # HTTP/1.0 has no chunks
        self._current = request
        self._queue.append(request)

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, body: bytes) -> None:
        self._fed_body += len(body)
        if self._current is not None:
            self._current.content.feed(body)

    def on_message_complete(self) -> None:
        if self._current is not None:
            self._current.content.feed_eof()
            self._current = None

    # ------------------------------------------------------------------ requests

    def _start(self, request: Request) -> None:
        self._active = request
        self._task = self.loop.create_task(self._run(request))

    async def _run(self, request: Request) -> None:
        response: Response | None = None
        try:
            response = await self.listener.handler(request)
        except asyncio.CancelledError:
            self.abort()
            raise
        except ClientGone:
            self.close()  # the client left; the handler recorded what it had to
            return
        except Exception:
            log.exception("the request handler failed")
        try:
            self._finish(request, response)
        except ClientGone:
            self.close()

    def _finish(self, request: Request, response: Response | None) -> None:
        """Send `response` (unless the handler streamed it), then go on or close."""
        if self._closed:
            return
        streamed = request._response
        if streamed is not None:
            if not streamed.finished:
                self.close()  # cut short: the client must not wait for the rest
                return
            closing = streamed.closing or not request.content.is_eof()
        else:
            if response is None or isinstance(response, StreamResponse):
                response = _failed()  # (a stream never prepared has no framing)
            response.closing = response.closing or not request.content.is_eof()
            try:
                head = self.head(request, response)
            except ValueError:
                log.warning("answer refused: a header field cannot be sent as it is")
                response = _failed()
                head = self.head(request, response)
            bodiless = request.method == "HEAD" or response.status in _NO_BODY
            self.write_nowait(head if bodiless else head + response.body)
            closing = response.closing
        if closing or self._last(request):
            self._linger(request)
            return
        self._active = None
        self._task = None
        if self._queue:
            self._start(self._queue.popleft())
            self.resume_reading()
        elif not self._in_head:  # (else the next head's deadline runs)
            self._wait_until(self.loop.time() + self.listener.keepalive_s, self.close)

    def _last(self, request: Request) -> bool:
        """Whether the answer to `request` ends the connection."""
        return not request.keep_alive or self._draining or (self._stop_parsing and not self._queue)

    def _linger(self, request: Request) -> None:
        """Close after this answer; a request body still arriving is read and dropped
        for a while first, so the client reads the answer instead of a reset."""
        if request.content.is_eof() or self._peer_done or self._transport is None:
            self.close()
            return
        request.content.drop()
        self._stop_parsing = True
        self._queue.clear()
        self.resume_reading()
        if self._transport.can_write_eof():
            self._transport.write_eof()
        self._wait_until(self.loop.time() + _LINGER_S, self.close)

    def head(self, request: Request, response: Response) -> bytes:
        """The answer's status line and header fields. A value with a line break, or a
        status that is not a final one, raises ValueError."""
        status = response.status
        if not 200 <= status <= 999:
            raise ValueError("not a final status")
        if status in _NO_BODY:
            length = None
        elif isinstance(response, StreamResponse):
            length = None if request.method == "HEAD" else response.content_length
        else:
            length = len(response.body)
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
        fields = response.headers
        items = fields if isinstance(fields, Sequence) else fields.items()
        # The framing is the listener's: a handler's Content-Length counts only for a
        # HEAD answer (what a GET would carry, once), a Transfer-Encoding never.
        # `Server` and `Date` are the listener's unless the handler has its own (an
        # upstream's).
        keep_length = request.method == "HEAD"
        server = date = True
        for name, value in items:
            if len(name) in _SPECIAL_LENGTHS:
                lower = name.lower()
                if lower in _FRAMING:
                    if not (keep_length and len(name) == 14):
                        continue
                    keep_length = False
                    length = None
                elif lower == "server":
                    server = False
                elif lower == "date":
                    date = False
            lines.append(f"{name}: {value}")
        if server:
            lines.append("Server: tollgate")
        if date:
            lines.append("Date: " + _http_date())
        if length is not None:
            lines.append(f"Content-Length: {length}")
        elif isinstance(response, StreamResponse) and response._chunked:
            lines.append("Transfer-Encoding: chunked")
        if response.closing or self._last(request):
            response.closing = True
            lines.append("Connection: close")
        elif request.version == "1.0":
            lines.append("Connection: keep-alive")
        lines.append("\r\n")
        text = "\r\n".join(lines)
        if text.count("\n") != len(lines) or text.count("\r") != len(lines):
            raise ValueError("a response field contains a line break")
        try:
            return text.encode("latin-1")  # an upstream's field bytes, as it sent them
        except UnicodeEncodeError:
            return text.encode("utf-8")  # (a lone surrogate raises: a 500)

    def _upgraded(self) -> None:
        """llhttp stops at a protocol switch (an `Upgrade` request, `CONNECT`): none is
        made here. A request that asked for one is answered as a plain request and ends
        the connection; `CONNECT`, and one with a body (which llhttp leaves unread),
        are refused."""
        self._stop_parsing = True
        request = self._queue[-1] if self._queue else None
        if request is not None and (request.method == "CONNECT" or request.body_exists):
            self._queue.pop()
            if self._current is request:
                self._current = None
            self._parse_failed(400, None)

    def _parse_failed(self, status: int, exc: BaseException | None) -> None:
        """The data cannot be read further: the requests complete before it are answered,
        then the connection ends; if none is, a fixed problem (nothing of the request in
        it) is sent first."""
        log.info(
            "unparsable request",
            extra={"status": status, "error": type(exc).__name__ if exc else None},
        )
        self._stop_parsing = True
        current = self._current
        self._current = None
        if current is not None:
            current.content.fail(ClientGone("the request could not be parsed"))
            if self._queue and self._queue[-1] is current:
                self._queue.pop()  # never started
        if self._active is not None or self._queue:
            return  # they are answered; the last answer says `Connection: close`
        title, detail = _PARSE_ERRORS[status]
        body = problem_body(status, title, detail)
        head = (
            f"HTTP/1.1 {status} {title}\r\nServer: tollgate\r\nDate: {_http_date()}\r\n"
            f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        transport = self._transport
        if transport is None or self._closed:
            return
        transport.write(head.encode("ascii") + body)
        # What the client still sends is read and dropped for a while: closing with
        # unread bytes would reset the connection and lose this answer.
        if transport.can_write_eof():
            transport.write_eof()
        self.resume_reading()
        self._wait_until(self.loop.time() + _LINGER_S, self.close)


class Listener:
    """One listening socket and its connections."""

    def __init__(
        self,
        handler: Handler,
        guard: ConnectionGuard,
        *,
        max_head_bytes: int,
        keepalive_s: float,
        send_timeout_s: float,
    ) -> None:
        self.handler = handler
        self.guard = guard
        self.max_head = max_head_bytes
        self.keepalive_s = keepalive_s
        self.send_timeout_s = send_timeout_s
        self.loop = asyncio.get_running_loop()
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._all_gone: asyncio.Event | None = None

    async def start(
        self, host: str, port: int, *, reuse_port: bool = False, backlog: int = 1024
    ) -> None:
        self._server = await self.loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port,
            backlog=backlog,
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def connection_gone(self) -> None:
        if self._all_gone is not None and not self.connections:
            self._all_gone.set()

    async def close(self, grace_s: float) -> None:
        """Stop accepting; answers in flight get `grace_s` to finish, then are cut."""
        if self._server is not None:
            self._server.close()
        self._all_gone = asyncio.Event()
        for connection in list(self.connections):
            connection.drain_and_close()
        if self.connections:
            try:
                await asyncio.wait_for(self._all_gone.wait(), grace_s)
            except TimeoutError:
                cut = [c._task for c in self.connections if c._task is not None]
                for connection in list(self.connections):
                    connection.abort()
                if cut:  # their handlers' `finally` (recording the request) run now
                    await asyncio.wait(cut, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()
