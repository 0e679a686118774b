"""`make up` (infra/devstack.py): the whole stack comes up ready and Ctrl-C leaves
no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tollgate.kit import localdeps
from tollgate.kit.testing import unique_name

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"gateway": 0, "accounts": 1, "usage": 2, "billing": 3, "notifier": 4, "console": 5}


def free_port_base() -> int:
    """A base port with base..base+5 and base+920 all free, below the kernel's ephemeral
    range (so no outgoing connection of this machine can be holding one of them)."""
    return localdeps.free_port_block((*SERVICES.values(), 920))


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


def test_make_up_serves_and_stops_cleanly(
    tmp_path: Path, kafka_bootstrap: str, postgres_admin_url: str
) -> None:
    base = free_port_base()
    prefix = unique_name("devstack") + "_"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_IDEMPOTENCE": "false",
        "DATABASE_URL": postgres_admin_url,
        "DEVSTACK_PORT_BASE": str(base),
        "DEVSTACK_DATABASE_PREFIX": prefix,
        "DEVSTACK_WORKDIR": str(tmp_path),
    }
    with subprocess.Popen(
        [sys.executable, str(ROOT / "infra" / "devstack.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            check_stack(proc, base)
        finally:
            if proc.poll() is None:
                proc.kill()
            for name in ("accounts", "usage", "billing", "notifier"):
                localdeps.drop_database(postgres_admin_url, f"{prefix}{name}")


def check_stack(proc: subprocess.Popen[str], base: int) -> None:
    """Wait for the ready banner, probe every service, Ctrl-C, look for survivors."""
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
    curl = next(line for line in output if "curl -H" in line)
    key = re.search(r"X-API-Key: (tg_live_[0-9A-Za-z]+)", curl)
    url = re.search(r"(http://127\.0\.0\.1:\d+/demo/hello)", curl)
    assert key, curl
    assert url, curl
    answer = eventually_ok(
        urllib.request.Request(url.group(1), headers={"X-API-Key": key.group(1)})
    )
    assert answer == {"message": "hello from the demo upstream"}

    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 7  # five services, the console and the upstream
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, rest
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, f"left running: {survivors}"
