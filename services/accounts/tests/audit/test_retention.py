"""The audit log is append-only: the database refuses UPDATE, DELETE and TRUNCATE on
it, whoever sends them; only the retention purge removes entries, and only those older
than `audit_retention_days`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from tollgate.accounts.audit import retention
from tollgate.accounts.audit.repository import insert_entry
from tollgate.accounts.models import AuditEntry
from tollgate.kit.db import create_engine, session_maker

from ..factories import settings_for


async def test_entries_cannot_be_changed_or_removed_but_expire_after_retention(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        audit_retention_days=30,
    )
    engine = create_engine(accounts_db, pool_size=2)
    sessions = session_maker(engine)
    target = f"retention-{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    try:
        async with sessions() as session, session.begin():
            for age in (31, 29):
                await insert_entry(
                    session,
                    at=now - timedelta(days=age),
                    action="test.retention",
                    target_type="test",
                    target_id=target,
                    diff={"age_days": age},
                )
        mine = AuditEntry.target_id == target
        tampering = (
            update(AuditEntry).where(mine).values(diff={"age_days": 0}),
            delete(AuditEntry).where(mine),
            text("TRUNCATE audit_log"),
        )
        for statement in tampering:
            async with sessions() as session:
                with pytest.raises(DBAPIError, match="append-only"):
                    async with session.begin():
                        await session.execute(statement)

        assert (
            await retention.purge_once(
                sessions, settings.model_copy(update={"audit_retention_days": 0}), now
            )
            == 0
        )
        assert await retention.purge_once(sessions, settings, now) >= 1
        async with sessions() as session:
            left = (await session.scalars(select(AuditEntry.diff).where(mine))).all()
            older = select(func.count()).where(AuditEntry.at < now - timedelta(days=30))
            assert await session.scalar(older) == 0
        assert left == [{"age_days": 29}]
        # The purge's permission ended with its transaction.
        async with sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                async with session.begin():
                    await session.execute(delete(AuditEntry).where(mine))
    finally:
        await engine.dispose()
