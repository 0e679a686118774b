"""Who may do what, everywhere at once, and one audit trail: accounts, billing, usage
and the notifier as real processes on the real broker (one stack for both tests).

Identity: each service authorises against the users and memberships it replays from
`tollgate.accounts.users.v1`, not the token's role snapshot, so with a token issued
before the change (one that lists the old role):

- a new org works at billing, usage and the notifier with the token that created it;
- a lowered role (owner -> viewer) is refused (403) at billing's and the notifier's
  owner-only routes (usage has no route above viewer);
- a removed member gets 404 at all three;
- a deactivated user gets 401 at all three;
- a session signed out alone gets 401 at all three, while the user's other session
  goes on working;

each within 1 s, p99 over `IDENTITY_TRIALS` trials (20 by default). Prints the
figures: time from accounts' answer to the first refusal, per change and service, and
where it went: when accounts' outbox relay took the record (its `published_at`), how
long the refusing call itself took, and how long this test's own event loop stalled.
A figure over the budget only because this test's own event loop stalled in it (did
not run: a loaded machine starving the test process; the figure less the stall is
under the budget) measured the test, not the services: it is set aside and shown, and
at most a tenth of the figures may be.
Setup adds members straight through accounts' database and its publishing function
(the invitation flow has its own tests); every measured change goes through
accounts' HTTP API.

Audit: a top-up and a billing settings change at billing, a webhook endpoint created
and its secret rotated and the notification contacts replaced at the notifier each
show up in accounts' `GET /v1/audit` for the org's owner, with the right service,
actor, org, target and request id, and without the webhook secret the notifier
revealed. Prints how long the last record took to arrive.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tollgate.accounts.identity.state import publish_user_state
from tollgate.accounts.orgs import repository as orgs_repo
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.sealing import new_sealing_key

from .services import ServiceProcess, service_process, start_all

pytestmark = pytest.mark.system

TRIALS = int(os.environ.get("IDENTITY_TRIALS", "20"))
BUDGET = 1.0  # seconds, p99
POLL = 0.01
ADMIN = ("ops@example.com", "operator-Pass-2026")

Probe = Callable[[str], Awaitable[int]]


@dataclass
class Stack:
    """The four services, started once for this module."""

    accounts: ServiceProcess
    billing: ServiceProcess
    usage: ServiceProcess
    notifier: ServiceProcess
    accounts_db: str

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.accounts, self.billing, self.usage, self.notifier]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
    database_factory: Callable[[str], str],
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("identity-stack")
    common = {"kafka_bootstrap": kafka_bootstrap, "topic_prefix": f"t{uuid.uuid4().hex[:8]}."}
    accounts_db = database_factory("identity_accounts")
    # One sealing key for both: the notifier unseals the tokens accounts mails.
    sealing_key = new_sealing_key()
    accounts = service_process(
        "accounts",
        workdir,
        database_url=accounts_db,
        extra={
            "SEALING_KEYS": sealing_key,
            "KEY_PEPPER": uuid.uuid4().hex,
            "SIGNING_KEY_FILE": str(workdir / "signing.pem"),
            "SIGNING_KEY_GENERATE": "true",
            "BCRYPT_ROUNDS": "4",
            "LOGIN_MAX_FAILURES_PER_IP": "100000",
            "ADMIN_EMAIL": ADMIN[0],
            "ADMIN_PASSWORD": ADMIN[1],
        },
        **common,
    )
    jwks = {"JWKS_URL": f"{accounts.url}/.well-known/jwks.json"}
    extras = {
        "billing": jwks,
        "usage": jwks,
        "notifier": {
            **jwks,
            "SEALING_KEYS": sealing_key,
            "EMAIL_DIR": str(workdir / "mail"),
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        },
    }
    # Accounts starts while the others migrate, then the others start together: the
    # stack is up in the time of the slowest service. The pool lives as long as the
    # stack: a service dies with the thread that started it (localdeps ties children to
    # their parent thread).
    pool = ThreadPoolExecutor(4)
    started: list[ServiceProcess] = []
    try:
        accounts_up = pool.submit(accounts.start)
        prepared = {
            name: pool.submit(
                service_process,
                name,
                workdir,
                database_url=database_factory(f"identity_{name}"),
                extra=extra,
                **common,
            )
            for name, extra in extras.items()
        }
        others = {name: future.result() for name, future in prepared.items()}
        accounts_up.result()
        started.append(accounts)
        start_all(list(others.values()))
        started.extend(others.values())
        yield Stack(accounts, others["billing"], others["usage"], others["notifier"], accounts_db)
    finally:
        for process in reversed(started):
            process.stop()
        pool.shutdown()


def dump_logs(stack: Stack) -> None:
    for process in stack.processes:
        print(process.logs()[-4000:], file=sys.stderr)


def bearer(token: str, request_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if request_id:
        headers["X-Request-ID"] = request_id
    return headers


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


async def refused_after(
    probe: Probe, token: str, refusal: int, since: float
) -> tuple[float, float]:
    """Seconds from `since` until `probe` first answers `refusal` (fails after 5 s), and
    how long that refusing call itself took."""
    while True:
        asked = time.monotonic()
        status = await probe(token)
        if status == refusal:
            answered = time.monotonic()
            return answered - since, answered - asked
        assert time.monotonic() - since < 5, f"still {status}, wanted {refusal}"
        await asyncio.sleep(POLL)


class StallWatch:
    """When this test's own event loop did not run: each time it woke late for a `tick`
    sleep by more than a tick, the interval it was asleep too long."""

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.stalls: list[tuple[float, float]] = []
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            late = now - asked - self.tick
            self.worst = max(self.worst, late)
            if late > self.tick:
                self.stalls.append((now - late, now))

    def within(self, start: float, end: float) -> float:
        """Seconds this loop stalled between `start` and `end`."""
        return sum(max(0.0, min(e, end) - max(s, start)) for s, e in self.stalls)

    def judged(self, since: float, seconds: float) -> float | None:
        """The figure `seconds` measured from `since`, or None when it is over the budget
        only because this loop stalled in it."""
        over = seconds >= BUDGET
        return None if over and seconds - self.within(since, since + seconds) < BUDGET else seconds


def verdict(series: dict[str, list[float | None]], lines: list[str]) -> None:
    """Print the report and judge the budget over every series' figures, those this
    test's stalls spoiled set aside (at most a tenth of them)."""
    kept = {name: [f for f in figures if f is not None] for name, figures in series.items()}
    total = sum(len(figures) for figures in series.values())
    spoiled = total - sum(len(figures) for figures in kept.values())
    lines.append(f"  {spoiled} of {total} figures set aside: over only by this test's own stalls")
    report = "\n".join(lines)
    print(report, file=sys.stderr)
    assert spoiled * 10 <= total, report
    assert max(p99(figures) for figures in kept.values()) < BUDGET, report


def answered_at() -> tuple[float, float]:
    """Now, on the monotonic clock and the wall clock (the database's stamps)."""
    return time.monotonic(), time.time()


def summary(figures: list[float | None]) -> str:
    """p50, p99 and max of the figures kept, and how many were set aside."""
    kept = [f for f in figures if f is not None]
    return (
        f"p50 {statistics.median(kept) * 1000:6.0f} ms  p99 {p99(kept) * 1000:6.0f} ms"
        f"  max {max(kept) * 1000:6.0f} ms  ({len(figures) - len(kept)} set aside)"
    )


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def test_role_changes_removals_and_deactivations_apply_everywhere_within_a_second(
    stack: Stack,
) -> None:
    accounts, billing, usage, notifier = (
        stack.accounts,
        stack.billing,
        stack.usage,
        stack.notifier,
    )
    engine = create_engine(stack.accounts_db, pool_size=2)
    sessions = session_maker(engine)
    # On a loaded machine this process itself may not run for a while (1.2 s seen at
    # load 10 on 2 cores): a refusal seen late is then the test's, not the services'.
    watch = StallWatch()
    monitor = asyncio.create_task(watch.run())
    try:
        async with (
            httpx.AsyncClient(base_url=accounts.url, timeout=10) as acc,
            httpx.AsyncClient(base_url=billing.url, timeout=10) as bil,
            httpx.AsyncClient(base_url=usage.url, timeout=10) as use,
            httpx.AsyncClient(base_url=notifier.url, timeout=10) as ntf,
        ):
            admin = await sign_in(acc, *ADMIN)
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
                change: str,
                user_id: uuid.UUID,
                probes: dict[str, Probe],
                token: str,
                refusal: int,
                since: float,
                since_wall: float,
            ) -> None:
                took = await asyncio.gather(
                    *(refused_after(p, token, refusal, since) for p in probes.values())
                )
                for name, (seconds, last_call) in zip(probes, took, strict=True):
                    figures[change][name].append(watch.judged(since, seconds))
                    calls[change].append(last_call)
                async with sessions() as session:
                    relayed = await session.scalar(
                        text(
                            "SELECT max(published_at) FROM outbox "
                            "WHERE topic = 'tollgate.accounts.users.v1' AND key = :user"
                        ),
                        {"user": str(user_id)},
                    )
                relays[change].append(relayed.timestamp() - since_wall)

            figures: dict[str, dict[str, list[float | None]]] = {
                "role lowered": {"billing": [], "notifier": []},
                "member removed": {name: [] for name in reads},
                "user deactivated": {name: [] for name in reads},
            }
            # Where the time goes: accounts' answer -> its outbox relay took the record
            # (the row's published_at, stamped when the relay's round began), and how
            # long the refusing call itself took.
            relays: dict[str, list[float]] = {change: [] for change in figures}
            calls: dict[str, list[float]] = {change: [] for change in figures}
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
                await measure("role lowered", member_id, owner_writes, member, 403, *answered_at())

                removed = await acc.delete(
                    f"/v1/orgs/{org}/members/{member_id}", headers=bearer(owner)
                )
                assert removed.status_code == 204, removed.text
                await measure("member removed", member_id, reads, member, 404, *answered_at())

                deactivated = await acc.post(
                    f"/v1/users/{doomed_id}/deactivate", headers=bearer(admin)
                )
                assert deactivated.status_code == 200, deactivated.text
                await measure("user deactivated", doomed_id, reads, doomed, 401, *answered_at())

        lines = [f"identity propagation over {TRIALS} trials (accounts answer -> first refusal):"]
        for change, per_service in figures.items():
            for name, values in per_service.items():
                lines.append(f"  {change:17} {name:9} {summary(values)}")
        lines.append(f"  this test's own event loop stalled up to {watch.worst * 1000:.0f} ms")
        for change in figures:
            lines.append(
                f"  {change:17} relayed   p50 {statistics.median(relays[change]) * 1000:6.0f} ms"
                f"  max {max(relays[change]) * 1000:6.0f} ms;  refusing call p50 "
                f"{statistics.median(calls[change]) * 1000:4.0f} ms"
                f"  max {max(calls[change]) * 1000:4.0f} ms"
            )
        verdict(
            {f"{c} {n}": v for c, per_service in figures.items() for n, v in per_service.items()},
            lines,
        )
    except BaseException:
        dump_logs(stack)
        raise
    finally:
        monitor.cancel()
        await engine.dispose()


async def test_changes_at_billing_and_the_notifier_reach_the_audit_log(stack: Stack) -> None:
    accounts, billing, notifier = stack.accounts, stack.billing, stack.notifier
    try:
        async with (
            httpx.AsyncClient(base_url=accounts.url, timeout=10) as acc,
            httpx.AsyncClient(base_url=billing.url, timeout=10) as bil,
            httpx.AsyncClient(base_url=notifier.url, timeout=10) as ntf,
        ):
            admin = await sign_in(acc, *ADMIN)
            email, password = f"owner-{uuid.uuid4().hex[:8]}@example.com", "pw-" + uuid.uuid4().hex
            made = await acc.post(
                "/v1/auth/register", json={"email": email, "password": password, "name": "O"}
            )
            assert made.status_code == 201, made.text
            owner_id = made.json()["id"]
            owner = await sign_in(acc, email, password)
            org = await acc.post("/v1/orgs", json={"name": "Audited"}, headers=bearer(owner))
            assert org.status_code == 201, org.text
            org_id = org.json()["id"]

            calls: list[tuple[str, httpx.Response]] = []
            calls.append(
                (
                    "req-audit-topup-01",
                    await bil.post(
                        f"/v1/orgs/{org_id}/credits",
                        json={"amount": 5000, "reason": "March"},
                        headers={
                            **bearer(admin, "req-audit-topup-01"),
                            "Idempotency-Key": uuid.uuid4().hex,
                        },
                    ),
                )
            )
            calls.append(
                (
                    "req-audit-settings-01",
                    await bil.patch(
                        f"/v1/orgs/{org_id}/billing-settings",
                        json={"low_threshold": 250},
                        headers=bearer(owner, "req-audit-settings-01"),
                    ),
                )
            )
            created = await ntf.post(
                f"/v1/orgs/{org_id}/webhooks/endpoints",
                json={"url": "http://127.0.0.1:9/hook", "description": "audit test"},
                headers=bearer(owner, "req-audit-endpoint-01"),
            )
            calls.append(("req-audit-endpoint-01", created))
            endpoint_id = created.json()["id"]
            rotated = await ntf.post(
                f"/v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}/rotate-secret",
                headers=bearer(owner, "req-audit-rotate-01"),
            )
            calls.append(("req-audit-rotate-01", rotated))
            calls.append(
                (
                    "req-audit-contacts-01",
                    await ntf.put(
                        f"/v1/orgs/{org_id}/notification-contacts",
                        json={"contacts": [{"email": "billing@example.com"}]},
                        headers=bearer(owner, "req-audit-contacts-01"),
                    ),
                )
            )
            for request_id, answer in calls:
                assert answer.is_success, (request_id, answer.status_code, answer.text)
            revealed = [created.json()["secret"], *rotated.json().values()]
            changed_at = time.monotonic()

            wanted = {request_id for request_id, _ in calls}
            entries: dict[str, dict[str, Any]] = {}
            while wanted - set(entries):
                assert time.monotonic() - changed_at < 10, f"missing {wanted - set(entries)}"
                page = await acc.get(
                    "/v1/audit", params={"org_id": org_id, "limit": 100}, headers=bearer(owner)
                )
                assert page.status_code == 200, page.text
                entries = {
                    e["request_id"]: e for e in page.json()["items"] if e["request_id"] in wanted
                }
                await asyncio.sleep(0.05)
            arrived = time.monotonic() - changed_at

        assert entries["req-audit-topup-01"]["service"] == "billing"
        assert entries["req-audit-settings-01"]["service"] == "billing"
        assert entries["req-audit-settings-01"]["actor_id"] == owner_id
        assert entries["req-audit-settings-01"]["diff"]["request"] == {"low_threshold": 250}
        assert entries["req-audit-topup-01"]["actor_id"] != owner_id  # the admin
        for request_id in ("req-audit-endpoint-01", "req-audit-rotate-01"):
            entry = entries[request_id]
            assert entry["service"] == "notifier"
            assert entry["actor_id"] == owner_id
            assert (entry["target_type"], entry["target_id"]) == ("endpoint", endpoint_id)
        assert entries["req-audit-contacts-01"]["diff"]["request"]["contacts"][0]["email"] == (
            "billing@example.com"
        )
        assert all(e["org_id"] == org_id for e in entries.values())
        text = str(entries)
        for secret in revealed:
            if isinstance(secret, str) and secret.startswith("whsec_"):
                assert secret not in text
        print(
            f"audit trail: {len(entries)} records from billing and the notifier in accounts' "
            f"/v1/audit {arrived * 1000:.0f} ms after the last change",
            file=sys.stderr,
        )
    except BaseException:
        dump_logs(stack)
        raise


async def test_signing_out_one_session_applies_everywhere_within_a_second(stack: Stack) -> None:
    watch = StallWatch()
    monitor = asyncio.create_task(watch.run())
    try:
        async with (
            httpx.AsyncClient(base_url=stack.accounts.url, timeout=10) as acc,
            httpx.AsyncClient(base_url=stack.billing.url, timeout=10) as bil,
            httpx.AsyncClient(base_url=stack.usage.url, timeout=10) as use,
            httpx.AsyncClient(base_url=stack.notifier.url, timeout=10) as ntf,
        ):
            _, email, password, staying = await sign_up(acc, "sessions")
            created = await acc.post("/v1/orgs", json={"name": "Two"}, headers=bearer(staying))
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
            figures: dict[str, list[float | None]] = {name: [] for name in reads}
            for _ in range(TRIALS):
                signed_in = await acc.post(
                    "/v1/auth/token",
                    data={"grant_type": "password", "username": email, "password": password},
                )
                assert signed_in.status_code == 200, signed_in.text
                leaving = signed_in.json()
                for probe in reads.values():
                    assert await probe(leaving["access_token"]) == 200
                out = await acc.post(
                    "/v1/auth/logout",
                    json={"refresh_token": leaving["refresh_token"]},
                    headers=bearer(leaving["access_token"]),
                )
                assert out.status_code == 204, out.text
                since = time.monotonic()
                took = await asyncio.gather(
                    *(refused_after(p, leaving["access_token"], 401, since) for p in reads.values())
                )
                for name, (seconds, _) in zip(reads, took, strict=True):
                    figures[name].append(watch.judged(since, seconds))
            # The session that stayed was never touched.
            stayed = {name: await probe(staying) for name, probe in reads.items()}
            assert stayed == dict.fromkeys(reads, 200)
        lines = [f"sign-out of one session over {TRIALS} trials (logout answer -> first 401):"]
        for name, values in figures.items():
            lines.append(f"  {name:9} {summary(values)}")
        lines.append(f"  this test's own event loop stalled up to {watch.worst * 1000:.0f} ms")
        verdict(figures, lines)
    except BaseException:
        dump_logs(stack)
        raise
    finally:
        monitor.cancel()


async def status(request: Awaitable[httpx.Response]) -> int:
    return (await request).status_code
