"""Bytes of gateway memory per API key held in the registry.

Applies N `KeyUpserted` states (default 1,000,000: same org for groups of 100 keys,
a per-minute limit, no allowlists, like typical keys) to a fresh `Registry` exactly
as the state follower does, and reports the memory the registry retains per key
(tracemalloc: Python allocations still alive after the events are gone) and the
process RSS growth.

    .venv/bin/python bench/gateway/memory_per_key.py [--keys 1000000]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
import uuid
from datetime import UTC, datetime

import psutil

from tollgate.contracts.events.accounts import KeyUpserted
from tollgate.gateway.registry.store import Registry
from tollgate.kit import apikeys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    registry = Registry()
    now = datetime.now(UTC)
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    started = time.perf_counter()
    org = uuid.uuid4()
    for index in range(args.keys):
        if index % 100 == 0:
            org = uuid.uuid4()
        key_id = uuid.uuid4()
        raw = apikeys.generate().raw
        event = KeyUpserted(
            key_id=key_id,
            org_id=org,
            key_hash=apikeys.hash_key(raw, "pepper"),
            prefix=apikeys.display_prefix(raw),
            last4=raw[-4:],
            name="key",
            environment="live",
            enabled=True,
            limits={"per_minute": 600},
            version=1,
            updated_at=now,
        )
        registry.apply_key(str(key_id), event)
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    elapsed = time.perf_counter() - started
    rss_after = process.memory_info().rss
    print(f"keys                 {registry.key_count:>12,}")
    print(f"retained (tracemalloc) {(held - base) / registry.key_count:>10.0f} bytes/key")
    print(f"RSS growth           {(rss_after - rss_before) / registry.key_count:>12.0f} bytes/key")
    print(f"apply time           {elapsed / registry.key_count * 1e6:>12.1f} us/key (traced)")


if __name__ == "__main__":
    main()
