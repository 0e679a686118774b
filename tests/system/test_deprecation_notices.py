"""Deprecation notices end to end, every part a real process on the real broker:
accounts (the registry), the gateway in front of the demo upstream, usage (the
callers of each API and route, from its rollups) and the notifier (mail through a
loopback fake of Resend's HTTP API, signed webhooks to a loopback receiver).

An operator registers the API Weather v2 with two routes, `GET /forecast/{city}` and
`GET /now`. Alice's org calls both through the gateway, Bob's org only `GET /now`;
usage counts every call before anything is deprecated. Then:

- the operator deprecates `GET /forecast/{city}` with a Sunset date: Alice (her org's
  owner, so its notification contact) gets one mail naming the route, her org's calls
  to it and the retirement date, and her webhook endpoint subscribed to
  `tollgate.usage.route_deprecation.announced.v1` gets the same notice, signed; Bob,
  who never called the route, gets nothing;
- the operator deprecates the whole API: Alice and Bob each get one mail naming the
  API with their own org's calls to it, and nobody gets the route's mail again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from tollgate.kit.localdeps import free_port
from tollgate.kit.testing.loopback import serving
from tollgate.kit.testing.polling import eventually

from .services import ServiceProcess, platform, service_process, start_all

pytestmark = pytest.mark.system(timed=False)

RESEND_KEY = "re_test_deprecations"
ROUTE_NOTICE = "tollgate.usage.route_deprecation.announced.v1"
ROUTE_SUBJECT = "GET /forecast/{city} of the API Weather v2 is deprecated"
API_SUBJECT = "The API Weather v2 is deprecated"
WAIT = 30.0  # seconds; each step takes one or two in a quiet run


@dataclass
class Outside:
    """The world beyond Tollgate on loopback: Resend's `POST /emails` (every mail the
    notifier hands over, as sent) and Alice's webhook receiver (every notice whose
    Standard Webhooks signature verifies with `webhook_secret`)."""

    port: int = field(default_factory=free_port)
    mails: list[dict[str, Any]] = field(default_factory=list)
    webhook_secret: str = ""
    notices: list[dict[str, Any]] = field(default_factory=list)
    unsigned: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def resend(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {RESEND_KEY}":
            return web.json_response({"message": "invalid API key"}, status=401)
        self.mails.append(await request.json())
        return web.json_response({"id": f"re_{len(self.mails)}"})

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            notice = Webhook(self.webhook_secret).verify(body, dict(request.headers))
        except Exception:
            self.unsigned += 1
            return web.Response(status=400)
        self.notices.append(notice)
        return web.Response(status=204)

    def mails_to(self, address: str, subject: str) -> list[dict[str, Any]]:
        return [m for m in self.mails if m["to"] == [address] and m["subject"] == subject]

    def deprecation_mails(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every deprecation mail, in arrival order."""
        return [
            (m["to"][0], m["subject"]) for m in self.mails if m["subject"].endswith("deprecated")
        ]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Outside]:
        app = web.Application()
        app.router.add_post("/emails", self.resend)
        app.router.add_post("/hook", self.webhook)
        async with serving(app, self.port):
            yield self


@contextlib.contextmanager
def started(*services: ServiceProcess) -> Iterator[None]:
    """`services` started together, stopped on the way out."""
    start_all(services)
    try:
        yield
    finally:
        for service in reversed(services):
            service.stop()


@dataclass(frozen=True)
class Customer:
    """A user who signed up and created an org (so is its owner and its notification
    contact), and the live key the operator issued to the org."""

    email: str
    org_id: str
    key: dict[str, str]


async def sign_up(admin: httpx.AsyncClient, name: str) -> Customer:
    """`name` signs up and creates an org; the operator (`admin`, exempt from the email
    verification a customer needs for live keys) issues its key."""
    async with httpx.AsyncClient(base_url=admin.base_url, timeout=10) as accounts:
        email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        password = f"pw-{uuid.uuid4().hex}"
        registered = await accounts.post(
            "/v1/auth/register", json={"email": email, "password": password, "name": name}
        )
        assert registered.status_code == 201, registered.text
        login = await accounts.post(
            "/v1/auth/token", data={"username": email, "password": password}
        )
        assert login.status_code == 200, login.text
        owner = {"authorization": f"Bearer {login.json()['access_token']}"}
        org = await accounts.post("/v1/orgs", json={"name": f"{name}'s apps"}, headers=owner)
        assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    issued = await admin.post(f"/v1/orgs/{org_id}/keys", json={"name": "production"})
    assert issued.status_code == 201, issued.text
    return Customer(email, org_id, {"X-API-Key": issued.json()["key"]})


async def call(gateway: httpx.AsyncClient, customer: Customer, path: str, times: int) -> None:
    """`times` served calls of `GET /weather<path>`; the first waits until the gateway
    knows the key (until then it answers 401s, which count for no org)."""
    first = await eventually(
        lambda: gateway.get(f"/weather{path}", headers=customer.key),
        lambda answer: answer.status_code == 200,
        within=WAIT,
    )
    assert first.status_code == 200, first.text
    for _ in range(times - 1):
        answer = await gateway.get(f"/weather{path}", headers=customer.key)
        assert answer.status_code == 200, answer.text


def utc(moment: datetime) -> str:
    """A date as the mails write it."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


async def test_route_then_api_deprecation_reaches_exactly_the_orgs_that_called_them(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    stack = platform(
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_factory=database_factory,
        name="deprecations",
    )
    broker = {"kafka_bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix}
    jwks = {"JWKS_URL": f"{stack.accounts.url}/.well-known/jwks.json"}
    outside = Outside()
    usage = service_process(
        "usage",
        tmp_path,
        **broker,
        database_url=database_factory("deprecations_usage"),
        extra=jwks,
    )
    notifier = service_process(
        "notifier",
        tmp_path,
        **broker,
        database_url=database_factory("deprecations_notifier"),
        extra={
            **jwks,
            # Accounts' key: the notifier unseals the verification links it mails.
            "SEALING_KEYS": stack.accounts.env["TOLLGATE_ACCOUNTS_SEALING_KEYS"],
            "EMAIL_BACKEND": "resend",
            "RESEND_BASE_URL": outside.url,
            "RESEND_API_KEY": RESEND_KEY,
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
            "WEBHOOK_POLL_SECONDS": "0.1",
        },
    )
    async with outside.running(), stack.running() as clients:
        with started(usage, notifier):
            acc, gw = clients.accounts, clients.gateway
            admin = {"authorization": acc.headers["authorization"]}
            async with (
                httpx.AsyncClient(base_url=usage.url, headers=admin, timeout=10) as use,
                httpx.AsyncClient(base_url=notifier.url, headers=admin, timeout=10) as ntf,
            ):
                created = await acc.post(
                    "/v1/apis",
                    json={
                        "slug": "weather",
                        "name": "Weather",
                        "api_version": "v2",
                        "upstream_url": f"{stack.upstream_url}/echo",
                        "routes": [
                            {"method": "GET", "path_template": "/forecast/{city}"},
                            {"method": "GET", "path_template": "/now"},
                        ],
                    },
                )
                assert created.status_code == 201, created.text
                api_id = created.json()["id"]
                route_ids = {r["path_template"]: r["id"] for r in created.json()["routes"]}
                forecast = route_ids["/forecast/{city}"]

                alice = await sign_up(acc, "Alice")
                bob = await sign_up(acc, "Bob")
                endpoint = await ntf.post(
                    f"/v1/orgs/{alice.org_id}/webhooks/endpoints",
                    json={"url": f"{outside.url}/hook", "event_types": [ROUTE_NOTICE]},
                )
                assert endpoint.status_code == 201, endpoint.text
                outside.webhook_secret = endpoint.json()["secret"]

                await call(gw, alice, "/forecast/paris", 3)
                await call(gw, alice, "/now", 2)
                await call(gw, bob, "/now", 4)

                # Usage counts callers from its rollups when it sees the deprecation:
                # every call must be in them first.
                async def counted() -> tuple[int, int, int]:
                    totals = []
                    for org_id, route_id in (
                        (alice.org_id, forecast),
                        (alice.org_id, None),
                        (bob.org_id, None),
                    ):
                        params = {"org_id": org_id, "api_id": api_id}
                        if route_id:
                            params["route_id"] = route_id
                        answer = await use.get("/v1/usage/summary", params=params)
                        totals.append(answer.json()["requests"] if answer.is_success else -1)
                    return totals[0], totals[1], totals[2]

                calls = (3, 5, 4)  # Alice's of the route, Alice's and Bob's of the API
                assert await eventually(counted, lambda c: c == calls, within=WAIT) == calls

                # The route: Alice, who called it, hears of it; Bob does not.
                now = datetime.now(UTC)
                route_sunset = (now + timedelta(days=90)).replace(
                    hour=12, minute=0, second=0, microsecond=0
                )
                deprecated = await acc.patch(
                    f"/v1/apis/{api_id}/routes/{forecast}",
                    json={"deprecated": True, "sunset_at": route_sunset.isoformat()},
                )
                assert deprecated.status_code == 200, deprecated.text
                assert deprecated.json()["deprecated"] is True

                await eventually(
                    lambda: asyncio.sleep(0, outside.mails_to(alice.email, ROUTE_SUBJECT)),
                    lambda mails: len(mails) >= 1,
                    within=WAIT,
                )
                [route_mail] = outside.mails_to(alice.email, ROUTE_SUBJECT)
                assert (
                    "Your organisation's live keys called GET /forecast/{city} of the API "
                    "Weather v2 (/weather/forecast/{city}) 3 times in the last 30 days."
                ) in route_mail["text"]
                assert f"Retirement date: {utc(route_sunset)}." in route_mail["text"]

                await eventually(
                    lambda: asyncio.sleep(0, outside.notices),
                    lambda notices: len(notices) >= 1,
                    within=WAIT,
                )

                # The API: both orgs called it, each hears of it once, with its own calls.
                api_sunset = route_sunset + timedelta(days=30)
                retired_later = await acc.patch(
                    f"/v1/apis/{api_id}",
                    json={"status": "deprecated", "sunset_at": api_sunset.isoformat()},
                )
                assert retired_later.status_code == 200, retired_later.text

                def api_mails() -> list[dict[str, Any]]:
                    return [m for m in outside.mails if m["subject"] == API_SUBJECT]

                await eventually(
                    lambda: asyncio.sleep(0, api_mails()),
                    lambda mails: len(mails) >= 2,
                    within=WAIT,
                )

                # A mail queued with these (a second copy, a route mail to Bob, the route's
                # again with the API's) has reached Resend once the notifier's queue is empty.
                async def pending() -> int:
                    answer = await ntf.get("/v1/admin/emails", params={"state": "pending"})
                    return len(answer.json()["items"]) if answer.is_success else -1

                assert await eventually(pending, lambda n: n == 0, within=WAIT) == 0

    # Exactly one mail per org and notice, each to the org's owner.
    assert sorted(outside.deprecation_mails()) == sorted(
        [(alice.email, ROUTE_SUBJECT), (alice.email, API_SUBJECT), (bob.email, API_SUBJECT)]
    )
    [alice_api] = outside.mails_to(alice.email, API_SUBJECT)
    [bob_api] = outside.mails_to(bob.email, API_SUBJECT)
    assert "the API Weather v2 (/weather/) 5 times in the last 30 days" in alice_api["text"]
    assert "the API Weather v2 (/weather/) 4 times in the last 30 days" in bob_api["text"]
    for mail in (alice_api, bob_api):
        assert f"Retirement date: {utc(api_sunset)}." in mail["text"]

    # Alice's endpoint took only the route notice, signed, and said what the mail said.
    assert outside.unsigned == 0
    assert [n["type"] for n in outside.notices] == [ROUTE_NOTICE]
    notice = outside.notices[0]["data"]
    assert notice["org_id"] == alice.org_id
    assert (notice["route_id"], notice["method"], notice["path_template"]) == (
        forecast,
        "GET",
        "/forecast/{city}",
    )
    assert notice["requests"] == 3
    assert datetime.fromisoformat(notice["sunset_at"]) == route_sunset
