"""A key created through the accounts API reaches `tollgate.accounts.keys.v1` on the
real broker within a second, carrying its hash and never the raw key; the running
process never logs the key or the password."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from tollgate.contracts import topics
from tollgate.contracts.decoding import decode_as
from tollgate.contracts.events.accounts import KeyUpserted
from tollgate.kit import apikeys
from tollgate.kit.sealing import new_sealing_key
from tollgate.kit.testing.polling import eventually

from .services import service_process

pytestmark = pytest.mark.system


async def test_created_key_is_on_the_keys_topic_within_a_second(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    pepper = secrets.token_urlsafe(16)
    admin_password = "admin-" + secrets.token_urlsafe(12)
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
            "KEY_PEPPER": pepper,
            "BCRYPT_ROUNDS": "4",
            "ADMIN_EMAIL": "root@example.com",
            "ADMIN_PASSWORD": admin_password,
        },
    )
    accounts.start()
    consumer = AIOKafkaConsumer(
        f"{topic_prefix}{topics.ACCOUNTS_KEYS.name}",
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    raw = ""
    try:
        async with httpx.AsyncClient(base_url=accounts.url, timeout=10) as http:
            token = await http.post(
                "/v1/auth/token",
                data={"username": "root@example.com", "password": admin_password},
            )
            assert token.status_code == 200, token.text
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            org = await http.post("/v1/orgs", json={"name": "Broker test"}, headers=auth)
            assert org.status_code == 201

            # Wait until the consumer has its partitions, so the clock below measures
            # delivery, not the consumer's start-up.
            async def assigned() -> bool:
                return bool(consumer.assignment())

            assert await eventually(assigned, bool, within=10, interval=0.05)

            created = await http.post(
                f"/v1/orgs/{org.json()['id']}/keys",
                json={"name": "broker", "scopes": ["read"], "limits": {"per_second": 7}},
                headers=auth,
            )
            answered = time.monotonic()
            assert created.status_code == 201
            raw = created.json()["key"]
            key_id = uuid.UUID(created.json()["id"])

            record = None
            while record is None and time.monotonic() - answered < 5:
                batches = await consumer.getmany(timeout_ms=100)
                for messages in batches.values():
                    for message in messages:
                        if message.key == str(key_id).encode():
                            record = message
            elapsed = time.monotonic() - answered
        assert record is not None, "the key never reached the keys topic"
        assert elapsed < 1.0, f"took {elapsed:.3f} s"
        assert record.value is not None
        assert raw.encode() not in record.value
        assert all(raw.encode() not in value for _, value in record.headers)
        event = decode_as(record.value, KeyUpserted)
        assert event.data.key_hash == apikeys.hash_key(raw, pepper)
        assert event.data.limits.per_second == 7
        assert event.data.version == 1
        print(f"\nkey visible on {topics.ACCOUNTS_KEYS.name} {elapsed * 1000:.0f} ms after 201")
    finally:
        await consumer.stop()
        accounts.stop()
    logs = accounts.logs()
    assert raw
    assert raw not in logs
    assert admin_password not in logs
