"""`make up` (infra/devstack.py): the whole stack comes up ready, seeded with credits
without announcing the demo org exhausted, and Ctrl-C leaves no process behind."""

from __future__ import annotations

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

import psutil
import pytest

from tollgate.kit import localdeps
from tollgate.kit.testing import unique_name

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
                    check_credits_line(output, run)
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


def check_credits_line(output: list[str], run: int) -> None:
    """The first run tops the demo org up, the second says an earlier run did, with the
    balance billing holds."""
    said = {
        1: "demo org credits: 100000 topped up now (balance 100000)",
        2: "demo org credits: 100000 topped up on an earlier run (balance ",
    }
    assert said[run] in "".join(output), "".join(output)


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
