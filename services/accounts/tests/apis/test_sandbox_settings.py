"""Sandbox settings in the registry: sandbox upstream, mock and validation per API and
route, shown to admins and published to gateways in `ApiUpserted` with the imported
OpenAPI document (up to the published size cap)."""

from __future__ import annotations

from pathlib import Path

from tollgate.contracts.events.accounts import ApiUpserted, SandboxSettings

from ..factories import events, make_admin, make_api, running, settings_for, signup

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"


def _last_upsert(evts: list) -> ApiUpserted:  # type: ignore[type-arg]
    found = [e.data for e in evts if isinstance(e.data, ApiUpserted)]
    return found[-1]


async def test_sandbox_settings_reach_the_event_with_the_document(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(
            svc,
            admin,
            sandbox_url="https://93.184.215.15/sandbox",
            sandbox={"validate_requests": True, "mock_latency_ms": 20},
            routes=[
                {"method": "GET", "path_template": "/pets", "sandbox": {"mock": True}},
                {"method": "GET", "path_template": "/pets/{petId}"},
            ],
        )
        assert api["sandbox_url"] == "https://93.184.215.15/sandbox"
        assert api["sandbox"] == {"validate_requests": True, "mock_latency_ms": 20}
        assert [r["sandbox"] for r in api["routes"]] == [{"mock": True}, None]
        event = _last_upsert(await events(svc, api["id"]))
        assert event.sandbox_url == "https://93.184.215.15/sandbox"
        assert event.sandbox == SandboxSettings(validate_requests=True, mock_latency_ms=20)
        assert [r.sandbox for r in event.routes] == [SandboxSettings(mock=True), None]
        assert event.openapi_document is None

        imported = await svc.http.post(
            f"/v1/apis/{api['id']}/openapi",
            content=PETSTORE.read_bytes(),
            headers={**admin.headers, "Content-Type": "application/yaml"},
        )
        assert imported.status_code == 200, imported.text
        event = _last_upsert(await events(svc, api["id"]))
        assert event.openapi_document is not None
        assert event.openapi_document["info"]["title"] == "Swagger Petstore"

        patched = await svc.http.patch(
            f"/v1/apis/{api['id']}",
            json={"sandbox_url": None, "sandbox": {"mock": True, "mock_stateful": True}},
            headers=admin.headers,
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["sandbox_url"] is None
        event = _last_upsert(await events(svc, api["id"]))
        assert event.sandbox_url is None
        assert event.sandbox == SandboxSettings(mock=True, mock_stateful=True)

        route_id = api["routes"][0]["id"]
        cleared = await svc.http.patch(
            f"/v1/apis/{api['id']}/routes/{route_id}",
            json={"sandbox": None},
            headers=admin.headers,
        )
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["sandbox"] is None
        assert _last_upsert(await events(svc, api["id"])).routes[0].sandbox is None


async def test_bad_sandbox_settings_are_refused(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        member = await signup(svc)
        api = await make_api(svc, admin)
        for body in (
            {"sandbox": {"mock": "yes"}},
            {"sandbox": {"mock_error_percent": 101}},
            {"sandbox": {"mock_latency_ms": -1}},
            {"sandbox": {"unknown": True}},
            {"sandbox_url": "ftp://example.com"},
            {"sandbox_url": "http://169.254.169.254/latest"},
        ):
            response = await svc.http.patch(
                f"/v1/apis/{api['id']}", json=body, headers=admin.headers
            )
            assert response.status_code == 422, (body, response.text)
        # Only admins change an API's sandbox.
        response = await svc.http.patch(
            f"/v1/apis/{api['id']}", json={"sandbox": {"mock": True}}, headers=member.headers
        )
        assert response.status_code == 403
