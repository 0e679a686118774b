"""Input that used to reach PostgreSQL (or the JSON encoder) and fail there with a 500
is a 422 problem instead: non-finite numbers and lone UTF-16 surrogates in free-form
JSON (key metadata, OpenAPI documents), YAML keys JSON has no form for, and times whose
offset pushes them out of the years a UTC timestamp can hold."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from .factories import (
    Service,
    User,
    make_admin,
    make_api,
    make_key,
    make_org,
    running,
    settings_for,
)

JSON = {"Content-Type": "application/json"}
YAML = {"Content-Type": "application/yaml"}
FAR_FUTURE = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC
FAR_PAST = "0001-01-01T00:00:00+14:00"  # year 0 in UTC


async def _setup(svc: Service) -> tuple[User, dict[str, str]]:
    admin = await make_admin(svc)
    org = await make_org(svc, admin)
    key = await make_key(svc, admin, org)
    api = await make_api(svc, admin)
    return admin, {"org": str(org), "key": key["id"], "api": api["id"]}


@pytest.fixture
def settings(accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return settings_for(accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path)


async def test_free_form_json_and_times_that_postgres_cannot_hold_are_422(settings) -> None:  # type: ignore[no-untyped-def]
    async with running(settings) as svc:
        admin, ids = await _setup(svc)
        keys = f"/v1/orgs/{ids['org']}/keys"
        key = f"/v1/keys/{ids['key']}"
        openapi = f"/v1/apis/{ids['api']}/openapi"
        doc = b'{"openapi": "3.0.0", "paths": {"/a": {"get": {}}}, '
        cases: list[tuple[str, str, bytes, dict[str, str]]] = [
            ("POST", keys, b'{"name": "k", "metadata": {"a": NaN}}', JSON),
            ("POST", keys, b'{"name": "k", "metadata": {"a": -Infinity}}', JSON),
            ("POST", keys, b'{"name": "k", "metadata": {"a": 1e400}}', JSON),
            ("POST", keys, b'{"name": "k", "metadata": {"a": ["\\ud800"]}}', JSON),
            ("POST", keys, b'{"name": "k", "metadata": {"\\udfff": 1}}', JSON),
            ("PATCH", key, b'{"metadata": {"a": NaN}}', JSON),
            ("POST", keys, b'{"name": "k", "expires_at": "' + FAR_FUTURE.encode() + b'"}', JSON),
            ("PATCH", key, b'{"expires_at": "' + FAR_FUTURE.encode() + b'"}', JSON),
            (
                "POST",
                "/v1/apis",
                b'{"slug": "far-sunset", "name": "n", "upstream_url": "https://93.184.215.14", '
                b'"sunset_at": "' + FAR_FUTURE.encode() + b'"}',
                JSON,
            ),
            (
                "PATCH",
                f"/v1/apis/{ids['api']}",
                b'{"sunset_at": "' + FAR_FUTURE.encode() + b'"}',
                JSON,
            ),
            ("POST", openapi, doc + b'"x": NaN}', JSON),
            ("POST", openapi, doc + b'"x": 1e999}', JSON),
            ("POST", openapi, doc + b'"x": "\\ud800"}', JSON),
            ("POST", openapi, b'{"openapi": "3.0.0", "paths": {"/a\\ud800": {"get": {}}}}', JSON),
            ("POST", openapi, b"openapi: 3.0.0\npaths: {}\nx: .nan\n", YAML),
            ("POST", openapi, b"openapi: 3.0.0\npaths: {}\nx: -.inf\n", YAML),
            ("POST", openapi, b'openapi: 3.0.0\npaths: {}\nx: "\\ud800"\n', YAML),
        ]
        answers = []
        for method, url, body, headers in cases:
            response = await svc.http.request(
                method, url, content=body, headers={**admin.headers, **headers}
            )
            answers.append((method, url, body[-40:], response.status_code))
            if response.status_code == 422:
                assert response.headers["content-type"] == "application/problem+json"
        assert [a for a in answers if a[3] != 422] == []

        # The audit filters take a time too.
        for since in (FAR_FUTURE, FAR_PAST):
            audit = await svc.http.get("/v1/audit", params={"since": since}, headers=admin.headers)
            assert audit.status_code == 422, since
            until = await svc.http.get("/v1/audit", params={"until": since}, headers=admin.headers)
            assert until.status_code == 422, since


async def test_a_nul_in_a_catalog_slug_or_a_key_search_is_no_500(settings) -> None:  # type: ignore[no-untyped-def]
    # Before: both reached PostgreSQL, which refuses NUL in text: a 500 (the catalog's to
    # anyone, no token needed).
    async with running(settings) as svc:
        admin, ids = await _setup(svc)
        for url in (
            "/v1/catalog/a%00b",
            "/v1/catalog/a%00b/openapi",
            "/v1/catalog/a%00b/changelog",
        ):
            assert (await svc.http.get(url)).status_code == 404, url  # no API has it
        search = await svc.http.get(
            f"/v1/orgs/{ids['org']}/keys", params={"q": "a\x00b"}, headers=admin.headers
        )
        assert search.status_code == 422
        assert search.headers["content-type"] == "application/problem+json"


async def test_yaml_keys_without_a_json_form_become_text(settings) -> None:  # type: ignore[no-untyped-def]
    async with running(settings) as svc:
        admin, ids = await _setup(svc)
        url = f"/v1/apis/{ids['api']}/openapi"
        body = (
            b"openapi: 3.0.0\npaths:\n  /a:\n    get: {}\n"
            b"x-dates:\n  2020-01-01: new year\n"
            b"x-binary:\n  ? !!binary aGVsbG8=\n  : hello\n"
            b"x-numbers:\n  1: one\n  1.5: one and a half\n  null: nothing\n"
            b"x-set: !!set {a}\n"
            b"x-date: 2020-01-01\n"
        )
        imported = await svc.http.post(url, content=body, headers={**admin.headers, **YAML})
        assert imported.status_code == 200, imported.text
        served = (await svc.http.get(url, headers=admin.headers)).json()
        assert served["x-dates"] == {"2020-01-01": "new year"}
        assert list(served["x-binary"].values()) == ["hello"]
        assert served["x-date"] == "2020-01-01"
        assert isinstance(served["x-set"], str)
        assert served["x-numbers"] == {"1": "one", "1.5": "one and a half", "null": "nothing"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Upstream-Key", "\ud800"),
        ("X-Upstream-Key", "café"),
        ("X-Upstream-Key", "a\x7fb"),
        ("X-Upstream-Key", "a\x01b"),
        ("X-Upstream-Key", "s3cr3t\n"),
        ("X-Upstream-Key\n", "s3cr3t"),
    ],
)
async def test_upstream_headers_the_gateway_cannot_send_are_422(  # type: ignore[no-untyped-def]
    settings, name: str, value: str
) -> None:
    async with running(settings) as svc:
        admin = await make_admin(svc)
        body = json.dumps(
            {
                "slug": f"hdr-{secrets.token_hex(4)}",
                "name": "n",
                "upstream_url": "https://93.184.215.14",
                "upstream_headers": {name: value},
            }
        )
        created = await svc.http.post(
            "/v1/apis", content=body.encode(), headers={**admin.headers, **JSON}
        )
        assert created.status_code == 422, created.text
        assert value not in created.text
