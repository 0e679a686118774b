"""A password reset asked of the real accounts service ends as exactly one email from
the real notifier, whose link sets a new password; the token never reaches a log."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tollgate.kit.sealing import new_sealing_key
from tollgate.kit.testing.polling import eventually

from .services import service_process

pytestmark = pytest.mark.system(timed=False)

LINK = re.compile(r"https?://console\.test/reset-password\?token=([A-Za-z0-9_\-.~%]+)")


async def test_password_reset_mail_round_trip(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    sealing = new_sealing_key()
    mail_dir = tmp_path / "mail"
    accounts = service_process(
        "accounts",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_factory("e2e_accounts"),
        extra={
            "SEALING_KEYS": sealing,
            "SIGNING_KEY_FILE": str(tmp_path / "signing.pem"),
            "SIGNING_KEY_GENERATE": "true",
        },
    )
    notifier = service_process(
        "notifier",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_factory("e2e_notifier"),
        extra={
            "SEALING_KEYS": sealing,
            "EMAIL_DIR": str(mail_dir),
            "CONSOLE_URL": "http://console.test",
        },
    )
    email = f"reset-{uuid.uuid4().hex[:8]}@example.com"
    old_password, new_password = "correct horse battery 1", "staple-Orbit-93-zephyr"
    try:
        accounts.start()
        notifier.start()
        async with httpx.AsyncClient(base_url=accounts.url, timeout=10) as client:
            registered = await client.post(
                "/v1/auth/register", json={"email": email, "password": old_password}
            )
            assert registered.status_code == 201, registered.text
            asked = await client.post("/v1/auth/password-reset", json={"email": email})
            assert asked.status_code == 202

            def reset_mails() -> list[str]:
                # Registration also mailed an email verification link: not this one.
                texts = [p.read_text() for p in sorted(mail_dir.glob("*.txt"))]
                return [t for t in texts if LINK.search(t)]

            await eventually(
                lambda: asyncio.to_thread(reset_mails), lambda found: len(found) >= 1, within=15
            )
            await asyncio.sleep(1.5)  # a duplicate would show up by now
            mails = reset_mails()
            assert len(mails) == 1, mails
            text = mails[0]
            assert email in text
            match = LINK.search(text)
            assert match, text
            token = match.group(1)

            confirmed = await client.post(
                "/v1/auth/password-reset/confirm",
                json={"token": token, "new_password": new_password},
            )
            assert confirmed.status_code == 204, confirmed.text
            login_new = await client.post(
                "/v1/auth/token", data={"username": email, "password": new_password}
            )
            assert login_new.status_code == 200
            login_old = await client.post(
                "/v1/auth/token", data={"username": email, "password": old_password}
            )
            assert login_old.status_code == 401
            reused = await client.post(
                "/v1/auth/password-reset/confirm",
                json={"token": token, "new_password": "another-Long-pass-77"},
            )
            assert reused.status_code in (400, 401, 410, 422)
        for svc in (accounts, notifier):
            logs = svc.logs()
            assert token not in logs
            assert new_password not in logs
    finally:
        accounts.stop()
        notifier.stop()
