"""Through the real broker: a PasswordResetRequested event (sealed token), delivered
twice, ends as exactly one email with a working link, and the token is never logged."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.accounts import PasswordResetRequested
from tollgate.kit.kafka import make_producer, topic_name
from tollgate.kit.sealing import Sealer
from tollgate.kit.testing.polling import eventually
from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.app import create_app

from ..factories import SEALING_KEY, migrated, settings_for


def _mails(directory: Path) -> list[str]:
    return [p.read_text() for p in sorted(directory.glob("*.txt"))]


async def test_password_reset_event_becomes_one_email(
    database_factory: Callable[[str], str],
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = await migrated(database_factory("notifier"))
    settings = settings_for(
        url,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        email_dir=str(tmp_path),
        console_url="http://localhost:8081",
        email_backend="log",
    )
    token = f"reset-{uuid.uuid4().hex}"
    event = new_event(
        PasswordResetRequested(
            user_id=uuid.uuid4(),
            email="grace@example.com",
            locale="en",
            reset_token_sealed=Sealer(SEALING_KEY).seal(token),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
        source="tollgate/accounts/test",
    )
    app = create_app(settings, jwt_verifier=TokenMint().verifier())
    async with app.router.lifespan_context(app):
        producer = make_producer(settings, client="test")
        await producer.start()
        try:
            topic = topic_name(topics.ACCOUNTS_EVENTS, settings)
            key = event.data.kafka_key()
            assert key is not None
            for _ in range(2):  # the relay re-sent it after a crash
                await producer.send_and_wait(topic, encode(event), key=key.encode())
        finally:
            await producer.stop()
        mails = await eventually(
            lambda: asyncio.to_thread(_mails, tmp_path), lambda m: len(m) >= 1, within=30
        )
        await asyncio.sleep(1.5)  # give a duplicate every chance to appear
        mails = await asyncio.to_thread(_mails, tmp_path)
    assert len(mails) == 1
    assert "To: grace@example.com" in mails[0]
    assert f"http://localhost:8081/reset-password?token={token}" in mails[0]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "email written" in logged
    assert token not in logged
