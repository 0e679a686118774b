"""The audit-record subscriber in process (FastStream's in-memory test broker): a batch
with a poison record in it stores the readable records once, and a redelivered batch
stores nothing more. The path through a real broker is test_consumed.py's service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from faststream.kafka import TestKafkaBroker
from sqlalchemy import func, select

from tollgate.accounts.audit.consumers import audit_consumers
from tollgate.accounts.models import AuditEntry
from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.audit import AuditRecorded
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import make_broker, topic_name

from ..factories import settings_for


def record(org_id: uuid.UUID) -> bytes:
    recorded = AuditRecorded(
        service="usage",
        org_id=org_id,
        actor_id=uuid.uuid4(),
        action="usage.export",
        target_type="org",
        target_id=str(org_id),
        at=datetime.now(UTC),
    )
    return encode(new_event(recorded, source="tollgate/audit/usage-1"))


async def test_batch_stored_once_and_poison_skipped(accounts_db: str, tmp_path: Path) -> None:
    settings = settings_for(accounts_db, kafka="127.0.0.1:9", prefix="inproc.", workdir=tmp_path)
    engine = create_engine(accounts_db, pool_size=2)
    sessions = session_maker(engine)
    org = uuid.uuid4()
    batch = [record(org), record(org)]
    topic = topic_name(topics.AUDIT_RECORDS, settings)
    try:
        broker = make_broker(
            settings, client="accounts", sessions=sessions, routers=[audit_consumers(settings)]
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(batch[0], b"not an event", batch[1], topic=topic)
            await test_broker.publish_batch(*batch, topic=topic)  # redelivered
        async with sessions() as session:
            stored = await session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.org_id == org)
            )
        assert stored == 2
    finally:
        await engine.dispose()
