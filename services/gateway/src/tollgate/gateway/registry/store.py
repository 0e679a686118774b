"""The in-memory registry: keys by hash, APIs by slug, balances and plans by org.

Writers are the state follower's apply methods (one asyncio task); readers are
request handlers on the same loop, so no locking is needed. Every apply drops
records older than what is held (`version`), and a tombstone removes the record
and every hash that pointed at it. Lookups are single dict probes.
"""

from __future__ import annotations

import hmac
import logging
import time

from tollgate.contracts.events.accounts import ApiUpserted, KeyUpserted
from tollgate.contracts.events.billing import BalanceState, PlanState
from tollgate.gateway.registry.plans import PlanRecord
from tollgate.gateway.registry.records import ApiRecord, BalanceRecord, KeyRecord, Window
from tollgate.kit.sealing import Sealer

log = logging.getLogger(__name__)


class Registry:
    """Keys, APIs and balances as last published; read on every request."""

    def __init__(self, sealer: Sealer | None = None, *, refuse_unknown_orgs: bool = False) -> None:
        self._sealer = sealer
        self._refuse_unknown_orgs = refuse_unknown_orgs
        self._keys: dict[str, KeyRecord] = {}
        self._by_hash: dict[bytes, KeyRecord] = {}
        self._apis: dict[str, ApiRecord] = {}
        self._by_slug: dict[str, ApiRecord] = {}
        self._balances: dict[str, BalanceRecord] = {}
        self._plans: dict[str, PlanRecord] = {}
        self._org_ids: dict[str, str] = {}
        self._windows: dict[tuple[Window, ...], tuple[Window, ...]] = {}

    # ------------------------------------------------------------------ reads

    def key_for_hash(self, digest: bytes) -> KeyRecord | None:
        """The key whose current secret, or a rotated secret still in its grace
        period, hashes to `digest`."""
        record = self._by_hash.get(digest)
        if record is None:
            return None
        if hmac.compare_digest(record.key_hash, digest):
            return record
        now = time.time()
        for old, until in record.grace:
            if hmac.compare_digest(old, digest) and now < until:
                return record
        return None

    def api_for_slug(self, slug: str) -> ApiRecord | None:
        return self._by_slug.get(slug)

    def org_blocked(self, org_id: str) -> bool:
        """True when the org is prepaid and out of credits, or (`refuse_unknown_orgs`)
        billing has published nothing for it yet: a new org starts exhausted."""
        balance = self._balances.get(org_id)
        if balance is None:
            return self._refuse_unknown_orgs
        return balance.blocked

    def plan_of(self, org_id: str) -> PlanRecord | None:
        """The org's plan, or None when it has none (no quota, no plan limits)."""
        return self._plans.get(org_id)

    @property
    def key_count(self) -> int:
        return len(self._keys)

    # ------------------------------------------------------------------ writes

    def apply_key(self, key_id: str, event: KeyUpserted | None) -> None:
        """Apply a key state (None = tombstone: the key was deleted)."""
        current = self._keys.get(key_id)
        if event is None:
            if current is not None:
                self._unindex(current)
                del self._keys[key_id]
            return
        if current is not None and event.version <= current.version:
            return
        record = KeyRecord.from_event(event, self._org_ids, self._windows)
        if current is not None:
            self._unindex(current)
        self._keys[key_id] = record
        self._by_hash[record.key_hash] = record
        for old, _until in record.grace:
            self._by_hash.setdefault(old, record)

    def _unindex(self, record: KeyRecord) -> None:
        for digest in (record.key_hash, *(old for old, _ in record.grace)):
            if self._by_hash.get(digest) is record:
                del self._by_hash[digest]

    def apply_api(self, api_id: str, event: ApiUpserted | None) -> None:
        """Apply an API state (None = tombstone: the API was deleted)."""
        current = self._apis.get(api_id)
        if event is None:
            if current is not None:
                del self._apis[api_id]
                if self._by_slug.get(current.slug) is current:
                    del self._by_slug[current.slug]
            return
        if current is not None and event.version <= current.version:
            return
        record = ApiRecord(event, self._sealer)
        if record.credentials_broken:
            log.error(
                "cannot unseal upstream credentials of an API; its calls answer 502",
                extra={"api_id": api_id},
            )
        if current is not None and self._by_slug.get(current.slug) is current:
            del self._by_slug[current.slug]
        self._apis[api_id] = record
        self._by_slug[record.slug] = record

    def apply_balance(self, org_id: str, event: BalanceState | None) -> None:
        """Apply an org's balance state (None = tombstone: forget the org's balance)."""
        current = self._balances.get(org_id)
        if event is None:
            self._balances.pop(org_id, None)
            return
        if current is not None and event.version <= current.version:
            return
        self._balances[org_id] = BalanceRecord(event)

    def apply_plan(self, org_id: str, event: PlanState | None) -> None:
        """Apply an org's plan state (None = tombstone: the org has no plan)."""
        current = self._plans.get(org_id)
        if event is None:
            self._plans.pop(org_id, None)
            return
        if current is not None and event.version <= current.version:
            return
        self._plans[org_id] = PlanRecord(event)
