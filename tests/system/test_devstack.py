"""`make up` (infra/devstack.py): the whole stack comes up ready, seeded (credits, the
`demo` and `sms` APIs with their OpenAPI documents) without announcing the demo org
exhausted, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from fastapi.routing import APIRoute

from tollgate.kit import localdeps
from tollgate.kit.testing import unique_name
from tollgate.notifier.outbound.api import router as notifier_sms_routes
from tollgate.notifier.outbound.schemas import MessageOut, SendIn

pytestmark = pytest.mark.system(timed=False)

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"gateway": 0, "accounts": 1, "usage": 2, "billing": 3, "notifier": 4, "console": 5}


def free_port_base() -> int:
    """A base port with base..base+5, base+920 and base+921 (the SMS provider) all free,
    below the kernel's ephemeral range (so no outgoing connection of this machine can be
    holding one of them)."""
    return localdeps.free_port_block((*SERVICES.values(), 920, 921))


def eventually_ok(request: urllib.request.Request) -> object:
    """The JSON body of the first 200 within 10 s (the gateway may still be replaying
    the key the seeding just published)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


CALLS = 5  # through the gateway per run, besides the printed curl line's one


def test_make_up_twice_serves_counts_every_call_once_and_stops_cleanly(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    """`make up`, calls, Ctrl-C, `make up` again (a fresh embedded broker, the same
    databases), more calls: every call of both runs is counted once by usage and paid
    once in billing, and each Ctrl-C leaves nothing running."""
    base = free_port_base()
    prefix = unique_name("devstack") + "_"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")
    }
    env |= {
        "DATABASE_URL": postgres_admin_url,
        "DEVSTACK_PORT_BASE": str(base),
        "DEVSTACK_DATABASE_PREFIX": prefix,
        "DEVSTACK_WORKDIR": str(tmp_path),
    }
    try:
        for run in (1, 2):
            with subprocess.Popen(
                [sys.executable, str(ROOT / "infra" / "devstack.py")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ) as proc:
                try:
                    output = wait_ready(proc)
                    check_stack(output, base)
                    check_seeded_documents(output, base, run)
                    call_through_the_gateway(output, CALLS)
                    if run == 2:
                        check_counts(output, base, 2 * (1 + CALLS))
                    check_no_exhausted_mail(tmp_path / "mail")
                    stop_cleanly(proc)
                finally:
                    if proc.poll() is None:
                        proc.kill()
    finally:
        for name in ("accounts", "usage", "billing", "notifier"):
            localdeps.drop_database(postgres_admin_url, f"{prefix}{name}")


def seed_document(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "infra" / "devstack" / name).read_text())
    return document


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path with its parameters as `{}`) of every operation."""
    methods = ("get", "put", "post", "delete", "patch")
    return {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


def test_seed_documents_describe_what_their_upstreams_serve() -> None:
    """The hand-written documents `make up` imports stay in step with what they describe:
    every route of the demo upstream (but its health check), the notifier's customer SMS
    routes, and the SMS bodies field for field."""
    spec = importlib.util.spec_from_file_location("demo_upstream", ROOT / "infra/demo_upstream.py")
    assert spec is not None
    assert spec.loader is not None
    demo_upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_upstream)
    served = {
        (route.method, re.sub(r"\{[^}]*\}", "{}", route.resource.canonical))
        for route in demo_upstream.build_app().router.routes()
        if route.method != "HEAD" and route.resource.canonical != "/healthz"
    }
    documented = operations(seed_document("demo-openapi.yaml"))
    # `/echo/{}` answers any method; the document lists GET and POST.
    assert served - {("*", "/echo/{}")} == documented - {("GET", "/echo/{}"), ("POST", "/echo/{}")}
    assert {("GET", "/echo/{}"), ("POST", "/echo/{}")} <= documented

    sms = seed_document("sms-openapi.yaml")
    customer_routes = {
        (method, re.sub(r"\{[^}]*\}", "{}", route.path))
        for route in notifier_sms_routes.routes
        if isinstance(route, APIRoute) and route.path.startswith("/sms/messages")
        for method in route.methods
    }
    assert operations(sms) == customer_routes
    schemas = sms["components"]["schemas"]
    send = SendIn.model_json_schema(by_alias=True)
    assert set(schemas["SendMessage"]["properties"]) == set(send["properties"])
    assert set(schemas["SendMessage"]["required"]) == set(send["required"])
    message = MessageOut.model_json_schema(by_alias=True, mode="serialization")
    assert set(schemas["Message"]["properties"]) == set(message["properties"])
    assert set(schemas["Message"]["required"]) == set(message["required"])


def wait_ready(proc: subprocess.Popen[str]) -> list[str]:
    """The stack's output up to its ready banner."""
    output: list[str] = []
    assert proc.stdout is not None
    # Six services and the upstream start one after the other: on a shared 2-core machine
    # that alone has taken over two minutes.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        if "Ctrl-C stops everything" in line:
            break
    assert any("Ctrl-C stops everything" in line for line in output), "".join(output)
    return output


def check_stack(output: list[str], base: int) -> None:
    """Probe every service; the console line and the printed curl line work."""
    for name, offset in SERVICES.items():
        ops = "/_tollgate" if name == "gateway" else ""
        for probe in ("healthz", "readyz"):
            url = f"http://127.0.0.1:{base + offset}{ops}/{probe}"
            assert status(url) == 200, f"{name} {probe}"
    assert status(f"http://127.0.0.1:{base + 920}/hello") == 200
    console = next(line for line in output if "console: http://" in line)
    assert re.search(
        rf"console: http://127\.0\.0\.1:{base + 5} — sign in as \S+@\S+ / \S+", console
    )
    assert status(f"http://127.0.0.1:{base + 5}/signin") == 200

    # The printed curl line works: seeded key -> gateway -> demo upstream, paid in credits.
    key, url = curl_line(output)
    answer = eventually_ok(urllib.request.Request(url, headers={"X-API-Key": key}))
    assert answer == {"message": "hello from the demo upstream"}


def curl_line(output: list[str]) -> tuple[str, str]:
    curl = next(line for line in output if "curl -H" in line)
    key = re.search(r"X-API-Key: (tg_live_[0-9A-Za-z]+)", curl)
    url = re.search(r"(http://127\.0\.0\.1:\d+/demo/hello)", curl)
    assert key, curl
    assert url, curl
    return key.group(1), url.group(1)


def call_through_the_gateway(output: list[str], calls: int) -> None:
    key, url = curl_line(output)
    for _ in range(calls):
        request = urllib.request.Request(url, headers={"X-API-Key": key})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200


def admin_token(output: list[str], base: int) -> str:
    """A token of the seeded admin, signed in with the printed login."""
    login = next(line for line in output if "admin login: " in line)
    found = re.search(r"admin login: (\S+) / (\S+)", login)
    assert found, login
    form = urllib.parse.urlencode({"username": found.group(1), "password": found.group(2)})
    signin = urllib.request.Request(f"http://127.0.0.1:{base + 1}/v1/auth/token", form.encode())
    with urllib.request.urlopen(signin, timeout=10) as response:
        token: str = json.loads(response.read())["access_token"]
    return token


def demo_org_id(output: list[str]) -> str:
    org = re.search(r"demo org: .*\(([0-9a-f-]{36})\)", "".join(output))
    assert org, "".join(output)
    return org.group(1)


def check_seeded_documents(output: list[str], base: int, run: int) -> None:
    """The first run tops up and imports the OpenAPI documents, the second says they were
    there already; the portal documents the seeded operations, and a test key gets the
    gateway's mock (the document's example), not the upstream."""
    said = {
        1: (
            "demo org credits: 100000 topped up now (balance 100000)",
            "API `demo`: OpenAPI document demo-openapi.yaml imported (6 operations;",
            "API `sms`: OpenAPI document sms-openapi.yaml imported (3 operations;",
        ),
        2: (
            "demo org credits: 100000 topped up on an earlier run (balance ",
            "API `demo`: OpenAPI document demo-openapi.yaml (6 operations) imported before",
            "API `sms`: OpenAPI document sms-openapi.yaml (3 operations) imported before",
        ),
    }
    text = "".join(output)
    for expected in said[run]:
        assert expected in text, text

    portal = f"http://127.0.0.1:{base + 5}/portal/apis"
    with urllib.request.urlopen(f"{portal}/demo/openapi.json", timeout=10) as response:
        demo = json.loads(response.read())
    hello = demo["paths"]["/hello"]["get"]
    assert hello["x-tollgate-price"] == 1
    example = hello["responses"]["200"]["content"]["application/json"]["example"]
    assert example == {"message": "hello from the demo upstream"}
    with urllib.request.urlopen(f"{portal}/sms/openapi.json", timeout=10) as response:
        sms = json.loads(response.read())
    assert {(path, method) for path, item in sms["paths"].items() for method in item} >= {
        ("/sms/messages", "post"),
        ("/sms/messages", "get"),
        ("/sms/messages/{message_id}", "get"),
    }

    if run == 1:
        token = admin_token(output, base)
        create = urllib.request.Request(
            f"http://127.0.0.1:{base + 1}/v1/orgs/{demo_org_id(output)}/keys",
            data=json.dumps({"name": "portal test key", "environment": "test"}).encode(),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(create, timeout=10) as response:
            test_key = json.loads(response.read())["key"]
        assert test_key.startswith("tg_test_")
        gateway = f"http://127.0.0.1:{base}"
        hello_answer = eventually_ok(
            urllib.request.Request(f"{gateway}/demo/hello", headers={"X-API-Key": test_key})
        )
        assert hello_answer == example
        send = urllib.request.Request(
            f"{gateway}/sms/sms/messages",
            data=json.dumps({"to": "+41791234567", "from": "+15005550100", "text": "hi"}).encode(),
            headers={"X-API-Key": test_key, "content-type": "application/json"},
        )
        with urllib.request.urlopen(send, timeout=10) as response:
            assert response.status == 202
            mocked = json.loads(response.read())
        documented = sms["paths"]["/sms/messages"]["post"]["responses"]["202"]
        assert mocked == documented["content"]["application/json"]["example"]  # nothing sent


def check_no_exhausted_mail(mail: Path) -> None:
    """The demo org is funded before billing hears of it: nobody is told its credits are
    exhausted (billing announces a new unfunded prepaid org exhausted at once)."""
    time.sleep(1.0)  # the notice came within a second of the seeding when it was sent
    subjects = [
        line
        for path in (mail.glob("*.txt") if mail.exists() else [])
        for line in path.read_text().splitlines()
        if line.startswith("Subject: ")
    ]
    assert not [s for s in subjects if "exhausted" in s], subjects


def check_counts(output: list[str], base: int, calls: int) -> None:
    """Usage counts, and billing charges, exactly `calls` requests of the demo org
    (price 1 credit each, from the seeded credits)."""
    credits = re.search(r"demo org credits: (\d+) topped up", "".join(output))
    assert credits, "".join(output)
    auth = {"authorization": f"Bearer {admin_token(output, base)}"}
    org_id = demo_org_id(output)

    def counted() -> tuple[int, int]:
        summary = urllib.request.Request(
            f"http://127.0.0.1:{base + 2}/v1/usage/summary?org_id={org_id}", headers=auth
        )
        with urllib.request.urlopen(summary, timeout=10) as response:
            requests = int(json.loads(response.read())["requests"])
        balance = urllib.request.Request(
            f"http://127.0.0.1:{base + 3}/v1/orgs/{org_id}/balance", headers=auth
        )
        with urllib.request.urlopen(balance, timeout=10) as response:
            spent = int(credits.group(1)) - int(json.loads(response.read())["balance"])
        return requests, spent

    deadline = time.monotonic() + 30
    seen = counted()
    while seen != (calls, calls) and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = counted()
    time.sleep(1.0)  # anything counted twice late would show now
    assert counted() == (calls, calls), f"usage requests, billing credits spent: {seen}"


def stop_cleanly(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C: the stack exits 0 and leaves no process behind."""
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 7  # five services, the console and the upstream
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, rest
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, f"left running: {survivors}"
