"""The upstream HTTP/1.1 client against raw loopback servers that answer byte for byte."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tollgate.gateway.proxy.upstream_http import Origin, UpstreamError, UpstreamTimeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A loopback server: every connection runs `handler`; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        return head


@asynccontextmanager
async def serving(make: Callable[[Server], Handler]) -> AsyncIterator[tuple[Server, Origin]]:
    server = Server(lambda r, w: asyncio.sleep(0))
    server.handler = make(server)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    origin = Origin(
        "http",
        "127.0.0.1",
        server.port,
        "127.0.0.1",
        max_connections=4,
        connect_timeout=2,
        read_timeout=0.5,
    )
    try:
        yield server, origin
    finally:
        origin.close()
        listener.close()


def keep_alive(answer: bytes) -> Callable[[Server], Handler]:
    """Answers every request on a connection with `answer` (reading a declared body)."""

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                head = await server.read_head(reader)
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                writer.write(answer)
                await writer.drain()

        return handler

    return make


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello"


def one_answer_per_connection(
    answers: list[bytes], linger_s: float = 0
) -> Callable[[Server], Handler]:
    """The n-th connection gets `answers[n]` to its first request, then (after
    `linger_s`, holding the connection open) is closed."""

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_head(reader)
            writer.write(answers[server.connections - 1])
            await writer.drain()
            await asyncio.sleep(linger_s)

        return handler

    return make


async def test_connections_are_kept_alive_and_headers_sent_as_given() -> None:
    async with serving(keep_alive(OK)) as (server, origin):
        for _ in range(3):
            response = await origin.request("GET", "/a/b?x=1", [("X-Thing", "v")])
            assert response.status == 200
            assert response.headers.get("content-type") == "text/plain"
            assert await response.read_all() == b"hello"
        assert server.connections == 1
        head = server.heads[0].decode()
        assert head.startswith("GET /a/b?x=1 HTTP/1.1\r\n")
        assert f"host: 127.0.0.1:{server.port}\r\n" in head
        assert "X-Thing: v\r\n" in head


async def test_a_body_goes_with_its_length_and_a_stream_chunked() -> None:
    received: list[bytes] = []

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                head = await server.read_head(reader)
                if b"content-length: 3" in head:
                    received.append(await reader.readexactly(3))
                else:
                    assert b"transfer-encoding: chunked" in head
                    received.append(await reader.readuntil(b"0\r\n\r\n"))
                writer.write(OK)
                await writer.drain()

        return handler

    async def chunks() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cde"

    async with serving(make) as (_server, origin):
        await (await origin.request("POST", "/", [], body=b"xyz")).read_all()
        await (await origin.request("POST", "/", [], stream=chunks())).read_all()
    assert received == [b"xyz", b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"]


async def test_chunked_and_until_close_bodies_stream_in_pieces() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
    ]

    async with serving(one_answer_per_connection(answers)) as (_server, origin):
        response = await origin.request("GET", "/", [])
        pieces = []
        while (piece := await response.read_chunk()) is not None:
            pieces.append(piece)
        assert b"".join(pieces) == b"abcde"
        response = await origin.request("GET", "/", [])
        assert await response.read_all() == b"until the end"


async def test_head_answers_end_with_their_head_and_interim_answers_are_skipped() -> None:
    answers = {
        b"HEAD": b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
        b"GET": b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
    }

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                head = await server.read_head(reader)
                writer.write(answers[head.split(b" ")[0]])
                await writer.drain()

        return handler

    async with serving(make) as (server, origin):
        response = await origin.request("HEAD", "/", [])
        assert (response.status, response.headers.get("content-length")) == (200, "1000")
        assert await response.read_all() == b""
        response = await origin.request("GET", "/", [])
        assert (response.status, await response.read_all()) == (200, b"hello")
        assert server.connections == 2  # a HEAD's connection is not reused


async def test_an_idle_connection_the_upstream_closed_is_replaced_for_idempotent_requests() -> None:
    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_head(reader)
            writer.write(OK)  # says keep-alive, then closes once the next request comes
            await writer.drain()
            await reader.read(1)

        return handler

    async with serving(make) as (server, origin):
        await (await origin.request("GET", "/", [])).read_all()
        response = await origin.request("GET", "/", [])
        assert await response.read_all() == b"hello"
        assert server.connections == 2
        with pytest.raises(UpstreamError):  # a POST is never sent twice
            await origin.request("POST", "/", [], body=b"x")


async def test_line_breaks_in_a_header_are_refused_before_anything_is_sent() -> None:
    async with serving(keep_alive(OK)) as (server, origin):
        for value in ("a\r\nX-Evil: 1", "a\nb", "a\rb"):
            with pytest.raises(UpstreamError):
                await origin.request("GET", "/", [("X-Thing", value)])
        assert server.connections == 0


async def test_a_silent_body_times_out_and_a_bad_answer_is_an_error() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",  # then silence
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
    ]

    async with serving(one_answer_per_connection(answers, linger_s=5)) as (_server, origin):
        response = await origin.request("GET", "/", [])
        assert await response.read_chunk() == b"abc"
        with pytest.raises(UpstreamTimeout):
            await response.read_chunk()
        with pytest.raises(UpstreamError):
            await (await origin.request("GET", "/", [])).read_all()


async def test_an_answer_before_the_whole_upload_never_lets_the_rest_reach_another_request() -> (
    None
):
    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_head(reader)
                writer.write(b"HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()

        return handler

    answered = asyncio.Event()

    async def upload() -> AsyncIterator[bytes]:
        yield b"GET /smuggled HTTP/1.1\r\n"
        await answered.wait()
        yield b"host: x\r\n\r\n"

    async with serving(make) as (server, origin):
        sending = asyncio.create_task(origin.request("POST", "/", [], stream=upload(), length=1000))
        await asyncio.sleep(0.1)  # the head is read and answered: the upload is mid-way
        assert len(server.heads) == 1
        answered.set()
        response = await sending
        assert response.status == 413
        await response.read_all()
        await (await origin.request("GET", "/next", [])).read_all()
        assert server.connections == 2
        assert not any(b"/smuggled" in head for head in server.heads)


async def test_trailers_and_stray_answers_never_reach_the_next_request() -> None:
    """A chunked answer's trailer fields are dropped (not the next answer's headers);
    bytes after a complete answer close the connection instead of answering later."""
    answers = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\nset-cookie: session=A\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb"
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstray",
        OK,
    ]

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_head(reader)
                writer.write(answers[len(server.heads) - 1])
                await writer.drain()

        return handler

    async with serving(make) as (server, origin):
        first = await origin.request("GET", "/1", [])
        assert await first.read_all() == b"a"
        second = await origin.request("GET", "/2", [])
        assert "set-cookie" not in second.headers
        assert await second.read_all() == b"b"
        third = await origin.request("GET", "/3", [])
        assert await third.read_all() == b"hello"
        assert server.connections == 2  # the stray bytes ended the first one


async def test_a_chunked_upload_answered_early_still_ends_before_the_next_request() -> None:
    carried: list[bytes] = []

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")  # head at once
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.write(b"hello")
            await writer.drain()
            while data := await reader.read(65536):
                carried.append(data)

        return handler

    async def upload() -> AsyncIterator[bytes]:
        yield b"ab"
        await asyncio.sleep(0.1)  # the answer's head arrives; then the body ends

    async with serving(make) as (_server, origin):
        response = await origin.request("POST", "/upload", [], stream=upload())
        assert await response.read_all() == b"hello"
        follow = asyncio.create_task(origin.request("GET", "/next", []))
        await asyncio.sleep(0.2)
        follow.cancel()
    sent = b"".join(carried)
    assert sent.startswith(b"2\r\nab\r\n0\r\n\r\n")  # the body ended, then the next head


async def test_an_answer_to_an_upload_the_upstream_stopped_reading_is_relayed() -> None:
    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_head(reader)
            writer.write(b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 3\r\n\r\nbig")
            await writer.drain()
            await asyncio.sleep(2)  # never reads the body

        return handler

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(400):
            yield b"x" * 65536

    async with serving(make) as (_server, origin):
        response = await asyncio.wait_for(
            origin.request("PUT", "/big", [], stream=upload(), length=400 * 65536), 3
        )
        assert (response.status, await response.read_all()) == (413, b"big")


async def test_at_most_max_connections_are_opened() -> None:
    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_head(reader)
                await asyncio.sleep(0.02)
                writer.write(OK)
                await writer.drain()

        return handler

    async with serving(make) as (server, origin):

        async def one() -> bytes:
            return await (await origin.request("GET", "/", [])).read_all()

        assert await asyncio.gather(*(one() for _ in range(20))) == [b"hello"] * 20
        assert server.connections == 4


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for `localhost` (and its key), signed by itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_upstreams_are_verified_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Server(lambda r, w: asyncio.sleep(0))
    server.handler = keep_alive(OK)(server)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=context)
    port = listener.sockets[0].getsockname()[1]

    def origin(host: str) -> Origin:
        return Origin(
            "https", host, port, "127.0.0.1", max_connections=1, connect_timeout=2, read_timeout=2
        )

    try:
        with pytest.raises(UpstreamError):  # not signed by a trusted authority
            await origin("localhost").request("GET", "/", [])
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now it is trusted
        response = await origin("localhost").request("GET", "/", [])
        assert (response.status, await response.read_all()) == (200, b"hello")
        assert f"host: localhost:{port}\r\n".encode() in server.heads[-1]
        with pytest.raises(UpstreamError):  # trusted, but for another name
            await origin("other.test").request("GET", "/", [])
    finally:
        listener.close()


async def test_a_closed_pool_closes_every_idle_connection() -> None:
    async with serving(keep_alive(OK)) as (_server, origin):

        async def one() -> bytes:
            return await (await origin.request("GET", "/", [])).read_all()

        await asyncio.gather(*(one() for _ in range(4)))
        idle = list(origin._idle)
        assert len(idle) == 4
        origin.close()
        assert all(connection.closed for connection in idle)
        assert origin._idle == []


def trickled(answer: bytes, piece: int) -> Callable[[Server], Handler]:
    """Answers the first request with `answer`, `piece` bytes a write, each drained."""

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_head(reader)
            for start in range(0, len(answer), piece):
                writer.write(answer[start : start + piece])
                await writer.drain()
                await asyncio.sleep(0)
            await asyncio.sleep(1)

        return handler

    return make


async def read_whole(origin: Origin) -> bytes:
    return await (await origin.request("GET", "/", [])).read_all()


@pytest.mark.parametrize(
    ("answer", "piece"),
    [
        # One field of 2 MB: whole reads of it, one after another.
        (b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 2_000_000 + b"\r\ncontent-length: 0\r\n\r\n", 8192),
        (
            b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 2_000_000 + b"\r\ncontent-length: 0\r\n\r\n",
            10**7,
        ),
        # 20,000 short fields, far fewer bytes than the head limit per read.
        (b"HTTP/1.1 200 OK\r\n" + b"x-a: b\r\n" * 20_000 + b"content-length: 0\r\n\r\n", 10**7),
        # A trailer section that never ends.
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\nx-t: "
            + b"t" * 2_000_000,
            8192,
        ),
    ],
    ids=["one-huge-field-trickled", "one-huge-field-at-once", "many-fields", "endless-trailer"],
)
async def test_an_answer_head_past_the_limits_ends_the_exchange(answer: bytes, piece: int) -> None:
    # Before the limits the gateway kept every byte (2 MB fields, 20,000 pairs) and
    # handed the head on, or waited on a trailer forever while its memory grew.
    async with serving(trickled(answer, piece)) as (_server, origin):
        with pytest.raises(UpstreamError, match=r"too large|too many|not valid"):
            await read_whole(origin)


async def test_many_small_chunks_in_one_read_are_not_a_large_head() -> None:
    # 30,000 one-byte chunks arrive in a few reads, each mostly framing (5 bytes of
    # framing per byte of body): every chunk is a boundary, so nothing is refused.
    chunks = b"1\r\nx\r\n" * 30_000
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    async with serving(one_answer_per_connection([answer])) as (_server, origin):
        assert await read_whole(origin) == b"x" * 30_000


async def test_tiny_chunks_are_held_as_one_piece_per_read() -> None:
    # An upstream's one-byte chunks, read by a client that reads slowly: one bytes object
    # per chunk (~40 bytes each) let 256 K of them in under the back-pressure mark.
    chunks = b"1\r\nx\r\n" * 100_000
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    async with serving(one_answer_per_connection([answer], linger_s=1)) as (_server, origin):
        response = await origin.request("GET", "/", [])
        await asyncio.sleep(0.3)  # the client is slow: all of it arrives first
        pieces = []
        while (piece := await response.read_chunk()) is not None:
            pieces.append(piece)
        assert b"".join(pieces) == b"x" * 100_000
        assert len(pieces) < 100  # about one per read, not one per chunk


def answer_then_reset(answer: bytes) -> Callable[[Server], Handler]:
    """Answers the first request with `answer`, then resets the connection (TCP RST)."""

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_head(reader)
            writer.write(answer)
            await writer.drain()
            await asyncio.sleep(0.1)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

        return handler

    return make


@pytest.mark.parametrize(
    "make",
    [
        # A body framed by the connection's end, cut by a reset: not its end.
        answer_then_reset(b"HTTP/1.1 200 OK\r\n\r\npartial-"),
        # Chunked by the last of two fields (llhttp's reading), cut by a close after one
        # chunk.
        one_answer_per_connection(
            [
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked"
                b"\r\n\r\n5\r\nhello\r\n"
            ]
        ),
    ],
    ids=["until-close-reset", "chunked-in-the-second-field"],
)
async def test_a_body_cut_short_is_an_error_not_a_complete_answer(
    make: Callable[[Server], Handler],
) -> None:
    # Before: both were read as complete bodies ("partial-", "hello").
    async with serving(make) as (_server, origin):
        with pytest.raises(UpstreamError, match="mid-body"):
            await read_whole(origin)


async def test_a_body_framed_by_a_clean_close_is_complete() -> None:
    answer = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    async with serving(one_answer_per_connection([answer])) as (_server, origin):
        assert await read_whole(origin) == b"all of it"
