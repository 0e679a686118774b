"""The gateway's own HTTP/1.1 server (`listener`), driven with raw bytes over sockets:
framing and keep-alive as clients rely on them, the answer a client gets when its
body was not read, the deadlines, the per-IP cap and the drain at shutdown."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest

from tollgate.gateway.listener import (
    ConnectionGuard,
    Listener,
    Request,
    Response,
    StreamResponse,
)
from tollgate.gateway.proxy.headers import TrustedProxies

Handler = Callable[[Request], Awaitable[Response]]


async def echo(request: Request) -> Response:
    body = await request.content.readany() if request.body_exists else b""
    return Response(body=request.raw_path.encode() + b"|" + body, headers=[("X-T", "1")])


async def start(
    handler: Handler = echo,
    *,
    per_ip: int = 0,
    head_timeout_s: float = 5.0,
    keepalive_s: float = 5.0,
    send_timeout_s: float = 5.0,
) -> Listener:
    guard = ConnectionGuard(per_ip, head_timeout_s, TrustedProxies(""))
    listener = Listener(
        handler,
        guard,
        max_head_bytes=65_536,
        keepalive_s=keepalive_s,
        send_timeout_s=send_timeout_s,
    )
    await listener.start("127.0.0.1", 0)
    return listener


_WRITERS: list[asyncio.StreamWriter] = []


@pytest.fixture
async def served() -> AsyncIterator[list[Listener]]:
    listeners: list[Listener] = []
    yield listeners
    for listener in listeners:
        await listener.close(0.5)
    for writer in _WRITERS:
        writer.close()
    _WRITERS.clear()


async def connect(listener: Listener) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    _WRITERS.append(writer)
    return reader, writer


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One answer: status, fields (lowercase names; a repeated one keeps the last), body
    by Content-Length or chunks (else until the connection closes)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields[name.lower()] = value.strip()
    if "content-length" in fields:
        body = await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readexactly(2)
    else:
        body = await asyncio.wait_for(reader.read(), 5)
    return status, fields, body


async def closed(reader: asyncio.StreamReader, within_s: float = 5.0) -> bool:
    """Whether the server closed the connection (EOF, not a reset) within the time."""
    try:
        return await asyncio.wait_for(reader.read(), within_s) == b""
    except (TimeoutError, ConnectionResetError):
        return False


async def echo_slow_first(request: Request) -> Response:
    """`echo`, 0.1 s late for `/1`: the requests after it are parsed before it ends."""
    if request.raw_path == "/1":
        await asyncio.sleep(0.1)
    return await echo(request)


async def test_pipelined_requests_are_answered_in_order_on_one_connection(
    served: list[Listener],
) -> None:
    served.append(listener := await start(echo_slow_first))
    reader, writer = await connect(listener)
    writer.write(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    answers = [await read_answer(reader) for _ in range(3)]
    assert [body for _, _, body in answers] == [b"/1|", b"/2|abc", b"/3|"]
    assert all(fields["x-t"] == "1" and fields["server"] == "tollgate" for _, fields, _ in answers)
    assert all(fields["date"].endswith(" GMT") for _, fields, _ in answers)
    writer.close()


async def test_an_answer_before_the_body_is_read_is_delivered_then_the_connection_closes(
    served: list[Listener],
) -> None:
    async def refuse(request: Request) -> Response:
        return Response(body=b"no", status=401)

    served.append(listener := await start(refuse))
    reader, writer = await connect(listener)
    # A large upload still arriving when the answer goes out: the next bytes must never
    # be read as a request, and the client must read the answer, not a reset.
    writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    writer.write(b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 200_000)
    status, fields, body = await read_answer(reader)
    assert (status, body, fields["connection"]) == (401, b"no", "close")
    assert await closed(reader)
    writer.close()


async def test_http_1_0_keeps_alive_only_when_asked(served: list[Listener]) -> None:
    served.append(listener := await start())
    reader, writer = await connect(listener)
    writer.write(b"GET /a HTTP/1.0\r\n\r\n")
    status, fields, body = await read_answer(reader)
    assert (status, body, fields["connection"]) == (200, b"/a|", "close")
    assert await closed(reader)

    reader, writer = await connect(listener)
    for path in (b"/b", b"/c"):
        writer.write(b"GET " + path + b" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, fields, body = await read_answer(reader)
        assert (status, body, fields["connection"]) == (200, path + b"|", "keep-alive")
    writer.close()


async def test_a_streamed_answer_is_chunked_for_1_1_and_ended_by_close_for_1_0(
    served: list[Listener],
) -> None:
    async def stream(request: Request) -> Response:
        response = StreamResponse(status=200, headers=[("Content-Type", "text/plain")])
        await response.prepare(request)
        for piece in (b"one ", b"two ", b"three"):
            await response.write(piece)
        await response.write_eof()
        return response

    served.append(listener := await start(stream))
    reader, writer = await connect(listener)
    for _ in range(2):  # and the connection serves the next request
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, fields, body = await read_answer(reader)
        assert (status, body, fields["transfer-encoding"]) == (200, b"one two three", "chunked")
    writer.close()

    reader, writer = await connect(listener)
    writer.write(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, fields, body = await read_answer(reader)
    assert "transfer-encoding" not in fields
    assert (status, body, fields["connection"]) == (200, b"one two three", "close")


async def test_framing_is_the_servers_and_a_line_break_in_a_field_is_never_sent(
    served: list[Listener],
) -> None:
    async def handler(request: Request) -> Response:
        if request.raw_path == "/inject":
            return Response(body=b"x", headers={"X-Note": "a\r\nSet-Cookie: stolen=1"})
        fields = [
            ("Content-Length", "999"),
            ("Transfer-Encoding", "chunked"),
            ("X-A", "b"),
            ("Server", "upstream/1.0"),
        ]
        return Response(body=b"ok", headers=fields)

    served.append(listener := await start(handler))
    reader, writer = await connect(listener)
    writer.write(b"GET /framing HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, body = await read_answer(reader)
    assert (status, body, fields["content-length"], fields["x-a"]) == (200, b"ok", "2", "b")
    assert "transfer-encoding" not in fields
    assert fields["server"] == "upstream/1.0"  # the handler's own, once (last one kept)
    writer.write(b"GET /inject HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), 5)  # a 500, then the connection closes
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"stolen" not in raw
    assert orjson.loads(raw.split(b"\r\n\r\n", 1)[1])["status"] == 500


async def test_a_head_answer_carries_the_length_a_get_would_and_no_body(
    served: list[Listener],
) -> None:
    async def handler(request: Request) -> Response:
        return Response(status=200, headers=[("Content-Length", "1234")])

    served.append(listener := await start(handler))
    reader, writer = await connect(listener)
    writer.write(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"Content-Length: 1234\r\n" in head
    status, fields, body = await read_answer(reader)  # the GET: the next bytes
    assert (status, fields["content-length"], body) == (200, "0", b"")
    writer.close()


async def test_slow_heads_and_idle_connections_are_closed(served: list[Listener]) -> None:
    served.append(listener := await start(head_timeout_s=0.3, keepalive_s=0.3))
    # A head that never completes (the first, and one after an answer).
    reader, writer = await connect(listener)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    assert await closed(reader)
    assert 0.2 < time.monotonic() - started < 2
    reader, writer = await connect(listener)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nX-Slow: ")
    assert (await read_answer(reader))[0] == 200
    assert await closed(reader, 2)
    # An idle kept-alive connection.
    reader, writer = await connect(listener)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_answer(reader))[0] == 200
    started = time.monotonic()
    assert await closed(reader)
    assert 0.2 < time.monotonic() - started < 2
    assert not listener.connections


async def test_connections_over_the_per_ip_cap_are_closed_and_freed_ones_count_again(
    served: list[Listener],
) -> None:
    served.append(listener := await start(per_ip=2))
    first = await connect(listener)
    second = await connect(listener)
    third_reader, _ = await connect(listener)
    assert await closed(third_reader, 2)
    first[1].close()
    await asyncio.sleep(0.1)
    reader, writer = await connect(listener)
    writer.write(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_answer(reader))[2] == b"/again|"
    second[1].write(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_answer(second[0]))[2] == b"/second|"


async def test_a_large_body_arrives_whole_through_flow_control(served: list[Listener]) -> None:
    async def slow_reader(request: Request) -> Response:
        total, digest = 0, 0
        while chunk := await request.content.read(65_536):
            total += len(chunk)
            digest = (digest * 31 + sum(chunk[::4096])) % 1_000_003
            await asyncio.sleep(0)  # a slow consumer: the buffer fills, reading pauses
        return Response(body=f"{total}:{digest}".encode())

    served.append(listener := await start(slow_reader))
    payload = bytes(range(256)) * 20_000  # 5 MB
    expected = 0
    for start_at in range(0, len(payload), 65_536):
        chunk = payload[start_at : start_at + 65_536]
        expected = (expected * 31 + sum(chunk[::4096])) % 1_000_003
    reader, writer = await connect(listener)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload))
    writer.write(payload)
    await writer.drain()
    status, _fields, body = await read_answer(reader)
    # Chunks may be cut differently, so only the length is compared exactly.
    assert status == 200
    assert body.split(b":")[0] == str(len(payload)).encode()


async def test_a_client_leaving_mid_body_fails_the_handlers_read(served: list[Listener]) -> None:
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def reader_handler(request: Request) -> Response:
        try:
            while await request.content.read(65_536):
                pass
        except ConnectionError:
            outcome.set_result("client gone")
            raise
        outcome.set_result("read to the end")
        return Response()

    served.append(listener := await start(reader_handler))
    _, writer = await connect(listener)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    assert await asyncio.wait_for(outcome, 5) == "client gone"
    await asyncio.sleep(0.1)
    assert not listener.connections


async def test_closing_lets_answers_in_flight_finish_then_cuts_the_rest(
    served: list[Listener],
) -> None:
    async def sleepy(request: Request) -> Response:
        await asyncio.sleep(float(request.raw_path[1:]))
        return Response(body=b"done")

    served.append(listener := await start(sleepy))
    port = listener.port
    idle_reader, idle_writer = await connect(listener)
    idle_writer.write(b"GET /0 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_answer(idle_reader))[2] == b"done"
    busy_reader, busy_writer = await connect(listener)
    busy_writer.write(b"GET /0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
    stuck_reader, stuck_writer = await connect(listener)
    stuck_writer.write(b"GET /30 HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.05)
    started = time.monotonic()
    closing = asyncio.create_task(listener.close(1.0))
    assert await closed(idle_reader, 0.2)  # idle: closed at once
    status, fields, body = await read_answer(busy_reader)
    assert (status, body, fields["connection"]) == (200, b"done", "close")
    await closing
    assert 0.9 < time.monotonic() - started < 3  # the stuck one got the grace, then cut
    assert await asyncio.wait_for(stuck_reader.read(), 1) == b""
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


# ---------------------------------------------------------------------- hostile input


async def body_length(request: Request) -> Response:
    total = 0
    while chunk := await request.content.read(65_536):
        total += len(chunk)
    return Response(body=str(total).encode())


async def test_endless_trailers_are_cut_off_not_held(served: list[Listener]) -> None:
    served.append(listener := await start(body_length))
    reader, writer = await connect(listener)
    writer.write(
        b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    )
    # Trailer fields that never end: the parser holds them until they do.
    for _ in range(40):
        writer.write(b"X-Trailer: " + b"a" * 8_000 + b"\r\n")
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 5)  # cut, not waiting for more
    except ConnectionResetError:  # (cut while the client was still sending)
        answer = b""
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:100]
    await asyncio.sleep(0.1)
    assert not listener.connections


async def test_trailers_within_bounds_are_read_and_dropped(served: list[Listener]) -> None:
    served.append(listener := await start(body_length))
    reader, writer = await connect(listener)
    writer.write(
        b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1\r\na\r\n" * 5_000
        + b"0\r\nX-Checksum: 1\r\n\r\n"
    )
    assert (await read_answer(reader))[2] == b"5000"


async def test_a_client_that_reads_nothing_is_cut_off(served: list[Listener]) -> None:
    async def big(request: Request) -> Response:
        return Response(body=b"x" * 20_000_000)

    served.append(listener := await start(big, keepalive_s=30, send_timeout_s=0.5))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", listener.port))
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.2)
        assert listener.connections  # answering (the answer waits in the buffer)
        for _ in range(30):
            if not listener.connections:
                break
            await asyncio.sleep(0.1)
        assert not listener.connections  # the slot and the buffered answer are freed
        assert listener.guard.open_connections == 0
    finally:
        sock.close()


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 5\r\n\r\nhello",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        b"CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET /x HTTP/2.0\r\nHost: x\r\n\r\n",
    ],
    ids=["unknown-coding", "upgrade-with-body", "connect", "connect-path", "1.0-chunked", "2.0"],
)
async def test_requests_that_cannot_be_served_as_sent_never_reach_the_handler(
    served: list[Listener], head: bytes
) -> None:
    handled: list[str] = []

    async def handler(request: Request) -> Response:
        handled.append(request.method)
        return await echo(request)

    served.append(listener := await start(handler))
    reader, writer = await connect(listener)
    writer.write(head)
    status, fields, _ = await read_answer(reader)
    assert 400 <= status < 600, status
    assert fields["content-type"] == "application/problem+json"
    assert fields["connection"] == "close"
    assert await closed(reader)
    assert handled == []


async def test_an_upgrade_request_without_a_body_is_answered_plainly(
    served: list[Listener],
) -> None:
    served.append(listener := await start())
    reader, writer = await connect(listener)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    status, fields, body = await read_answer(reader)
    assert (status, body, fields["connection"]) == (200, b"/ws|", "close")


async def test_requests_before_unparsable_bytes_are_all_answered(served: list[Listener]) -> None:
    served.append(listener := await start(echo_slow_first))
    reader, writer = await connect(listener)
    writer.write(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n"
    )
    first, second = await read_answer(reader), await read_answer(reader)
    assert (first[2], second[2], second[1]["connection"]) == (b"/1|", b"/2|", "close")
    assert await closed(reader)


async def test_a_trickling_pipelined_head_does_not_cut_the_answer_in_flight(
    served: list[Listener],
) -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.6)
        return Response(body=b"done")

    served.append(listener := await start(slow, head_timeout_s=0.3))
    reader, writer = await connect(listener)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HT")
    status, fields, body = await read_answer(reader)
    assert (status, body, fields["connection"]) == (200, b"done", "close")
    assert await closed(reader)


async def test_a_stream_never_goes_past_its_announced_length(served: list[Listener]) -> None:
    async def overlong(request: Request) -> Response:
        response = StreamResponse()
        response.content_length = 5
        await response.prepare(request)
        await response.write(b"HELLOHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nevil!\n")
        await response.write_eof()
        return response

    served.append(listener := await start(overlong))
    reader, writer = await connect(listener)
    writer.write(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _fields, body = await read_answer(reader)
    assert (status, body) == (200, b"HELLO")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed: nothing forged follows


async def test_a_handler_failing_on_its_own_connections_answers_500(
    served: list[Listener],
) -> None:
    async def broken(request: Request) -> Response:
        raise ConnectionRefusedError("a dependency is down")

    served.append(listener := await start(broken))
    reader, writer = await connect(listener)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_answer(reader))[0] == 500


async def test_a_refusal_reaches_a_client_still_sending(served: list[Listener]) -> None:
    served.append(listener := await start())
    reader, writer = await connect(listener)
    # More head than one read holds: closing with these bytes unread would reset the
    # connection and lose the 431.
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"v" * 300_000 + b"\r\n\r\n")
    status, fields, _ = await read_answer(reader)
    assert (status, fields["connection"]) == (431, "close")


async def test_a_finished_stream_writes_nothing_more(served: list[Listener]) -> None:
    async def twice(request: Request) -> Response:
        response = StreamResponse()
        await response.prepare(request)
        await response.write(b"one")
        await response.write_eof()
        await response.write(b"INJECTED")
        await response.write_eof()
        return response

    served.append(listener := await start(twice))
    reader, writer = await connect(listener)
    for _ in range(2):  # the next answer on the connection is read cleanly
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _fields, body = await read_answer(reader)
        assert (status, body) == (200, b"one")
