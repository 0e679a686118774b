"""The consumer plumbing every service uses: a poison record is skipped and counted,
a failed handler rewinds its batch (which then comes again), and offsets are
committed only after the handler's transaction, at most every interval while a
backlog is worked off."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import cast

import pytest
from aiokafka.structs import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import REGISTRY

from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.accounts import UserRegistered
from tollgate.kit.kafka import OffsetCommits, readable

TOPIC = "test.tollgate.accounts.events.v1"


def record(value: bytes | None, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=TOPIC,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=cast("bytes", value),
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value or b""),
        headers=(),
    )


def registered() -> bytes:
    data = UserRegistered(
        user_id=uuid.uuid4(), email="a@example.com", locale="en", registered_at=datetime.now(UTC)
    )
    return encode(new_event(data, source="tollgate/accounts/test"))


class Delivery:
    """A batch delivery as the subscriber sees it, recording what was acked when."""

    def __init__(self, size: int, log: list[str]) -> None:
        self.raw_message = tuple(record(registered(), offset=i) for i in range(size))
        self._log = log

    async def ack(self) -> None:
        self._log.append("commit")

    async def nack(self) -> None:
        self._log.append("rewind")


def message(size: int, log: list[str]) -> KafkaMessage:
    return cast("KafkaMessage", Delivery(size, log))


def skipped(group: str) -> float:
    value = REGISTRY.get_sample_value(
        "tollgate_kafka_records_skipped_total", {"group": group, "topic": TOPIC}
    )
    return value or 0.0


@pytest.mark.parametrize(
    "poison",
    [b"not json", b'{"specversion": "1.0"}', b'{"specversion":"1.0","type":"x.unknown.v9"}'],
)
def test_poison_record_is_skipped_and_counted(poison: bytes) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    batch = [record(registered(), 0), record(poison, 1), record(registered(), 2)]
    events = [readable(r, group=group) for r in batch]
    assert [e is not None for e in events] == [True, False, True]  # the rest goes on
    assert skipped(group) == 1


def test_tombstone_is_not_poison() -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    assert readable(record(None), group=group) is None
    assert skipped(group) == 0


async def test_commit_only_after_the_handler_transaction() -> None:
    log: list[str] = []
    commits = OffsetCommits(interval_seconds=60, batch_max=10)

    async def handler() -> None:
        log.append("transaction committed")

    await commits.after(message(3, log), handler)
    assert log == ["transaction committed", "commit"]


async def test_handler_failure_rewinds_and_the_batch_comes_again() -> None:
    log: list[str] = []
    commits = OffsetCommits(interval_seconds=0, batch_max=10)
    attempts = 0

    async def handler() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("database went away")
        log.append("transaction committed")

    batch = message(3, log)
    with pytest.raises(ConnectionError):
        await commits.after(batch, handler)
    assert log == ["rewind"]  # nothing committed: the partition goes back to the batch
    await commits.after(batch, handler)  # the redelivery
    assert log == ["rewind", "transaction committed", "commit"]


async def test_full_batches_commit_at_most_every_interval() -> None:
    log: list[str] = []
    commits = OffsetCommits(interval_seconds=60, batch_max=3)

    async def handler() -> None:
        return None

    for _ in range(5):  # a backlog: every batch full
        await commits.after(message(3, log), handler)
    assert log == []
    await commits.after(message(2, log), handler)  # caught up
    assert log == ["commit"]
