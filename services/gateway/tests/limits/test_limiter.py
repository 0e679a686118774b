"""Which limits apply: key, API, route and gateway-wide windows all count."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from tollgate.contracts.events.accounts import ApiUpserted, KeyUpserted
from tollgate.gateway.config import Settings
from tollgate.gateway.limits.limiter import RateLimiter
from tollgate.gateway.registry.records import ApiRecord, KeyRecord


def records(key_limits: dict[str, int] | None = None) -> tuple[KeyRecord, ApiRecord]:
    now = datetime.now(UTC)
    key = KeyRecord.from_event(
        KeyUpserted.model_validate(
            {
                "key_id": uuid.uuid4(),
                "org_id": uuid.uuid4(),
                "key_hash": "a" * 64,
                "prefix": "tg_live_abcd",
                "last4": "abcd",
                "name": "k",
                "environment": "live",
                "enabled": True,
                "limits": key_limits or {"per_hour": 100},
                "version": 1,
                "updated_at": now,
            }
        ),
        {},
        {},
    )
    api = ApiRecord(
        ApiUpserted.model_validate(
            {
                "api_id": uuid.uuid4(),
                "slug": "s",
                "name": "s",
                "api_version": "v1",
                "upstream_url": "http://u",
                "status": "active",
                "timeout_ms": 100,
                "price": 1,
                "charge_failed_calls": False,
                "limits": {"per_minute": 50},
                "version": 1,
                "updated_at": now,
                "routes": [
                    {
                        "route_id": uuid.uuid4(),
                        "method": "GET",
                        "path_template": "/a/{id}",
                        "limits": {"per_second": 3},
                    },
                ],
            }
        ),
        None,
    )
    return key, api


async def test_the_tightest_of_key_api_route_and_global_limits_wins(tmp_path: Path) -> None:
    key, api = records()
    route = api.match_route("GET", "/a/42")
    assert route is not None
    assert api.match_route("POST", "/a/42") is None
    limiter = RateLimiter(Settings(global_per_minute=1000, spool_dir=tmp_path))
    verdicts = [await limiter.check(key, api, route) for _ in range(4)]
    assert [v.allowed for v in verdicts if v is not None] == [True, True, True, False]
    first = verdicts[0]
    assert first is not None
    assert first.policy == (
        '"key-hour";q=100;w=3600, "api-minute";q=50;w=60, '
        '"route-second";q=3;w=1, "global-minute";q=1000;w=60'
    )
    assert first.limit == 3
    # Without the route, the API's and the key's limits still apply (and have room).
    other = await limiter.check(key, api, None)
    assert other is not None
    assert other.allowed
    assert other.limit == 50


async def test_a_monthly_limit_is_a_30_day_window(tmp_path: Path) -> None:
    key, api = records({"per_month": 2})
    limiter = RateLimiter(Settings(spool_dir=tmp_path))
    verdicts = [await limiter.check(key, api, None) for _ in range(3)]
    assert [v.allowed for v in verdicts if v is not None] == [True, True, False]
    refused = verdicts[2]
    assert refused is not None
    assert refused.policy == '"key-month";q=2;w=2592000, "api-minute";q=50;w=60'
    # Both requests sit in the current 3-day slot: it leaves the window 30-33 days on.
    assert 30 * 86400 <= refused.retry_after_s <= 33 * 86400
