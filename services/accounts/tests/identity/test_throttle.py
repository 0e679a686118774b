"""Throttling of every route that checks a password or a one-time code, under
concurrency: a burst of guesses fired at once gets no more evaluations than the limit
(the counters are taken atomically in Postgres before the check), and the limits are
shaped so one address cannot lock an office out: per (client IP, account), per account
and a much higher per-IP ceiling. Password reset requests are counted the same way."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tollgate.accounts.config import Settings

from ..factories import Service, User, login, remember, running, settings_for, signup


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


_EDGE_S = 30  # longer than any test here takes


@pytest.fixture(autouse=True)
async def clear_of_a_window_edge() -> None:
    """The throttles count in fixed windows aligned to the epoch (the sign-in window a
    multiple of 900 s, the reset window of it too): a test that straddles a window's end
    sees its counts start again (a burst at 21:44:59.9, then a login at 21:45:00.1 that
    is let in), so each test starts clear of an edge."""
    window = _default("login_window_seconds")
    assert _default("password_reset_window_seconds") % window == 0
    left = window - time.time() % window
    if left < _EDGE_S:
        await asyncio.sleep(left + 0.5)


def _settings(accounts_db: str, kafka: str, prefix: str, tmp_path: Path, **kw: Any) -> Settings:
    return settings_for(accounts_db, kafka=kafka, prefix=prefix, workdir=tmp_path, **kw)


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


def _unique_ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def _client(svc: Service, ip: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=svc.app, client=(ip, 40000)),
        base_url="http://accounts.test",
    )


async def _sign_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/v1/auth/token", data={"username": email, "password": password})


def _statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for response in responses:
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
    return counts


@pytest.mark.parametrize("burst", [20, 100])
async def test_a_concurrent_burst_of_wrong_passwords_is_evaluated_at_most_limit_times(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, burst: int
) -> None:
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        login_max_failures_per_account=5,
        login_max_failures_per_ip_account=5,
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        user = await signup(svc, login_now=False)
        answers = await asyncio.gather(
            *(_sign_in(svc.http, user.email, f"wrong-password-{i}") for i in range(burst))
        )
        # Exactly five guesses were checked; every other one was refused unchecked.
        assert _statuses(answers) == {401: 5, 429: burst - 5}
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) > 0
        # The right password is refused too until the window passes.
        assert (await login(svc, user)).status_code == 429


async def test_one_address_guessing_one_account_does_not_lock_out_the_office(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """With the shipped limits: 50 wrong passwords for one account from the office's
    address lock that account there, not elsewhere, and not the 20 colleagues."""
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        login_max_failures_per_account=_default("login_max_failures_per_account"),
        login_max_failures_per_ip_account=_default("login_max_failures_per_ip_account"),
        login_max_failures_per_ip=_default("login_max_failures_per_ip"),
    )
    office = _unique_ip()
    async with running(settings, client_ip=office) as svc:
        victim = await signup(svc, login_now=False)
        colleagues = [await signup(svc, login_now=False) for _ in range(20)]
        guesses = await asyncio.gather(
            *(_sign_in(svc.http, victim.email, f"guess-{i:04d}-x") for i in range(50))
        )
        per_pair = _default("login_max_failures_per_ip_account")
        assert _statuses(guesses) == {401: per_pair, 429: 50 - per_pair}

        locked = await login(svc, victim)
        assert locked.status_code == 429
        problem = locked.json()
        assert problem["type"].endswith("/login-throttled")
        assert problem["limit"] == "ip_account"
        assert 0 < int(locked.headers["Retry-After"]) <= settings.login_window_seconds
        assert problem["retry_after"] == int(locked.headers["Retry-After"])

        signed_in = await asyncio.gather(*(login(svc, c) for c in colleagues))
        assert [r.status_code for r in signed_in] == [200] * 20

        async with _client(svc, _unique_ip()) as elsewhere:
            from_home = await _sign_in(elsewhere, victim.email, victim.password)
        assert from_home.status_code == 200


async def test_the_per_account_limit_holds_across_addresses(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        login_max_failures_per_account=6,
        login_max_failures_per_ip_account=3,
    )
    async with running(settings) as svc:
        user = await signup(svc, login_now=False)
        clients = [_client(svc, _unique_ip()) for _ in range(4)]
        try:
            answers = await asyncio.gather(
                *(_sign_in(c, user.email, "wrong-password") for c in clients for _ in range(3))
            )
            assert _statuses(answers) == {401: 6, 429: 6}
            refused = await _sign_in(clients[0], user.email, user.password)
            assert refused.status_code == 429
            fresh = _client(svc, _unique_ip())
            clients.append(fresh)
            blocked = await _sign_in(fresh, user.email, user.password)
            assert blocked.status_code == 429
            assert blocked.json()["limit"] == "account"
        finally:
            for client in clients:
                await client.aclose()


async def test_the_per_ip_ceiling_stops_password_spraying(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, login_max_failures_per_ip=8
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        user = await signup(svc, login_now=False)
        sprayed = await asyncio.gather(
            *(_sign_in(svc.http, f"nobody-{i}@example.com", "spring-2026") for i in range(30))
        )
        assert _statuses(sprayed) == {401: 8, 429: 22}
        blocked = await login(svc, user)
        assert blocked.status_code == 429
        assert blocked.json()["limit"] == "ip"


async def test_a_successful_sign_in_is_not_counted(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        login_max_failures_per_account=3,
        login_max_failures_per_ip_account=3,
        login_max_failures_per_ip=3,
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        user = await signup(svc, login_now=False)
        for _ in range(10):
            assert (await login(svc, user)).status_code == 200


async def _two_factor_user(svc: Service) -> tuple[User, pyotp.TOTP]:
    user = await signup(svc)
    enrolled = await svc.http.post("/v1/auth/totp/enroll", headers=user.headers)
    assert enrolled.status_code == 200
    totp = pyotp.TOTP(enrolled.json()["secret"])
    remember(enrolled.json()["secret"])
    verified = await svc.http.post(
        "/v1/auth/totp/verify",
        json={"password": user.password, "code": totp.generate_otp(int(time.time() // 30))},
        headers=user.headers,
    )
    assert verified.status_code == 200
    remember(*verified.json()["recovery_codes"])
    return user, totp


async def test_totp_disable_guesses_are_throttled_under_concurrency(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A stolen access token must not be a free password oracle."""
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        login_max_failures_per_account=4,
        login_max_failures_per_ip_account=4,
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        user, _ = await _two_factor_user(svc)
        answers = await asyncio.gather(
            *(
                svc.http.post(
                    "/v1/auth/totp/disable",
                    json={"password": f"guess-{i:04d}-x", "code": "123456"},
                    headers=user.headers,
                )
                for i in range(20)
            )
        )
        assert _statuses(answers) == {400: 4, 429: 16}
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json()["type"].endswith("/verification-throttled")
        assert int(refused.headers["Retry-After"]) > 0
        # The guesses count against sign-in too: one budget per account.
        assert (await login(svc, user)).status_code == 429


async def test_totp_verify_guesses_are_throttled_under_concurrency(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        login_max_failures_per_account=4,
        login_max_failures_per_ip_account=4,
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        user = await signup(svc)
        assert (
            await svc.http.post("/v1/auth/totp/enroll", headers=user.headers)
        ).status_code == 200
        answers = await asyncio.gather(
            *(
                svc.http.post(
                    "/v1/auth/totp/verify",
                    json={"password": user.password, "code": f"{i:06d}"},
                    headers=user.headers,
                )
                for i in range(20)
            )
        )
        assert _statuses(answers) == {400: 4, 429: 16}


async def test_wrong_codes_at_sign_in_are_throttled_under_concurrency(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        login_max_failures_per_account=5,
        login_max_failures_per_ip_account=5,
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        user, _ = await _two_factor_user(svc)
        answers = await asyncio.gather(
            *(
                svc.http.post(
                    "/v1/auth/token",
                    data={"username": user.email, "password": user.password, "otp": f"{i:06d}"},
                )
                for i in range(20)
            )
        )
        assert _statuses(answers) == {401: 5, 429: 15}


async def test_a_burst_of_password_reset_requests_gets_exactly_the_limit(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(
        accounts_db, kafka_bootstrap, topic_prefix, tmp_path, password_reset_max_per_ip=3
    )
    async with running(settings, client_ip=_unique_ip()) as svc:
        answers = await asyncio.gather(
            *(
                svc.http.post("/v1/auth/password-reset", json={"email": f"nobody-{i}@example.com"})
                for i in range(20)
            )
        )
        assert _statuses(answers) == {202: 3, 429: 17}


def _unique_v6_prefix() -> str:
    return "2001:db8:" + ":".join(f"{secrets.randbelow(0xFFFF):x}" for _ in range(2))


async def test_ipv6_clients_are_counted_per_64_not_per_address(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A host with IPv6 picks any of the 2^64 addresses of its /64: counted per
    address, it had a fresh per-IP budget with every request (sign-in spraying,
    password resets, registrations, anonymous catalog calls)."""
    settings = _settings(
        accounts_db,
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        login_max_failures_per_ip=3,
        password_reset_max_per_ip=3,
        registration_max_per_ip=3,
        catalog_max_per_ip=3,
    )
    prefix = _unique_v6_prefix()
    async with running(settings, client_ip=f"{prefix}::1") as svc:

        async def each_from_a_new_address(send: Any) -> list[int]:
            statuses = []
            for host in range(1, 5):
                async with _client(svc, f"{prefix}:{host:x}::{host:x}") as http:
                    statuses.append((await send(http)).status_code)
            return statuses

        async def spray(http: httpx.AsyncClient) -> httpx.Response:
            return await _sign_in(http, f"nobody-{secrets.token_hex(4)}@example.com", "wrong-pw")

        async def reset(http: httpx.AsyncClient) -> httpx.Response:
            email = f"nobody-{secrets.token_hex(4)}@example.com"
            return await http.post("/v1/auth/password-reset", json={"email": email})

        async def register(http: httpx.AsyncClient) -> httpx.Response:
            email = f"new-{secrets.token_hex(4)}@example.com"
            body = {"email": email, "password": "a-long-password"}
            return await http.post("/v1/auth/register", json=body)

        async def browse(http: httpx.AsyncClient) -> httpx.Response:
            return await http.get("/v1/catalog")

        assert await each_from_a_new_address(spray) == [401, 401, 401, 429]
        assert await each_from_a_new_address(reset) == [202, 202, 202, 429]
        assert await each_from_a_new_address(register) == [201, 201, 201, 429]
        assert await each_from_a_new_address(browse) == [200, 200, 200, 429]
        # Another /64 has its own budget.
        async with _client(svc, f"{_unique_v6_prefix()}::1") as elsewhere:
            assert (await spray(elsewhere)).status_code == 401
