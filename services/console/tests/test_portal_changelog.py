"""The portal's changelog page per API: versions newest first, breaking changes flagged,
paged, in English and Chinese; read from accounts' public changelog
(`/v1/catalog/{slug}/changelog`) by anonymous and signed-in visitors alike."""

from __future__ import annotations

import uuid

from .fakes import FakeBackends, catalog_body, console, sign_in

PET_ID = str(uuid.uuid4())
V2 = {
    "id": str(uuid.uuid4()),
    "api_id": PET_ID,
    "api_version": "2.0.0",
    "version": 5,
    "imported_at": "2026-11-29T10:00:00Z",
    "breaking": 2,
    "changes": [
        {
            "kind": "changed",
            "method": "GET",
            "path": "/pets",
            "rule": "new-required-parameter",
            "location": "query",
            "name": "owner",
        },
        {"kind": "removed", "method": "POST", "path": "/pets", "rule": "removed-operation"},
        {"kind": "added", "method": "GET", "path": "/owners/<script>"},
    ],
}
V1 = {
    "id": str(uuid.uuid4()),
    "api_id": PET_ID,
    "api_version": "1.0.0",
    "version": 2,
    "imported_at": "2026-11-28T10:00:00Z",
    "breaking": 0,
    "changes": [{"kind": "added", "method": "GET", "path": "/pets"}],
}


def changelog_fake() -> FakeBackends:
    fake = FakeBackends()
    fake.catalog = [catalog_body(PET_ID, "petstore", "Petstore")]
    fake.catalog_changelogs = {"petstore": [V2, V1]}
    return fake


async def test_changelog_lists_versions_with_breaking_changes_flagged() -> None:
    async with console(changelog_fake()) as client:
        await sign_in(client)
        page = await client.get("/portal/apis/petstore/changelog")
        older = await client.get("/portal/apis/petstore/changelog", params={"cursor": "1"})

    assert page.status_code == 200
    assert "Version 2.0.0" in page.text
    assert "2 breaking changes" in page.text
    assert page.text.count('data-testid="portal-change-breaking"') == 2
    assert "New required query parameter owner" in page.text
    assert "Operation removed" in page.text
    assert "/owners/&lt;script&gt;" in page.text
    assert 'data-testid="portal-changelog-older"' in page.text
    assert "Version 1.0.0" in older.text
    assert "No breaking changes" in older.text
    assert 'data-testid="portal-changelog-older"' not in older.text


async def test_changelog_speaks_chinese() -> None:
    async with console(changelog_fake()) as client:
        await sign_in(client)
        page = await client.get(
            "/portal/apis/petstore/changelog", headers={"accept-language": "zh-CN"}
        )

    assert "变更日志" in page.text
    assert "2 项破坏性变更" in page.text
    assert "新增必填 query 参数 owner" in page.text


async def test_anonymous_visitors_read_the_public_changelog() -> None:
    fake = changelog_fake()
    async with console(fake) as client:
        page = await client.get("/portal/apis/petstore/changelog")
        docs = await client.get("/portal/apis/petstore")

    assert page.status_code == 200
    assert "Version 2.0.0" in page.text
    assert "New required query parameter owner" in page.text
    assert 'data-testid="portal-changelog-link"' in docs.text
    # Only the public catalog was asked, without a token: never the registry.
    assert {c[2] for c in fake.calls} <= {
        "/v1/catalog/petstore",
        "/v1/catalog/petstore/changelog",
        "/v1/catalog/petstore/openapi",
    }


async def test_unknown_api_is_404_and_a_closed_catalog_sends_visitors_to_sign_in() -> None:
    fake = changelog_fake()
    fake.catalog_public = False
    async with console(fake) as client:
        anonymous = await client.get("/portal/apis/petstore/changelog")
        await sign_in(client)
        signed_in = await client.get("/portal/apis/petstore/changelog")
        unknown = await client.get("/portal/apis/nope/changelog")

    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"].startswith("/signin")
    assert signed_in.status_code == 200
    assert "Version 2.0.0" in signed_in.text
    assert unknown.status_code == 404
