"""The portal's changelog page per API: versions newest first, breaking changes flagged,
paged, in English and Chinese; sign-in needed (accounts serves it to members only)."""

from __future__ import annotations

import uuid

from .fakes import FakeBackends, api_body, console, sign_in

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
    fake.apis = [api_body(PET_ID, "petstore", "Petstore")]
    fake.changelogs = {PET_ID: [V2, V1]}
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


async def test_unknown_api_is_404_and_anonymous_visitors_sign_in() -> None:
    async with console(changelog_fake()) as client:
        anonymous = await client.get("/portal/apis/petstore/changelog")
        await sign_in(client)
        unknown = await client.get("/portal/apis/nope/changelog")

    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"].startswith("/signin")
    assert unknown.status_code == 404
