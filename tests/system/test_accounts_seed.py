"""`python -m tollgate.accounts seed-demo` (what `make up` runs): an admin, the Demo
org, the `demo` API and a live key; running it again changes nothing and prints the
same key, and the printed admin login works against the running service."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tollgate.kit import apikeys
from tollgate.kit.sealing import new_sealing_key

from .services import service_process

pytestmark = pytest.mark.system(timed=False)


def seed(env: dict[str, str], workdir: Path) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tollgate.accounts",
            "seed-demo",
            "--workdir",
            str(workdir),
            "--upstream-url",
            "http://127.0.0.1:9920",
            "--gateway-url",
            "http://127.0.0.1:9000",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_seed_demo_is_idempotent_and_its_login_works(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    accounts = service_process(
        "accounts",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_factory("accounts"),
        extra={
            "SIGNING_KEY_FILE": str(tmp_path / "signing-keys.pem"),
            "SIGNING_KEY_GENERATE": "true",
            "SEALING_KEYS": new_sealing_key(),
            "KEY_PEPPER": "pepper",
            "BCRYPT_ROUNDS": "4",
            "ALLOW_PRIVATE_UPSTREAMS": "true",
        },
    )
    workdir = tmp_path / "devstack"
    first = seed(accounts.env, workdir)
    second = seed(accounts.env, workdir)
    key = re.search(r"demo key \(local dev key\): (\S+)", first)
    assert key is not None
    raw = key.group(1)
    assert apikeys.well_formed(raw)
    assert first == second
    assert f'curl -H "X-API-Key: {raw}" http://127.0.0.1:9000/demo/hello' in first
    login = re.search(r"admin login: (\S+) / (\S+)", first)
    assert login is not None

    accounts.start()
    try:
        async with httpx.AsyncClient(base_url=accounts.url) as http:
            token = await http.post(
                "/v1/auth/token", data={"username": login.group(1), "password": login.group(2)}
            )
            assert token.status_code == 200
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            orgs = (await http.get("/v1/orgs", headers=auth)).json()["items"]
            assert [o["name"] for o in orgs] == ["Demo"]
            keys = (await http.get(f"/v1/orgs/{orgs[0]['id']}/keys", headers=auth)).json()
            assert [k["last4"] for k in keys["items"]] == [raw[-4:]]
            apis = (await http.get("/v1/apis", headers=auth)).json()["items"]
            assert [(a["slug"], a["upstream_url"]) for a in apis] == [
                ("demo", "http://127.0.0.1:9920")
            ]
    finally:
        accounts.stop()
    assert raw not in accounts.logs()
