"""Who may do what, everywhere at once: accounts, billing, usage and the notifier as
real processes on the real broker. Each service authorises against the users and
memberships it replays from `tollgate.accounts.users.v1`, not the token's role
snapshot, so with a token issued before the change (one that lists the old role):

- a new org works at billing, usage and the notifier with the token that created it;
- a lowered role (owner -> viewer) is refused (403) at billing's and the notifier's
  owner-only routes (usage has no route above viewer);
- a removed member gets 404 at all three;
- a deactivated user gets 401 at all three;

each within 1 s, p99 over `IDENTITY_TRIALS` trials (20 by default). Prints the
figures: time from accounts' answer to the first refusal, per change and service.

Setup adds members straight through accounts' database and its publishing function
(the invitation flow has its own tests); every measured change goes through
accounts' HTTP API.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tollgate.accounts.identity.state import publish_user_state
from tollgate.accounts.orgs import repository as orgs_repo
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.sealing import new_sealing_key

from .services import ServiceProcess, service_process

pytestmark = pytest.mark.system

TRIALS = int(os.environ.get("IDENTITY_TRIALS", "20"))
BUDGET = 1.0  # seconds, p99
POLL = 0.01

Probe = Callable[[str], Awaitable[int]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(accounts: httpx.AsyncClient, tag: str) -> tuple[uuid.UUID, str, str, str]:
    """A new user (id, email, password) and an access token for it."""
    email = f"{tag}-{uuid.uuid4().hex[:10]}@example.com"
    password = "pw-" + uuid.uuid4().hex
    made = await accounts.post(
        "/v1/auth/register", json={"email": email, "password": password, "name": tag}
    )
    assert made.status_code == 201, made.text
    token = await sign_in(accounts, email, password)
    return uuid.UUID(made.json()["id"]), email, password, token


async def sign_in(accounts: httpx.AsyncClient, email: str, password: str) -> str:
    answer = await accounts.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": email, "password": password},
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def refused_after(probe: Probe, token: str, refusal: int, since: float) -> float:
    """Seconds from `since` until `probe` first answers `refusal` (fails after 5 s)."""
    while True:
        status = await probe(token)
        if status == refusal:
            return time.monotonic() - since
        assert time.monotonic() - since < 5, f"still {status}, wanted {refusal}"
        await asyncio.sleep(POLL)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def start_all(processes: list[ServiceProcess]) -> None:
    await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))


async def test_role_changes_removals_and_deactivations_apply_everywhere_within_a_second(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    common = {"kafka_bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix}
    accounts_db = database_factory("identity_accounts")
    accounts = service_process(
        "accounts",
        tmp_path,
        database_url=accounts_db,
        extra={
            "SEALING_KEYS": new_sealing_key(),
            "KEY_PEPPER": uuid.uuid4().hex,
            "SIGNING_KEY_FILE": str(tmp_path / "signing.pem"),
            "SIGNING_KEY_GENERATE": "true",
            "BCRYPT_ROUNDS": "4",
            "LOGIN_MAX_FAILURES_PER_IP": "100000",
            "ADMIN_EMAIL": "ops@example.com",
            "ADMIN_PASSWORD": "operator-Pass-2026",
        },
        **common,
    )
    accounts.start()
    jwks = {"JWKS_URL": f"{accounts.url}/.well-known/jwks.json"}
    billing = service_process(
        "billing", tmp_path, database_url=database_factory("identity_billing"), extra=jwks, **common
    )
    usage = service_process(
        "usage", tmp_path, database_url=database_factory("identity_usage"), extra=jwks, **common
    )
    notifier = service_process(
        "notifier",
        tmp_path,
        database_url=database_factory("identity_notifier"),
        extra={**jwks, "SEALING_KEYS": new_sealing_key(), "EMAIL_DIR": str(tmp_path / "mail")},
        **common,
    )
    processes = [accounts, billing, usage, notifier]
    engine = create_engine(accounts_db, pool_size=2)
    sessions = session_maker(engine)
    try:
        await start_all([billing, usage, notifier])
        async with (
            httpx.AsyncClient(base_url=accounts.url, timeout=10) as acc,
            httpx.AsyncClient(base_url=billing.url, timeout=10) as bil,
            httpx.AsyncClient(base_url=usage.url, timeout=10) as use,
            httpx.AsyncClient(base_url=notifier.url, timeout=10) as ntf,
        ):
            admin = await sign_in(acc, "ops@example.com", "operator-Pass-2026")
            *_, owner = await sign_up(acc, "owner")

            # A new org, used at once with the token signed before it existed.
            created = await acc.post("/v1/orgs", json={"name": "Fresh"}, headers=bearer(owner))
            assert created.status_code == 201, created.text
            org = created.json()["id"]
            reads: dict[str, Probe] = {
                "billing": lambda t: status(bil.get(f"/v1/orgs/{org}/balance", headers=bearer(t))),
                "usage": lambda t: status(
                    use.get("/v1/usage/summary", params={"org_id": org}, headers=bearer(t))
                ),
                "notifier": lambda t: status(
                    ntf.get(f"/v1/orgs/{org}/notification-contacts", headers=bearer(t))
                ),
            }
            owner_writes: dict[str, Probe] = {
                "billing": lambda t: status(
                    bil.patch(
                        f"/v1/orgs/{org}/billing-settings",
                        json={"low_threshold": 100},
                        headers=bearer(t),
                    )
                ),
                "notifier": lambda t: status(
                    ntf.put(
                        f"/v1/orgs/{org}/notification-contacts",
                        json={"contacts": []},
                        headers=bearer(t),
                    )
                ),
            }
            first_use = {name: await probe(owner) for name, probe in reads.items()}
            assert first_use == {"billing": 200, "usage": 200, "notifier": 200}

            async def add_member(user_id: uuid.UUID, role: str) -> None:
                async with sessions() as session, session.begin():
                    await orgs_repo.upsert_membership(session, uuid.UUID(org), user_id, role)
                    await publish_user_state(session, user_id)

            async def measure(
                probes: dict[str, Probe], token: str, refusal: int, since: float
            ) -> dict[str, float]:
                took = await asyncio.gather(
                    *(refused_after(p, token, refusal, since) for p in probes.values())
                )
                return dict(zip(probes, took, strict=True))

            figures: dict[str, dict[str, list[float]]] = {
                "role lowered": {"billing": [], "notifier": []},
                "member removed": {name: [] for name in reads},
                "user deactivated": {name: [] for name in reads},
            }
            for _ in range(TRIALS):
                member_id, email, password, _ = await sign_up(acc, "member")
                doomed_id, *_, doomed = await sign_up(acc, "doomed")
                await add_member(member_id, "owner")
                await add_member(doomed_id, "viewer")
                # Signed in as an owner: the token's own snapshot says "owner" below.
                member = await sign_in(acc, email, password)
                for probe in owner_writes.values():  # owner now, via the replayed state
                    assert await probe(member) == 200
                assert {n: await p(doomed) for n, p in reads.items()} == first_use

                lowered = await acc.patch(
                    f"/v1/orgs/{org}/members/{member_id}",
                    json={"role": "viewer"},
                    headers=bearer(owner),
                )
                assert lowered.status_code == 200, lowered.text
                took = await measure(owner_writes, member, 403, time.monotonic())
                for name, seconds in took.items():
                    figures["role lowered"][name].append(seconds)

                removed = await acc.delete(
                    f"/v1/orgs/{org}/members/{member_id}", headers=bearer(owner)
                )
                assert removed.status_code == 204, removed.text
                took = await measure(reads, member, 404, time.monotonic())
                for name, seconds in took.items():
                    figures["member removed"][name].append(seconds)

                deactivated = await acc.post(
                    f"/v1/users/{doomed_id}/deactivate", headers=bearer(admin)
                )
                assert deactivated.status_code == 200, deactivated.text
                took = await measure(reads, doomed, 401, time.monotonic())
                for name, seconds in took.items():
                    figures["user deactivated"][name].append(seconds)

        lines = [f"identity propagation over {TRIALS} trials (accounts answer -> first refusal):"]
        worst = 0.0
        for change, per_service in figures.items():
            for name, values in per_service.items():
                worst = max(worst, p99(values))
                lines.append(
                    f"  {change:17} {name:9} p50 {statistics.median(values) * 1000:6.0f} ms"
                    f"  p99 {p99(values) * 1000:6.0f} ms  max {max(values) * 1000:6.0f} ms"
                )
        print("\n".join(lines), file=sys.stderr)
        assert worst < BUDGET, "\n".join(lines)
    except BaseException:
        for process in processes:
            print(process.logs()[-4000:], file=sys.stderr)
        raise
    finally:
        await engine.dispose()
        for process in reversed(processes):
            process.stop()


async def status(request: Awaitable[httpx.Response]) -> int:
    return (await request).status_code
