"""Publishes request events in batches, never on the request path, losing none.

The request path calls `publish(key, event_type, data, traceparent)` (a deque
append). One task encodes the events (CloudEvents JSON) and produces them in
batches with the kit's aiokafka producer, each record with its request's W3C
`traceparent` header (kept through the spool too). When a batch is not
acknowledged within `events_spill_after_ms`, or fails, the broker is treated as
unreachable: queued and new events go to the on-disk `Spool` instead of piling up
in memory, and a drain loop sends the spool, oldest first, once a metadata probe
succeeds again. Graceful shutdown produces what is queued, or spools it when the
broker is away.

A failed batch may have reached the broker anyway (the request was written, the
answer never came). Without an idempotent producer a resend would duplicate it, so
such a batch is spooled as *doubtful*; before draining it the publisher reads the
request topic and skips the events already there. It reads each partition from the
later of two offsets that no event of the batch can precede: the last offset it knows
was acknowledged (persisted in `acked.json`), and the first record stamped at most a
minute before the batch's oldest event (Kafka's offsets-for-times), so the check reads
what arrived since the batch, never the whole topic, even for a worker with no
acknowledged offsets yet. It ends when the read reaches each partition's end and fails
only when the broker stops answering for `_CHECK_STALL_S`, however long the read.

`kill -9`: every event is journaled (`journal`) before its answer is sent, so the
next start spools what was queued or in flight (as doubtful, checked against the
topic) and loses only the events of requests whose answers were not yet complete;
everything spooled survives and is drained by the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import TopicPartition
from prometheus_client import Counter, Gauge

from tollgate.contracts import topics
from tollgate.contracts.events.gateway import RequestCompleted, RequestRejected
from tollgate.gateway.config import Settings
from tollgate.gateway.events.journal import Journal
from tollgate.gateway.events.spool import DOUBTFUL, FOREIGN_DOUBTFUL, Record, Spool, SpoolLocked
from tollgate.kit.kafka import make_producer, topic_name

log = logging.getLogger(__name__)

PRODUCED = Counter("tollgate_gateway_events_produced_total", "Request events acknowledged")
SPOOLED = Counter("tollgate_gateway_events_spooled_total", "Request events written to the spool")
DROPPED = Counter(
    "tollgate_gateway_events_dropped_total", "Request events lost (spool full); must stay 0"
)
DEDUPLICATED = Counter(
    "tollgate_gateway_events_deduplicated_total",
    "Spooled events skipped on drain because the broker already had them",
)
CHECK_READ = Counter(
    "tollgate_gateway_doubt_check_records_read_total",
    "Records of the request topic read to check doubtful events before resending them",
)
SPOOL_BYTES = Gauge("tollgate_gateway_spool_bytes", "Bytes waiting in the event spool")
UNJOURNALED = Counter(
    "tollgate_gateway_events_unjournaled_total",
    "Request events queued without their journal copy (the disk refused it): lost if the "
    "process dies before they are produced or spooled",
)

COMPLETED = RequestCompleted.event_type
REJECTED = RequestRejected.event_type
_CONTENT_TYPE = ("content-type", b"application/cloudevents+json")
_PROBE_TIMEOUT_S = 2.0
_SETTLE_S = 1.0
_CHECK_STALL_S = 30.0  # a doubtful check that reads nothing new this long is retried
_CLOCK_MARGIN_MS = 60_000  # record timestamps vs event times: same clock, small steps
_ADOPT_EVERY_S = 10.0  # how often a running process looks for spools nobody holds
_LOCK_WAIT_S = 10.0  # a process taking this spool over holds its lock for a moment


class CachedPartitioner:
    """aiokafka's default partitioner (Java client's murmur2 of the key) with the hash
    cached per key: aiokafka computes murmur2 in pure Python for every record, and the
    gateway's keys are org ids, few and repeated. Same partition for every key."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._hashes: dict[bytes, int] = {}
        self._max = max_keys
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            partition: int = self._default(key, all_partitions, available)
            return partition
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


class EventPublisher:
    """Batches, produces and, when Kafka is away, spools request events."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = topic_name(topics.GATEWAY_REQUESTS, settings)
        self._source = f"tollgate/gateway/{settings.instance_id}"
        self._queue: deque[tuple[int, Record]] = deque()  # (sequence, encoded record)
        self._seq = time.time_ns()
        self._wake = asyncio.Event()
        self._spool = Spool(settings.spool_path, settings.spool_max_bytes, wait_s=_LOCK_WAIT_S)
        self._recover_journal(self._spool)
        self._journal = Journal(settings.spool_path, self._seq + 1)
        self._acked_path = settings.spool_path / "acked.json"
        self._acked: dict[int, int] = _load_acked(self._acked_path, self._topic)
        # The doubtful segments a predecessor left are checked from its last acknowledged
        # offsets, not ours: draining the first of them moves ours past the others.
        self._inherited = {p.name for p in self._spool.segments() if p.name.endswith(DOUBTFUL)}
        self._inherited_acked = dict(self._acked)
        self._next_adoption = 0.0
        self._adopting: asyncio.Future[None] | None = None
        self._acked_saved = 0.0
        self._degraded = not self._spool.empty
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inflight: list[tuple[int, Record]] | None = None  # the batch being sent
        self._journal_refused = False  # logged once; `UNJOURNALED` counts every one
        SPOOL_BYTES.set(self._spool.size)

    # ------------------------------------------------------------------ request path

    def publish(
        self, key: str | None, event_type: str, data: dict[str, Any], traceparent: str
    ) -> None:
        """Queue one event (`data` per the contract; `time` as epoch seconds) and the
        `traceparent` its record carries as a header. Call it before the answer is sent:
        the event is journaled to disk before this returns."""
        self._seq += 1
        record = (
            key.encode() if key else None,
            self._encode(event_type, data),
            traceparent.encode(),
        )
        try:
            self._journal.append(self._seq, record)
        except OSError as exc:  # a full or failing disk: sent all the same, only not
            UNJOURNALED.inc()  # safe from a kill -9 until then
            if not self._journal_refused:
                self._journal_refused = True
                log.error("the event journal refused an event", extra={"error": str(exc)})
        self._queue.append((self._seq, record))
        if len(self._queue) >= self._settings.events_batch_size:
            self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        producer = make_producer(self._settings, client="gateway")
        # The kit's factory takes no partitioner; aiokafka reads this attribute per send.
        producer._partitioner = CachedPartitioner()
        for attempt in range(60):
            try:
                await producer.start()
                break
            except Exception:
                if attempt == 59:
                    raise
                await asyncio.sleep(0.5)
        self._producer = producer
        self._task = asyncio.create_task(self._run(), name="gateway-events")

    async def close(self, grace_s: float = 10.0) -> None:
        """Produce (or spool) everything queued, then stop the producer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._adopting is not None:  # a spool being taken over, in a thread
            await asyncio.wait({self._adopting})
        try:
            if self._inflight is not None:  # cancelled while a batch was unacknowledged
                records = [record for _seq, record in self._inflight]
                _path, refused = self._spool.write_doubtful(self._inflight[0][0], records)
                self._count_spooled(len(records) - refused, refused)
            self._spill_queue()  # whatever is left goes to disk, never nowhere
        except OSError as exc:
            log.error(
                "could not spool the queued request events; the journal keeps them for "
                "the next start",
                extra={"error": str(exc), "events": len(self._queue)},
            )
            self._journal.close(remove=False)
        else:
            self._journal.close(remove=True)  # everything is on the topic or in the spool
        self._spool.close()
        self._save_acked(force=True)
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 5.0)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def degraded(self) -> bool:
        return self._degraded

    # ------------------------------------------------------------------ sender

    async def _run(self) -> None:
        linger = self._settings.events_linger_ms / 1000
        while True:
            try:
                if await self._step(linger):
                    return
            except Exception as exc:
                # A disk that refuses the spool (full, failing): a batch taken from the
                # queue goes back to its front, and the sender tries again; the journal
                # still holds every event not settled.
                log.error("the event sender failed; retrying", extra={"error": repr(exc)})
                if self._inflight is not None:
                    self._queue.extendleft(reversed(self._inflight))
                    self._inflight = None
                if self._closing:
                    return
                await asyncio.sleep(0.5)

    async def _step(self, linger: float) -> bool:
        """One turn of the sender; True once it is closing and has nothing left to do."""
        if not self._degraded and not self._closing and time.monotonic() >= self._next_adoption:
            self._next_adoption = time.monotonic() + _ADOPT_EVERY_S
            orphans = self._lock_orphans()
            if orphans:
                # File work, off the loop; `close()` waits for it (a thread goes on).
                self._adopting = asyncio.ensure_future(asyncio.to_thread(self._adopt, orphans))
                await asyncio.shield(self._adopting)
                self._adopting = None
        if not self._queue and not self._degraded:
            if self._closing:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), linger)
            self._wake.clear()
            return False
        if self._degraded:
            self._spill_queue()
            if await self._drain_spool():
                self._degraded = False
                log.info("event spool drained; producing directly again")
                return False
            if self._closing:
                return True
            await asyncio.sleep(0.5)
            return False
        if not self._closing and len(self._queue) < self._settings.events_batch_size:
            # Let a batch fill for at most one linger period.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), linger)
            self._wake.clear()
        batch = self._take_batch()
        if batch:
            await self._send_live(batch)
        return False

    def _take_batch(self) -> list[tuple[int, Record]]:
        size = min(len(self._queue), self._settings.events_batch_size)
        return [self._queue.popleft() for _ in range(size)]

    def _encode(self, event_type: str, data: dict[str, Any]) -> bytes:
        data["time"] = _iso(data["time"])
        return orjson.dumps(
            {
                "specversion": "1.0",
                "id": data["request_id"],
                "source": self._source,
                "type": event_type,
                "time": data["time"],
                "datacontenttype": "application/json",
                "data": data,
            }
        )

    async def _send_live(self, batch: list[tuple[int, Record]]) -> None:
        records = [record for _seq, record in batch]
        last = batch[-1][0]
        self._inflight = batch
        sending = asyncio.create_task(self._produce(records))
        spill_after = self._settings.events_spill_after_ms / 1000
        done, _ = await asyncio.wait({sending}, timeout=spill_after)
        doubt: Path | None = None
        if not done:
            # The broker is not answering: put the unacknowledged batch on disk now (as
            # doubtful: it may still land), so a crash from here on loses nothing.
            log.warning("kafka is not acknowledging request events; spooling to disk")
            self._degraded = True
            doubt, refused = self._spool.write_doubtful(batch[0][0], records)
            self._count_spooled(len(records) - refused, refused)
            self._journal.settled(last)
            self._inflight = None
            while not sending.done():
                self._spill_queue()
                await asyncio.wait({sending}, timeout=0.2)
        self._inflight = None
        error = sending.exception()
        if error is None:
            if doubt is None:
                self._journal.settled(last)
            if doubt is not None:
                self._spool.remove(doubt)  # acknowledged after all
                SPOOL_BYTES.set(self._spool.size)
            return
        log.warning(
            "a batch of request events failed; spooled as doubtful",
            extra={"error": type(error).__name__, "events": len(records)},
        )
        self._degraded = True
        if doubt is None:
            _path, refused = self._spool.write_doubtful(batch[0][0], records)
            self._count_spooled(len(records) - refused, refused)
            self._journal.settled(last)
        self._spill_queue()

    async def _produce(self, records: list[Record]) -> None:
        """Produce `records` in order per partition and wait for every acknowledgement.

        Records are partitioned here (the producer's own partitioner: murmur2 of the
        key) and appended to one aiokafka batch per partition, submitted with
        `send_batch`: one future per batch instead of one `send()` (with its metadata
        wait, serializer calls and future) per record.
        """
        producer = self._producer
        assert producer is not None
        topic = self._topic
        await producer.client._wait_on_metadata(topic)
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            partition = producer._partition(topic, None, None, None, record[0], record[1])
            by_partition.setdefault(partition, []).append(record)
        sent: list[tuple[asyncio.Future[Any], int]] = []  # (batch future, records in it)
        for partition, group in by_partition.items():
            batch = producer.create_batch()
            count = 0
            for key, value, traceparent in group:
                headers = [_CONTENT_TYPE]
                if traceparent:
                    headers.append(("traceparent", traceparent))
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    sent.append(
                        (await producer.send_batch(batch, topic, partition=partition), count)
                    )
                    batch = producer.create_batch()
                    count = 0
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        raise ValueError("a request event is larger than a produce batch")
                count += 1
            if count:
                sent.append((await producer.send_batch(batch, topic, partition=partition), count))
        results = await asyncio.gather(*(future for future, _count in sent))
        for meta, (_future, count) in zip(results, sent, strict=True):
            # The batch's base offset + its records: our batches are sequential, so
            # the latest is the highest, unless the log was reset (then it is lower).
            self._acked[meta.partition] = meta.offset + count
        PRODUCED.inc(len(records))
        self._save_acked()

    def _spill_queue(self) -> None:
        if not self._queue:
            return
        first = self._queue[0][0]
        last = self._queue[-1][0]
        records = [record for _seq, record in self._queue]
        refused = self._spool.append(first, records)  # a disk error keeps the queue
        self._queue.clear()
        self._count_spooled(len(records) - refused, refused)
        self._journal.settled(last)

    def _recover_journal(self, spool: Spool) -> None:
        """Spool, as doubtful, the events a killed process journaled in `spool`'s
        directory but had not settled; those the spool already holds are skipped."""
        paths, records = Journal.recover(spool.directory)
        if records:
            spooled: set[bytes] = set()
            firsts = [self._seq]
            for path in spool.segments():
                firsts.append(int(path.name[:20]))
                spooled.update(_event_id(value) for _key, value, _tp in Spool.read(path))
            missing = [r for r in records if _event_id(r[1]) not in spooled]
            if missing:
                # Named to drain first, while the persisted acknowledged offsets still
                # precede anything the dead process may have produced of them.
                _path, refused = spool.write_doubtful(min(firsts) - 1, missing)
                self._count_spooled(len(missing) - refused, refused)
            log.warning(
                "events journaled before a crash are spooled to be checked and sent",
                extra={"events": len(missing), "already_spooled": len(records) - len(missing)},
            )
        for path in paths:
            path.unlink()

    def _lock_orphans(self) -> list[Spool]:
        """The spools of this gateway's processes that are gone, locked: an older
        generation's workers (after a reload while the broker was away), a slot no
        longer used, a gateway that ran without workers. A running process holds its
        own, so this costs a few globs and failed `flock`s when there is none."""
        root = self._settings.spool_dir
        assert root is not None
        own = self._settings.spool_path
        found: list[Spool] = []
        for directory in (root, *sorted(root.glob("worker-*"))):
            if directory == own or not (
                any(directory.glob("*.seg")) or any(directory.glob("*.wal"))
            ):
                continue
            with contextlib.suppress(SpoolLocked, OSError):  # a running process's
                found.append(Spool(directory, self._settings.spool_max_bytes))
        return found

    def _adopt(self, orphans: list[Spool]) -> None:
        """Recover each orphan spool like our own (its journal) and move its segments
        into ours, oldest first, as many as fit in half of `spool_max_bytes` (the other
        half stays for our own events, should the broker go away meanwhile): the rest
        is taken on later turns. Then let go of it."""
        room = self._spool.max_bytes // 2 - self._spool.size
        for orphan in orphans:
            try:
                self._recover_journal(orphan)
                fitting: list[Path] = []
                for path in orphan.segments():
                    size = path.stat().st_size
                    if size > room and (fitting or self._spool.size):
                        break  # (one segment is always taken into an empty spool)
                    fitting.append(path)
                    room -= size
                moved = self._spool.adopt(fitting)
            except OSError as exc:
                log.error(
                    "cannot take over a stopped gateway process's spool",
                    extra={"spool": str(orphan.directory), "error": str(exc)},
                )
                continue
            finally:
                orphan.close()
            if moved:
                self._degraded = True  # drained by the spool's usual path
                SPOOL_BYTES.set(self._spool.size)
                log.warning(
                    "took over the spool of a stopped gateway process",
                    extra={"spool": str(orphan.directory), "segments": moved},
                )

    def _count_spooled(self, spooled: int, dropped: int) -> None:
        SPOOLED.inc(spooled)
        if dropped:
            DROPPED.inc(dropped)
            log.error("event spool full: events dropped", extra={"dropped": dropped})
        SPOOL_BYTES.set(self._spool.size)

    # ------------------------------------------------------------------ drain

    async def _broker_answers(self) -> bool:
        assert self._producer is not None
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), _PROBE_TIMEOUT_S)
        except Exception:
            return False
        return True

    async def _drain_spool(self) -> bool:
        """Send every spooled segment, oldest first; True when the spool is empty.

        Events arriving meanwhile wait in memory (spilled only past
        `events_memory_max`), so each round is shorter than the last and the loop ends.
        """
        if not await self._broker_answers():
            return False
        while True:
            self._spool.close_segment()
            segments = self._spool.segments()
            if not segments:
                return True
            for path in segments:
                if not await self._drain_segment(path):
                    return False
                if len(self._queue) > self._settings.events_memory_max:
                    self._spill_queue()

    async def _drain_segment(self, path: Path) -> bool:
        records = Spool.read(path)
        doubtful = path.name.endswith(DOUBTFUL)
        if doubtful:
            await asyncio.sleep(_SETTLE_S)  # let requests the broker still holds land
            acked = self._acked
            if path.name.endswith(FOREIGN_DOUBTFUL):
                acked = {}  # our acknowledged offsets bound only our own batches
            elif path.name in self._inherited:
                acked = self._inherited_acked
            try:
                records = await self._not_yet_on_topic(records, acked)
            except Exception as exc:
                log.warning("cannot check doubtful events yet", extra={"error": repr(exc)})
                return False
        try:
            if records:
                await asyncio.wait_for(
                    self._produce(records), self._settings.events_spill_after_ms / 1000 * 5
                )
        except asyncio.CancelledError:  # a shutdown past its grace, mid-send
            if not doubtful:
                self._spool.mark_doubtful(path)
            raise
        except Exception as exc:
            log.warning("spool drain interrupted", extra={"error": type(exc).__name__})
            if not doubtful:
                self._spool.mark_doubtful(path)
            return False
        self._spool.remove(path)
        self._inherited.discard(path.name)
        SPOOL_BYTES.set(self._spool.size)
        log.info("spool segment drained", extra={"events": len(records)})
        return True

    async def _not_yet_on_topic(self, records: list[Record], acked: dict[int, int]) -> list[Record]:
        """The doubtful records whose event id is not on the topic yet; `acked`: the
        offsets after the last batch acknowledged before these were sent."""
        wanted = {_event_id(record[1]): record for record in records}
        since_ms = max(min(_event_ms(record[1]) for record in records) - _CLOCK_MARGIN_MS, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=f"tollgate-gateway-dedup-{self._settings.instance_id}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = [
                TopicPartition(self._topic, p)
                for p in sorted(consumer.partitions_for_topic(self._topic) or ())
            ]
            if not partitions:
                await consumer.topics()
                partitions = [
                    TopicPartition(self._topic, p)
                    for p in sorted(consumer.partitions_for_topic(self._topic) or ())
                ]
            consumer.assign(partitions)
            starts = await _check_starts(consumer, partitions, since_ms, acked)
            for tp in partitions:
                consumer.seek(tp, starts[tp])
            moved = time.monotonic()
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
                read = 0
                for found in batches.values():
                    read += len(found)
                    for record in found:
                        if record.value is None:
                            continue
                        if wanted.pop(_event_id(record.value), None) is not None:
                            DEDUPLICATED.inc()
                CHECK_READ.inc(read)
                done = True
                for tp in partitions:
                    high = consumer.highwater(tp)
                    if high is None or await consumer.position(tp) < high:
                        done = False
                if done:
                    break
                if read:
                    moved = time.monotonic()
                elif time.monotonic() - moved > _CHECK_STALL_S:
                    raise TimeoutError("the request topic stopped answering mid-check")
        finally:
            await consumer.stop()
        return list(wanted.values())

    # ------------------------------------------------------------------ acked offsets

    def _save_acked(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._acked_saved < 1.0:
            return
        self._acked_saved = now
        # While a predecessor's doubtful segment waits, its offsets stay the floor.
        offsets = self._inherited_acked if self._inherited else self._acked
        tmp = self._acked_path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_bytes(
                orjson.dumps(
                    {
                        "topic": self._topic,
                        "next_offsets": {str(k): v for k, v in offsets.items()},
                    }
                )
            )
            tmp.replace(self._acked_path)


async def _check_starts(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    since_ms: int,
    acked: dict[int, int],
) -> dict[TopicPartition, int]:
    """Per partition, an offset no doubtful event stamped after `since_ms` precedes: the
    first record stamped at or after it (or the end, when there is none), moved up to
    the last acknowledged offset when that is known and on the log."""
    ends = await consumer.end_offsets(partitions)
    stamped = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
    starts: dict[TopicPartition, int] = {}
    for tp in partitions:
        found = stamped.get(tp)
        # None, or (Tansu) offset 0 with timestamp -1: no record that recent.
        start = ends[tp] if found is None or found.timestamp < 0 else found.offset
        last = acked.get(tp.partition)
        if last is not None and last <= ends[tp]:  # else from an older life of the topic
            start = max(start, last)
        starts[tp] = start
    return starts


def _load_acked(path: Path, topic: str) -> dict[int, int]:
    try:
        raw = orjson.loads(path.read_bytes())
        if raw.get("topic") == topic:
            return {int(k): int(v) for k, v in raw["next_offsets"].items()}
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return {}


def _event_id(value: bytes) -> bytes:
    """The envelope id of an encoded event (`{"specversion":"1.0","id":"<id>",...`)."""
    start = value.find(b'"id":"') + 6
    return value[start : value.find(b'"', start)]


def _event_ms(value: bytes) -> int:
    """The envelope time of an encoded event, in epoch milliseconds (0 if unreadable:
    the check then reads from the acknowledged offsets or the beginning)."""
    try:
        stamp = orjson.loads(value)["time"]
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except (ValueError, KeyError, TypeError):
        return 0


_SECOND: list[Any] = [None, ""]  # (epoch second, its "YYYY-MM-DDTHH:MM:SS")


def _iso(epoch: float) -> str:
    """RFC 3339 UTC with microseconds; the date and time of day are formatted once per
    second (every event of that second shares them)."""
    second, micros = divmod(round(epoch * 1_000_000), 1_000_000)
    if _SECOND[0] != second:
        _SECOND[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND[0] = second
    return f"{_SECOND[1]}.{micros:06d}Z"
