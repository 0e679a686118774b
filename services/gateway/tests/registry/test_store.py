"""The registry: versions, tombstones, rotation grace, hashing identical to accounts'."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tollgate.contracts.events.accounts import ApiUpserted, KeyUpserted
from tollgate.contracts.events.billing import BalanceMode, BalanceState, BalanceStatus
from tollgate.gateway.registry.store import Registry
from tollgate.kit import apikeys
from tollgate.kit.sealing import Sealer, new_sealing_key

PEPPER = "pepper"


def digest(raw: str) -> bytes:
    return hmac.digest(PEPPER.encode(), raw.encode(), "sha256")


def key(raw: str, version: int, **fields: Any) -> KeyUpserted:
    return KeyUpserted.model_validate(
        {
            "key_id": fields.pop("key_id", uuid.uuid4()),
            "org_id": uuid.uuid4(),
            "key_hash": apikeys.hash_key(raw, PEPPER),
            "prefix": apikeys.display_prefix(raw),
            "last4": raw[-4:],
            "name": "k",
            "environment": "live",
            "enabled": True,
            "version": version,
            "updated_at": datetime.now(UTC),
            **fields,
        }
    )


def test_gateway_digest_equals_the_published_hash() -> None:
    raw = apikeys.generate().raw
    assert digest(raw).hex() == apikeys.hash_key(raw, PEPPER)
    assert hashlib.sha256(raw.encode()).hexdigest() == apikeys.hash_key(raw)


def test_stale_versions_are_dropped_and_tombstones_delete() -> None:
    registry = Registry()
    raw = apikeys.generate().raw
    key_id = uuid.uuid4()
    registry.apply_key(str(key_id), key(raw, 2, key_id=key_id, enabled=False))
    registry.apply_key(str(key_id), key(raw, 1, key_id=key_id, enabled=True))
    found = registry.key_for_hash(digest(raw))
    assert found is not None
    assert not found.enabled
    registry.apply_key(str(key_id), None)
    assert registry.key_for_hash(digest(raw)) is None
    assert registry.key_count == 0


def test_rotation_keeps_the_old_secret_only_during_its_grace() -> None:
    registry = Registry()
    old, new = apikeys.generate().raw, apikeys.generate().raw
    key_id = uuid.uuid4()
    grace = [
        {
            "key_hash": apikeys.hash_key(old, PEPPER),
            "expires_at": datetime.now(UTC) + timedelta(hours=1),
        }
    ]
    registry.apply_key(str(key_id), key(new, 1, key_id=key_id, retired_secrets=grace))
    assert registry.key_for_hash(digest(old)) is not None
    expired = [
        {
            "key_hash": apikeys.hash_key(old, PEPPER),
            "expires_at": datetime.now(UTC) - timedelta(seconds=1),
        }
    ]
    registry.apply_key(str(key_id), key(new, 2, key_id=key_id, retired_secrets=expired))
    assert registry.key_for_hash(digest(old)) is None
    assert registry.key_for_hash(digest(new)) is not None


def test_api_credentials_are_unsealed_and_a_bad_seal_is_flagged() -> None:
    sealing = new_sealing_key()
    fields: dict[str, Any] = {
        "slug": "s",
        "name": "s",
        "api_version": "v1",
        "upstream_url": "http://u",
        "status": "active",
        "timeout_ms": 100,
        "price": 1,
        "charge_failed_calls": False,
        "updated_at": datetime.now(UTC),
    }
    registry = Registry(Sealer(sealing))
    sealed = Sealer(sealing).seal(orjson.dumps({"Authorization": "Basic abc"}))
    registry.apply_api(
        "a",
        ApiUpserted.model_validate(
            {**fields, "api_id": uuid.uuid4(), "version": 1, "upstream_headers_sealed": sealed}
        ),
    )
    api = registry.api_for_slug("s")
    assert api is not None
    assert api.upstream_headers == (("Authorization", "Basic abc"),)
    other = Sealer(new_sealing_key()).seal(b"{}")
    registry.apply_api(
        "a",
        ApiUpserted.model_validate(
            {**fields, "api_id": uuid.uuid4(), "version": 2, "upstream_headers_sealed": other}
        ),
    )
    api = registry.api_for_slug("s")
    assert api is not None
    assert api.credentials_broken


def test_an_org_billing_never_published_is_refused_only_when_configured() -> None:
    org = str(uuid.uuid4())
    assert not Registry().org_blocked(org)
    strict = Registry(refuse_unknown_orgs=True)
    assert strict.org_blocked(org)  # a new org: no free calls before billing has seen it
    state = BalanceState(
        org_id=uuid.UUID(org),
        balance=100,
        status=BalanceStatus.OK,
        mode=BalanceMode.PREPAID,
        low_threshold=10,
        version=1,
        as_of=datetime.now(UTC),
    )
    strict.apply_balance(org, state)
    assert not strict.org_blocked(org)
