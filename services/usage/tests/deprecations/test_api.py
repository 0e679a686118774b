"""The operator's record of deprecation notices (`GET /v1/apis/{id}/deprecation-notices`)
over HTTP, in process on a real Postgres and broker: what usage announced for an API and
its routes, newest first, paged; platform admins only, another API's notices never in
the list."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tollgate.contracts.events.accounts import ApiStatus
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.pages import check_list_contract
from tollgate.kit.testing.tokens import TokenMint

from ..analytics.test_api import running, settings_for
from ..factories import completed, migrated
from ..ingest.test_service import as_deliveries, ingest
from .test_service import announce, announce_routes, api_state, route


async def test_operators_see_what_was_announced_for_an_api_and_its_routes(
    database_factory: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    url = await migrated(database_factory("usage"))
    engine = create_engine(url, pool_size=2)
    sessions = session_maker(engine)
    now = datetime.now(UTC)
    api, other_api, forecast, org = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sunset = now + timedelta(days=30)
    try:
        calls = [
            completed(org_id=org, key_id=uuid.uuid4(), api_id=api, route_id=forecast, time=now),
            completed(org_id=org, key_id=uuid.uuid4(), api_id=other_api, time=now),
        ]
        await ingest(sessions, as_deliveries(calls))
        state = api_state(api, status=ApiStatus.ACTIVE).model_copy(
            update={"routes": [route(forecast, "/forecast/{city}", sunset_at=sunset)]}
        )
        assert await announce_routes(sessions, state, now) == {(org, forecast): 1}
        deprecated = state.model_copy(update={"status": ApiStatus.DEPRECATED, "version": 3})
        assert await announce(sessions, deprecated, now) == {org: 1}
        moved = api_state(api, sunset_at=sunset, version=4)  # a Sunset date: told again
        assert await announce(sessions, moved, now) == {org: 1}
        assert await announce(sessions, api_state(other_api), now) == {org: 1}
    finally:
        await engine.dispose()

    mint = TokenMint()
    admin = mint.headers(admin=True)
    async with running(settings_for(url, kafka_bootstrap, topic_prefix), mint) as client:
        notices = await check_list_contract(
            client,
            f"/v1/apis/{api}/deprecation-notices",
            headers=admin,
            expected={(str(forecast), sunset.isoformat()), ("", None), ("", sunset.isoformat())},
            key=lambda n: (
                n["route_id"] or "",
                n["sunset_at"] and datetime.fromisoformat(n["sunset_at"]).isoformat(),
            ),
            page_size=2,
        )
        owner = await client.get(
            f"/v1/apis/{api}/deprecation-notices", headers=mint.headers(orgs={org: "owner"})
        )
        nobody = await client.get(f"/v1/apis/{api}/deprecation-notices")
        unknown = await client.get(f"/v1/apis/{uuid.uuid4()}/deprecation-notices", headers=admin)
        bad_id = await client.get("/v1/apis/not-an-id/deprecation-notices", headers=admin)

    # Newest first: the API with its Sunset date, the API without, the route.
    assert [(n["route_id"], n["orgs_notified"]) for n in notices] == [
        (None, 1),
        (None, 1),
        (str(forecast), 1),
    ]
    assert notices[0]["sunset_at"] is not None
    assert notices[1]["sunset_at"] is None
    assert owner.status_code == 403
    assert nobody.status_code == 401
    assert unknown.status_code == 200
    assert unknown.json()["items"] == []
    assert bad_id.status_code == 422
    for refused in (owner, nobody, bad_id):
        assert refused.headers["content-type"].startswith("application/problem+json")
