"""`POST /v1/apis/{id}/openapi/from-url`: accounts fetches the document itself, under the
SSRF policy of upstream URLs, from a small HTTP server in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ..factories import User, make_admin, make_api, make_org, running, settings_for, signup

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"
CAP = 4096  # max_openapi_bytes of these tests


class DocumentServer:
    """An HTTP/1.1 server on 127.0.0.1 answering each path from `answers`; it records
    the paths asked for."""

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.paths: list[str] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        self.paths.append(path)
        writer.write(self.answers.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
        await writer.drain()
        writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[DocumentServer]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def ok(body: bytes, *, length: bool = True) -> bytes:
    """A 200 answer; without `length` the body ends when the connection closes."""
    sized = f"Content-Length: {len(body)}\r\n".encode() if length else b""
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\n" + sized + b"\r\n" + body


def redirect(location: str) -> bytes:
    return f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()


async def test_a_document_is_fetched_imported_and_bad_answers_are_problems(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    padding = b"x-pad: " + b"a" * CAP + b"\n"
    server = DocumentServer(
        {
            "/petstore.yaml": ok(PETSTORE.read_bytes()),
            "/moved": redirect("/petstore.yaml"),
            "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
            "/loop": redirect("/loop"),
            "/big": ok(b"openapi: 3.0.0\npaths: {}\n" + padding),
            "/big-unsized": ok(b"openapi: 3.0.0\npaths: {}\n" + padding, length=False),
            "/page": ok(b"<html>hello</html>"),
        }
    )
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        allow_private_upstreams=True,  # the server is on 127.0.0.1
        max_openapi_bytes=CAP,
    )
    async with server.running(), running(settings) as svc:
        admin = await make_admin(svc)
        member = await signup(svc)
        await make_org(svc, member)
        api = await make_api(svc, admin, name="Petstore")
        url = f"/v1/apis/{api['id']}/openapi/from-url"

        async def from_url(target: str, who: User = admin) -> tuple[int, dict[str, object]]:
            answer = await svc.http.post(url, json={"url": target}, headers=who.headers)
            return answer.status_code, answer.json()

        status, body = await from_url(server.url("/moved"))
        assert status == 200, body
        assert body["created"] == 3
        doc = await svc.http.get(f"/v1/apis/{api['id']}/openapi", headers=admin.headers)
        assert doc.json()["info"]["title"] == "Swagger Petstore"
        assert server.paths == ["/moved", "/petstore.yaml"]
        # A name: resolved, checked, and the first address that answers is used (localhost
        # may be ::1 before 127.0.0.1, where the server listens).
        status, body = await from_url(f"http://localhost:{server.port}/petstore.yaml")
        assert (status, body.get("kept")) == (200, 3), body

        for path, wanted in (
            ("/to-metadata", (422, "openapi-url-refused")),
            ("/loop", (422, "openapi-unreachable")),
            ("/nowhere", (422, "openapi-unreachable")),
            ("/big", (413, "too-large")),
            ("/big-unsized", (413, "too-large")),
            ("/page", (422, "invalid-openapi")),
        ):
            status, body = await from_url(server.url(path))
            assert (status, str(body["type"]).rsplit("/", 1)[-1]) == wanted, (path, body)

        for refused in ("ftp://127.0.0.1/doc.yaml", "http://user:pw@127.0.0.1/doc", "not a url"):
            status, body = await from_url(refused)
            assert (status, str(body["type"]).rsplit("/", 1)[-1]) == (422, "openapi-url-refused")
        status, body = await from_url("http://127.0.0.1:1/petstore.yaml")  # nothing listens
        assert (status, str(body["type"]).rsplit("/", 1)[-1]) == (422, "openapi-unreachable")

        asked = len(server.paths)
        status, _ = await from_url(server.url("/petstore.yaml"), who=member)
        assert status == 403
        missing = await svc.http.post(
            "/v1/apis/00000000-0000-4000-8000-000000000000/openapi/from-url",
            json={"url": server.url("/petstore.yaml")},
            headers=admin.headers,
        )
        assert missing.status_code == 404
        assert len(server.paths) == asked  # neither reached the server


async def test_private_addresses_are_refused_without_a_request(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    server = DocumentServer({"/petstore.yaml": ok(PETSTORE.read_bytes())})
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    assert settings.allow_private_upstreams is False
    async with server.running(), running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin)
        url = f"/v1/apis/{api['id']}/openapi/from-url"
        for target in (
            server.url("/petstore.yaml"),
            f"http://localhost:{server.port}/petstore.yaml",
            f"http://2130706433:{server.port}/petstore.yaml",  # 127.0.0.1, spelled as a number
            "http://10.0.0.1/openapi.json",
            "http://[::ffff:169.254.169.254]/openapi.json",
        ):
            answer = await svc.http.post(url, json={"url": target}, headers=admin.headers)
            assert answer.status_code == 422, (target, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"].endswith("/openapi-url-refused"), answer.text
    assert server.paths == []
