"""The upstream HTTP/1.1 client: keep-alive connections on the gateway's own event loop.

Chosen by measurement (`bench/gateway/choose_stack.py`, "aiohttp-server+tollgate-client"):
the pyreqwest client it replaces ran hyper on a Tokio thread of its own, and every
request crossed threads twice (a `write()` to wake that thread, a loop wake-up for
the answer); on the gateway's one core that hand-off cost more than the HTTP work.
Here the request head is one string written to a uvloop transport and the answer is
parsed by llhttp (`httptools`) as it arrives: about half the CPU per proxied request.

One `Origin` per upstream address (scheme, host, port, the checked address to connect
to): a pool of at most `upstream_connections` connections, the most recently used
reused first, idle ones closed after `IDLE_S`. The request target and headers are
sent as given (the gate has normalised the path and chosen the headers), with `host`
the upstream's.
Bodies: bytes (with `content-length`), or an async iterator of chunks (with the
declared length, or chunked). A connection that closed while idle fails its next
request before any answer: an idempotent request (RFC 9110 §9.2.2) whose body can be
replayed is then sent once more, on a new connection.

The answer's head is awaited without a timer (the gate bounds it with the API's
timeout); each wait for more of the body is bounded by `upstream_read_timeout_ms`.
A body streams with back-pressure: reading from the upstream pauses while more than
`_HIGH_WATER` bytes wait for the client. Errors are `UpstreamError` (502) and
`UpstreamTimeout` (504). Environment proxies (`HTTPS_PROXY`) are not used: the
gateway connects to the address the network policy checked, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools

IDLE_S = 60.0  # an idle pooled connection is closed after this
_HIGH_WATER = 256 * 1024  # body bytes buffered before reading from the upstream pauses
# An answer's head (or a chunk's framing, or its trailer section) that is still not
# done after this many bytes ends the exchange, as does a head with more fields: llhttp
# sets no limit, and httptools joins a long field's pieces into one (time quadratic).
_MAX_FRAMING = 64 * 1024
_MAX_FIELDS = 256
# Sent again after a reused connection closed with no answer (RFC 9110 §9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class UpstreamError(Exception):
    """The upstream could not be reached, or broke the exchange."""


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The upstream did not connect, or went silent, in time."""


class _Stale(UpstreamError):
    """A reused connection was closed before any answer (safe to send again)."""


class UpstreamHeaders:
    """The answer's header fields: names lowercase, in order, repeats kept."""

    __slots__ = ("_first", "_pairs")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._first = first = dict(reversed(pairs))  # a repeated field: its first value
        if "connection" in first:
            # Every hop-by-hop name any `Connection` field lists (RFC 9110 §7.6.1).
            first["connection"] = ", ".join(v for n, v in pairs if n == "connection")

    def items(self) -> list[tuple[str, str]]:
        return self._pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._first


class UpstreamResponse:
    """An answer: status and headers at once, the body as it arrives."""

    __slots__ = (
        "_chunks",
        "_connection",
        "_done",
        "_error",
        "_loop",
        "_read_timeout",
        "_size",
        "_waiter",
        "headers",
        "status",
    )

    def __init__(
        self, status: int, headers: UpstreamHeaders, connection: _Connection, read_timeout: float
    ) -> None:
        self.status = status
        self.headers = headers
        self._connection: _Connection | None = connection
        self._loop = connection.loop
        self._read_timeout = read_timeout
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # ---------------------------------------------------------------- from the protocol

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER and self._connection is not None:
            self._connection.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if not self._done:
            self._done = True
            self._error = error
            self._connection = None  # back in the pool, or closed: no longer ours
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---------------------------------------------------------------- for the gate

    async def read_chunk(self) -> bytes | None:
        """The next piece of the body; None at its end."""
        while not self._chunks:
            if self._done:
                if self._error is not None:
                    raise self._error
                return None
            await self._wait()
        data = self._chunks.popleft()
        self._size -= len(data)
        if self._connection is not None and self._size <= _HIGH_WATER:
            self._connection.resume()
        return data

    async def read_all(self) -> bytes:
        """The whole body."""
        while not self._done:
            if self._connection is not None:
                self._connection.resume()  # all of it is wanted: never paused
            await self._wait()
        if self._error is not None:
            raise self._error
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        return data

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(self._read_timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def close(self) -> None:
        """Done with the answer: a connection still carrying its body is closed."""
        connection = self._connection
        if connection is not None and not self._done:
            self._connection = None
            self._done = True
            connection.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("the upstream went silent"))


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an origin; one exchange at a time."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.loop = origin.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.checked_out = False
        self.sending = False  # a streamed request body is still being sent
        self.idle_since = 0.0
        self.head_only = False  # answering HEAD: no body follows the head
        self.reusable = True
        self._outstanding = False  # a request was sent and its answer is not complete
        self._in_head = False  # between the start of an answer and the end of its head
        self._pairs: list[tuple[str, str]] = []
        self._interim = False
        self._started = False  # any byte of the answer received
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self._moved = False  # a head, chunk or answer began or ended in this read
        self._body_read = 0  # body bytes in this read
        self._framing = 0  # bytes that were neither body nor a boundary, reads in a row
        # The body's pieces in this read, handed over as one: a chunked answer of one-byte
        # chunks would otherwise hold a bytes object (~40 bytes) per byte, all below the
        # back-pressure mark (256 K of them, ~11 MB, per connection).
        self._pieces: list[bytes] = []

    # ---------------------------------------------------------------- transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._started = True
        self._moved = False
        self._body_read = 0
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, UpstreamError) as exc:
            # Not HTTP/1.1, an upgrade (never asked for: `Upgrade` is hop-by-hop), or an
            # answer nobody asked for (`on_message_begin`): the connection is done.
            self._pieces.clear()
            self._broken(UpstreamError(f"the upstream's answer is not valid: {exc!r}"))
            return
        if self._pieces:
            self._hand_over()
        if self._moved:
            self._framing = 0  # what this read held of a head is at most one read
        else:
            # A whole read inside one head, chunk line or trailer section.
            self._framing += len(data) - self._body_read
            if self._framing > _MAX_FRAMING:
                self._broken(UpstreamError("the upstream's answer head is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.origin.forget(self)
        self.origin.release(self)
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(UpstreamError("the upstream closed the connection"))
        head = self._head
        if head is not None and not head.done():
            error = _Stale if not self._started else UpstreamError
            head.set_exception(error("the upstream closed the connection without an answer"))
        response = self._response
        if response is not None and not response._done:
            if exc is None and _until_close(response):
                response._finish()  # a body framed by the end of the connection
            else:  # cut short (a reset is no end of a body framed by the close either)
                response._finish(UpstreamError("the upstream closed the connection mid-body"))

    def pause_writing(self) -> None:
        self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # ---------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        if not self._outstanding:
            raise UpstreamError("an answer to no request")  # stray bytes: never parsed
        self._moved = True
        self._in_head = True
        self._pairs = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:  # not a chunked body's trailer fields: those are dropped
            if len(self._pairs) >= _MAX_FIELDS:
                raise UpstreamError("the upstream's answer has too many header fields")
            self._pairs.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._moved = True
        self._in_head = False
        status = self.parser.get_status_code()
        pairs, self._pairs = self._pairs, []
        if status < 200:
            self._interim = True  # 100 Continue and friends: the answer follows
            return
        response = self._response = UpstreamResponse(
            status, UpstreamHeaders(pairs), self, self.origin.read_timeout
        )
        head = self._head
        if head is not None and not head.done():
            head.set_result(response)
        if self.head_only:
            # llhttp cannot be told the request was HEAD: the answer ends with its head,
            # and the connection (whose parser would wait for a body) is not reused.
            self.reusable = False
            self._outstanding = False
            response._finish()
            self._release()

    def on_body(self, data: bytes) -> None:
        self._body_read += len(data)
        if self._response is not None and not self.head_only:
            self._pieces.append(data)

    def _hand_over(self) -> None:
        """The body's pieces of this read, as one, to the answer they belong to."""
        pieces = self._pieces
        response = self._response
        if response is not None:
            response._feed(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        pieces.clear()

    def on_chunk_header(self) -> None:
        self._moved = True

    def on_chunk_complete(self) -> None:
        self._moved = True

    def on_message_complete(self) -> None:
        self._moved = True
        if self._interim:
            self._interim = False
            return
        if self.head_only:
            return
        self._outstanding = False
        if not self.parser.should_keep_alive():
            self.reusable = False
        if self._pieces:
            self._hand_over()
        response = self._response
        if response is not None:
            response._finish()
        self._release()

    # ---------------------------------------------------------------- exchange

    async def exchange(
        self,
        method: str,
        head: bytes,
        body: bytes | None,
        stream: AsyncIterator[bytes] | None,
        chunked: bool,
        length: int | None,
    ) -> UpstreamResponse:
        assert self.transport is not None
        self.head_only = method == "HEAD"
        self._started = False
        self._response = None
        self._outstanding = True
        head_future: asyncio.Future[UpstreamResponse] = self.loop.create_future()
        self._head = head_future
        try:
            if stream is None:
                self.transport.write(head + body if body else head)
            else:
                self.transport.write(head)
                self.sending = True
                try:
                    await self._send_stream(stream, chunked, length, head_future)
                except UpstreamError:
                    if not _answered(head_future):
                        raise
                    # Answered, then the upstream closed while the body was still going
                    # out (a 413, say): the answer is what the client gets.
                finally:
                    self.sending = False
            return await head_future
        except BaseException:
            if self.checked_out and self._head is head_future:  # ours, not yet released
                self.abort()
            raise
        finally:
            if self._head is head_future:
                self._head = None

    async def _send_stream(
        self,
        stream: AsyncIterator[bytes],
        chunked: bool,
        length: int | None,
        answered: asyncio.Future[UpstreamResponse],
    ) -> None:
        """Send the body; a body not sent whole leaves the connection unusable."""
        assert self.transport is not None
        sent = 0
        async for chunk in stream:
            if answered.done() or self.closed:
                # Answered (or gone) before the body was sent: the rest is not wanted,
                # and this connection cannot carry another request.
                self.reusable = False
                return
            sent += len(chunk)
            if chunked:
                if chunk:
                    self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            elif length is not None and sent > length:
                raise UpstreamError("the request body is longer than its declared length")
            else:
                self.transport.write(chunk)
            drain = self._drain
            if drain is not None:
                if not answered.done():
                    await asyncio.wait((drain, answered), return_when=asyncio.FIRST_COMPLETED)
                if answered.done():  # answered while the upstream was not reading
                    if drain.done():
                        drain.exception()  # retrieved: the answer is what matters
                    self.reusable = False
                    return
                await drain  # raises when the connection was lost meanwhile
        if chunked:
            if not self.closed:
                self.transport.write(b"0\r\n\r\n")
        elif length is not None and sent != length:
            self.reusable = False  # shorter than declared: the upstream still waits

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        """Close now: out of the pool at once, never handed out again."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.origin.forget(self)
            self.transport.abort()

    def _broken(self, error: UpstreamError) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        if self._response is not None:
            self._response._finish(error)
        self.abort()

    def _release(self) -> None:
        self._response = None
        if self.sending:
            # Answered before its body was all sent: what is left of the body must never
            # be read by the upstream as the start of another request.
            self.reusable = False
        self.origin.release(self)


def _until_close(response: UpstreamResponse) -> bool:
    """True when the body has no length and is not chunked last: it ends with the
    connection (RFC 9112 §6.3)."""
    headers = response.headers
    if "transfer-encoding" not in headers:
        return "content-length" not in headers
    # The last coding of all the fields together frames the body, as llhttp reads it.
    codings = ",".join(v for n, v in headers.items() if n == "transfer-encoding")
    return not codings.rstrip().lower().endswith("chunked")


def _answered(head: asyncio.Future[UpstreamResponse]) -> bool:
    return head.done() and not head.cancelled() and head.exception() is None


class Origin:
    """Pooled connections to one upstream address, and how requests are framed for it."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        address: str,
        *,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.read_timeout = read_timeout
        self._address = address
        self._port = port
        self._server_hostname = host if scheme == "https" else None
        self._ssl = ssl.create_default_context() if scheme == "https" else None
        default = 443 if scheme == "https" else 80
        bracketed = f"[{host}]" if ":" in host else host
        self._host = bracketed if port == default else f"{bracketed}:{port}"
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._busy = 0
        self._closed = False  # replaced (its address moved) or shut down
        self._waiters: deque[asyncio.Future[None]] = deque()

    def head(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        length: int | None,
        chunked: bool,
        lines_made: str = "",
    ) -> bytes:
        """The request line and header block, validated (no CR or LF inside a field);
        `lines_made`: header lines the gateway rendered itself, put in as they are."""
        lines = [f"{method} {target} HTTP/1.1", f"host: {self._host}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if length is not None:
            lines.append(f"content-length: {length}")
        elif chunked:
            lines.append("transfer-encoding: chunked")
        text = "\r\n".join(lines)
        if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
            raise UpstreamError("a header field holds a line break")
        if lines_made:
            text = f"{text}\r\n{lines_made}"
        return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        *,
        body: bytes | None = None,
        stream: AsyncIterator[bytes] | None = None,
        length: int | None = None,
        lines_made: str = "",
    ) -> UpstreamResponse:
        """Send one request and return its answer once the head has arrived. `body`:
        the whole body (sent with its length); `stream`: its chunks (`length` declared,
        or chunked); neither: no body. `lines_made`: as for `head`."""
        chunked = stream is not None and length is None
        head = self.head(
            method, target, headers, len(body) if body is not None else length, chunked, lines_made
        )
        for attempt in (1, 2):
            connection, reused = await self._acquire()
            try:
                return await connection.exchange(method, head, body, stream, chunked, length)
            except _Stale:
                if attempt == 1 and reused and stream is None and method in _IDEMPOTENT:
                    continue  # it closed while idle: once more, on a new connection
                raise UpstreamError("the upstream closed the connection") from None
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- the pool

    async def _acquire(self) -> tuple[_Connection, bool]:
        while True:
            while self._idle:  # a closed connection has left it (`abort`, `forget`)
                connection = self._idle.pop()
                if self.loop.time() - connection.idle_since > IDLE_S:
                    connection.abort()
                    continue
                self._busy += 1
                connection.checked_out = True
                return connection, True
            if self._busy < self._max:
                self._busy += 1
                try:
                    connection = await self._connect()
                except BaseException:
                    self._busy -= 1
                    self._wake_one()
                    raise
                connection.checked_out = True
                return connection, False
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken as it was cancelled: pass the turn on
                raise

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                _transport, connection = await self.loop.create_connection(
                    lambda: _Connection(self),
                    self._address,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
        except TimeoutError:
            raise UpstreamTimeout("connecting to the upstream timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect to the upstream: {type(exc).__name__}") from None
        return connection

    def release(self, connection: _Connection) -> None:
        """An exchange is over (answered, or the connection closed): the connection is
        idle again, or closed, and its slot free."""
        if not connection.checked_out:
            return
        connection.checked_out = False
        self._busy -= 1
        now = self.loop.time()
        if connection.reusable and not connection.closed and not self._closed:
            connection.resume()
            connection.idle_since = now
            self._idle.append(connection)
        else:
            connection.abort()
        # The least recently used come first: those idle too long are closed.
        while self._idle and now - self._idle[0].idle_since > IDLE_S:
            self._idle.pop(0).abort()
        self._wake_one()

    def forget(self, connection: _Connection) -> None:
        """The connection closed: an idle one leaves the pool."""
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Take no more requests: idle connections close now, busy ones when done."""
        self._closed = True
        idle, self._idle = self._idle, []  # `abort` takes each out of the list it is in
        for connection in idle:
            connection.abort()
