"""The running accounts process at its edge: the client address it throttles and
audits is the TCP peer (the HTTP server must not believe `X-Forwarded-For` on its own:
only accounts' `trusted_proxies` decides), and odd bytes from unauthenticated callers
get a 4xx answer, never a 500."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tollgate.kit.sealing import new_sealing_key

from .services import ServiceProcess, service_process

pytestmark = pytest.mark.system(timed=False)


def _accounts(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
    admin_password: str,
    **extra: str,
) -> ServiceProcess:
    return service_process(
        "accounts",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_factory("accounts"),
        extra={
            "SIGNING_KEY_FILE": str(tmp_path / "signing-keys.pem"),
            "SIGNING_KEY_GENERATE": "true",
            "SEALING_KEYS": new_sealing_key(),
            "BCRYPT_ROUNDS": "4",
            "ADMIN_EMAIL": "root@example.com",
            "ADMIN_PASSWORD": admin_password,
            "LOG_LEVEL": "WARNING",
            **extra,
        },
    )


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


async def test_a_spoofed_forwarded_for_neither_escapes_the_ip_limit_nor_reaches_the_audit(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    password = "admin-" + secrets.token_urlsafe(12)
    accounts = _accounts(
        tmp_path,
        kafka_bootstrap,
        topic_prefix,
        database_factory,
        password,
        LOGIN_MAX_FAILURES_PER_IP="3",
    )
    accounts.start()
    try:
        async with httpx.AsyncClient(base_url=accounts.url, timeout=10) as http:
            token = await http.post(
                "/v1/auth/token", data={"username": "root@example.com", "password": password}
            )
            assert token.status_code == 200
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            statuses = []
            for i in range(5):
                attempt = await http.post(
                    "/v1/auth/token",
                    data={"username": f"nobody-{i}@example.com", "password": "wrong-password"},
                    headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
                )
                statuses.append(attempt.status_code)
            assert statuses == [401, 401, 401, 429, 429]
            audit = await http.get(
                "/v1/audit", params={"action": "auth.login_failed"}, headers=auth
            )
            assert {e["ip"] for e in audit.json()["items"]} == {"127.0.0.1"}
    finally:
        accounts.stop()


async def test_odd_bytes_from_unauthenticated_callers_get_4xx_not_500(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    password = "admin-" + secrets.token_urlsafe(12)
    accounts = _accounts(tmp_path, kafka_bootstrap, topic_prefix, database_factory, password)
    accounts.start()
    host = f"127.0.0.1:{accounts.port}".encode()

    def get(target: bytes, *headers: bytes) -> bytes:
        lines = [b"GET " + target + b" HTTP/1.1", b"Host: " + host, *headers]
        return b"\r\n".join([*lines, b"Connection: close", b"", b""])

    def post(target: bytes, content_type: bytes, body: bytes, *headers: bytes) -> bytes:
        lines = [
            b"POST " + target + b" HTTP/1.1",
            b"Host: " + host,
            b"Content-Type: " + content_type,
            b"Content-Length: " + str(len(body)).encode(),
            *headers,
        ]
        return b"\r\n".join([*lines, b"Connection: close", b"", body])

    form = b"application/x-www-form-urlencoded"
    json = b"application/json"
    sign_in = b"username=a%40example.com&password=wrong-password"
    requests = {
        "non-ascii bearer": get(b"/v1/auth/me", b"Authorization: Bearer \xff\xfe\xe9.\xc3\xa9.x"),
        "non-ascii scheme": get(b"/v1/auth/me", b"Authorization: B\xe9arer x"),
        "non-ascii request id": get(b"/v1/auth/me", b"X-Request-ID: " + b"\xe9" * 12),
        "non-ascii forwarded for": post(
            b"/v1/auth/token", form, sign_in, b"X-Forwarded-For: \xe9\xff, 1.2.3.4"
        ),
        "latin-1 form": post(b"/v1/auth/token", form, b"username=\xe9\xe9&password=\xff\xfe"),
        "invalid utf-8 percent-encoded": post(
            b"/v1/auth/token", form, b"username=%e9%ff&password=%ff%fe%fd"
        ),
        "nul in form": post(b"/v1/auth/token", form, b"username=a%00b&password=%00"),
        "nul in path": get(b"/v1/users/%00"),
        "nul in query": get(b"/v1/users?email_prefix=%00"),
        "json as text": post(b"/v1/auth/register", b"text/plain", b"{}"),
        "odd charset": post(b"/v1/auth/register", b"application/json; charset=utf-7", b"{}"),
        "no content type": post(b"/v1/auth/register", b"", b'{"email": 1}'),
        "invalid utf-8 json": post(b"/v1/auth/password-reset", json, b'{"email":"\xff"}'),
        "huge number": post(b"/v1/auth/refresh", json, b'{"refresh_token":' + b"9" * 5000 + b"}"),
        "huge exponent": post(b"/v1/auth/refresh", json, b'{"refresh_token": 1e999999}'),
        "nested json": post(b"/v1/auth/register", json, b"[" * 100_000 + b"]" * 100_000),
        "nested json object": post(
            b"/v1/auth/register", json, b'{"a":' * 50_000 + b"1" + b"}" * 50_000
        ),
        "multipart without boundary": post(b"/v1/auth/token", b"multipart/form-data", b"xxxx"),
        "multipart garbage": post(
            b"/v1/auth/token", b"multipart/form-data; boundary=zz", b"--zz\r\n\xff\r\n--zz--"
        ),
        "huge page size": get(b"/v1/users?limit=99999999999999999999999"),
        "huge cursor": get(b"/v1/users?cursor=" + b"A" * 5000),
    }
    try:
        answers = {
            name: await asyncio.to_thread(_raw_request, accounts.port, raw)
            for name, raw in requests.items()
        }
        server_errors = {
            name: answer[:300]
            for name, answer in answers.items()
            if not 400 <= _status(answer) < 500
        }
        assert server_errors == {}
    finally:
        accounts.stop()
    assert "Traceback" not in accounts.logs()
