"""The operator's registry writes, org balances and admin grants in process against a
fake of accounts' `/v1/apis` and `/v1/users` and billing's `/v1/balances`: the forms'
bodies are accounts' shapes, credentials are write-only, accounts' problem+json lands
next to the field it names, every form needs its CSRF token, and non-admins reach
nothing."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tollgate.console.i18n import Formats

from .fakes import (
    NOW,
    FakeBackends,
    api_body,
    console,
    csrf,
    problem,
    route_body,
    sign_in,
    user_body,
)

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@dataclass
class RegistryFake(FakeBackends):
    """Accounts' registry writes and billing's operator list on top of the shared fake."""

    writes: list[tuple[str, str, Any]] = field(default_factory=list)
    imported: list[tuple[bytes, str, str | None]] = field(default_factory=list)
    fetched: list[tuple[str, str | None]] = field(default_factory=list)
    balances: dict[str, dict[str, Any]] = field(default_factory=dict)
    balance_params: list[list[tuple[str, str]]] = field(default_factory=list)
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _api(self, api_id: str) -> dict[str, Any] | None:
        return next((a for a in self.apis if a["id"] == api_id), None)

    def _admin_only(self) -> httpx.Response | None:
        return None if self.admin else problem(403, "Forbidden", "Platform admins only.")

    @staticmethod
    def _sunset_in_past(body: dict[str, Any]) -> httpx.Response | None:
        """Accounts' check of a route's Sunset (RFC 3339 in UTC here, so text compares)."""
        sunset = body.get("sunset_at")
        if sunset and sunset <= datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"):
            detail = "sunset_at must be in the future."
            return problem(422, "Unprocessable Content", detail, type="x/sunset-in-past")
        return None

    def accounts_post(self, request: httpx.Request, path: str) -> httpx.Response:
        grant = re.fullmatch(r"/v1/users/([^/]+)/(grant|revoke)-admin", path)
        if grant:
            refused = self._admin_only()
            if refused:
                return refused
            user = self.users[grant.group(1)]
            user["is_admin"] = grant.group(2) == "grant"
            return httpx.Response(200, json=user)
        if path == "/v1/apis":
            refused = self._admin_only()
            if refused:
                return refused
            body = json.loads(request.content)
            self.writes.append(("POST", path, body))
            if any(a["slug"] == body["slug"] for a in self.apis):
                return problem(
                    409, "Conflict", "An API with this slug exists.", type="x/slug-taken"
                )
            if not str(body["upstream_url"]).startswith("https://"):
                return problem(
                    422,
                    "Unprocessable Content",
                    "Invalid body.",
                    errors=[{"loc": ["body", "upstream_url"], "msg": "upstream refused: private"}],
                )
            skipped = ("upstream_headers", "routes", "slug", "name")
            fields = {k: v for k, v in body.items() if k not in skipped}
            api = api_body(str(uuid.uuid4()), body["slug"], body["name"], **fields)
            api["has_upstream_credentials"] = bool(body.get("upstream_headers"))
            self.apis.append(api)
            return httpx.Response(201, json=api)
        route = re.fullmatch(r"/v1/apis/([^/]+)/routes", path)
        if route:
            body = json.loads(request.content)
            self.writes.append(("POST", path, body))
            api = self._api(route.group(1))
            assert api is not None
            past = self._sunset_in_past(body)
            if past:
                return past
            added = route_body(body["method"], body["path_template"], body["price"])
            added |= {"limits": body["limits"], "sandbox": body.get("sandbox")}
            deprecated = body.get("deprecated", False)
            added |= {"deprecated": deprecated, "deprecated_at": NOW if deprecated else None}
            added |= {"sunset_at": body.get("sunset_at")}
            api["routes"].append(added)
            return httpx.Response(201, json=added)
        from_url = re.fullmatch(r"/v1/apis/([^/]+)/openapi/from-url", path)
        if from_url:
            url = json.loads(request.content)["url"]
            self.fetched.append((url, request.url.params.get("replace")))
            if "10.0.0.1" in url:
                detail = "Document URL refused: 10.0.0.1 is a loopback or private address."
                return problem(422, "Unprocessable Content", detail, type="x/openapi-url-refused")
            api = self._api(from_url.group(1))
            assert api is not None
            return httpx.Response(200, json={"created": 2, "kept": 0, "removed": 0, "api": api})
        document = re.fullmatch(r"/v1/apis/([^/]+)/openapi", path)
        if document:
            kind = request.headers["content-type"]
            self.imported.append((request.content, kind, request.url.params.get("replace")))
            if b"openapi" not in request.content:
                return problem(422, "Unprocessable Content", "Invalid OpenAPI document: no openapi")
            api = self._api(document.group(1))
            assert api is not None
            return httpx.Response(200, json={"created": 3, "kept": 1, "removed": 0, "api": api})
        return super().accounts_post(request, path)

    def accounts_patch(self, request: httpx.Request, path: str) -> httpx.Response:
        one = re.fullmatch(r"/v1/apis/([^/]+)(?:/routes/([^/]+))?", path)
        if not one:
            return super().accounts_patch(request, path)
        refused = self._admin_only()
        if refused:
            return refused
        body = json.loads(request.content)
        self.writes.append(("PATCH", path, body))
        api = self._api(one.group(1))
        if api is None:
            return problem(404, "Not Found", "No such API.")
        if one.group(2):
            if (body.get("sandbox") or {}).get("mock_latency_ms", 0) > 60_000:
                errors = [{"loc": ["body", "sandbox", "mock_latency_ms"], "msg": "at most 60000"}]
                return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
            past = self._sunset_in_past(body)
            if past:
                return past
            found = next(r for r in api["routes"] if r["id"] == one.group(2))
            if "deprecated" in body and body["deprecated"] != found.get("deprecated", False):
                found["deprecated_at"] = NOW if body["deprecated"] else None
            found.update(body)
            return httpx.Response(200, json=found)
        if body.get("sandbox", {}).get("mock_error_percent", 0) > 100:
            errors = [{"loc": ["body", "sandbox", "mock_error_percent"], "msg": "at most 100"}]
            return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
        api.update({k: v for k, v in body.items() if k != "upstream_headers"})
        if "upstream_headers" in body:
            api["has_upstream_credentials"] = body["upstream_headers"] is not None
        return httpx.Response(200, json=api)

    def accounts_delete(self, request: httpx.Request, path: str) -> httpx.Response:
        one = re.fullmatch(r"/v1/apis/([^/]+)(?:/routes/([^/]+))?", path)
        if not one:
            return super().accounts_delete(request, path)
        refused = self._admin_only()
        if refused:
            return refused
        self.writes.append(("DELETE", path, None))
        api = self._api(one.group(1))
        assert api is not None
        if one.group(2):
            api["routes"] = [r for r in api["routes"] if r["id"] != one.group(2)]
        else:
            self.apis.remove(api)
        return httpx.Response(204)

    def accounts_get(self, request: httpx.Request, path: str) -> httpx.Response:
        one = re.fullmatch(r"/v1/orgs/([0-9a-f-]{36})", path)
        if one and one.group(1) in self.orgs:
            return httpx.Response(200, json=self.orgs[one.group(1)])
        if path == "/v1/orgs" and self.admin and self.orgs:
            return httpx.Response(
                200, json={"items": list(self.orgs.values()), "next_cursor": "n2"}
            )
        return super().accounts_get(request, path)

    def billing_get(self, request: httpx.Request, path: str) -> httpx.Response:
        if path != "/v1/balances":
            return super().billing_get(request, path)
        refused = self._admin_only()
        if refused:
            return refused
        self.balance_params.append(list(request.url.params.multi_items()))
        wanted = request.url.params.get_list("org_id")
        status = request.url.params.get("status")
        items = [
            b
            for b in self.balances.values()
            if (not wanted or b["org_id"] in wanted) and (status is None or b["status"] == status)
        ]
        return httpx.Response(200, json={"items": items, "next_cursor": None})


def registry_fake() -> RegistryFake:
    fake = RegistryFake(admin=True)
    api = api_body(
        str(uuid.uuid4()),
        "weather",
        XSS,
        routes=[route_body("GET", "/forecast", price=5)],
        sandbox_url=None,
        sandbox={"mock": True, "mock_error_percent": 5},
        limits={"per_day": 1000},
    )
    fake.apis = [api]
    return fake


def form(client: httpx.AsyncClient, **values: str) -> dict[str, str]:
    return {"csrf_token": csrf(client), **values}


NEW_API = {
    "name": "Maps",
    "slug": "maps",
    "api_version": "v2",
    "upstream_url": "https://maps.example.com",
    "status": "active",
    "price": "3",
    "timeout_ms": "",
    "limits.per_second": "10",
    "limits.per_day": "",
    "upstream_headers": "Authorization: Bearer s3cret\nX-Tenant: acme",
    "sandbox_url": "",
    "mock_latency_ms": "250",
    "validate_requests": "on",
}


async def test_registering_an_api_sends_accounts_shape_and_never_shows_the_credential() -> None:
    fake = registry_fake()
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get("/admin/apis/new")
        assert page.status_code == 200
        assert 'name="upstream_headers"' in page.text
        forged = await client.post("/admin/apis/new", data=NEW_API)
        assert forged.status_code == 403  # no CSRF token
        created = await client.post("/admin/apis/new", data=form(client, **NEW_API))
        assert created.status_code == 303
        api = fake.apis[-1]
        assert created.headers["location"] == f"/admin/apis/{api['id']}?done=created"
        shown = await client.get(created.headers["location"])
        edit = await client.get(f"/admin/apis/{api['id']}/edit")
    method, path, body = fake.writes[0]
    assert (method, path) == ("POST", "/v1/apis")
    assert body == {
        "name": "Maps",
        "slug": "maps",
        "api_version": "v2",
        "upstream_url": "https://maps.example.com",
        "status": "active",
        "price": 3,
        "charge_failed_calls": False,
        "limits": {"per_second": 10},
        "sunset_at": None,
        "sandbox_url": None,
        "sandbox": {"validate_requests": True, "mock_latency_ms": 250},
        "upstream_headers": {"Authorization": "Bearer s3cret", "X-Tenant": "acme"},
    }
    assert "API registered" in shown.text
    assert "set (write-only)" in shown.text
    for page in (shown, edit):
        assert "s3cret" not in page.text
    assert 'value="maps.example.com"' not in edit.text
    assert 'value="https://maps.example.com"' in edit.text
    assert 'name="remove_credentials"' in edit.text


async def test_form_and_problem_errors_are_shown_next_to_their_fields() -> None:
    fake = registry_fake()
    async with console(fake) as client:
        await sign_in(client)
        local = await client.post(
            "/admin/apis/new",
            data=form(client, **{**NEW_API, "price": "three", "sunset_at": "soon"}),
        )
        private = await client.post(
            "/admin/apis/new",
            data=form(client, **{**NEW_API, "upstream_url": "http://10.0.0.1", "name": XSS}),
        )
        taken = await client.post(
            "/admin/apis/new", data=form(client, **{**NEW_API, "slug": "weather"})
        )
        headers = await client.post(
            "/admin/apis/new", data=form(client, **{**NEW_API, "upstream_headers": "no colon"})
        )
    assert local.status_code == 400
    assert 'data-testid="field-error-price"' in local.text
    assert 'data-testid="field-error-sunset_at"' in local.text
    assert 'value="three"' in local.text  # what was typed is kept
    assert len(fake.writes) == 2  # the local errors never reached accounts
    assert private.status_code == 422
    assert 'data-testid="field-error-upstream_url"' in private.text
    assert "upstream refused: private" in private.text
    assert XSS not in private.text
    assert ESCAPED in private.text
    assert taken.status_code == 409
    assert 'data-testid="field-error-slug"' in taken.text
    assert headers.status_code == 400
    assert "One header per line" in headers.text


async def test_editing_deprecates_with_sunset_keeps_or_removes_credentials() -> None:
    fake = registry_fake()
    api = fake.apis[0]
    async with console(fake) as client:
        await sign_in(client)
        edit = await client.get(f"/admin/apis/{api['id']}/edit")
        assert edit.status_code == 200
        assert 'name="mock" checked' in edit.text
        assert 'name="mock_error_percent" value="5"' in edit.text
        values = {
            "name": "Weather",
            "api_version": "v1",
            "upstream_url": "https://weather.example.com",
            "status": "deprecated",
            "sunset_at": "2027-03-31",
            "price": "2",
            "limits.per_day": "1000",
            "upstream_headers": "",
            "mock": "on",
            "mock_error_percent": "5",
        }
        saved = await client.post(f"/admin/apis/{api['id']}/edit", data=form(client, **values))
        assert saved.status_code == 303
        assert saved.headers["location"] == f"/admin/apis/{api['id']}?done=saved"
        too_many = await client.post(
            f"/admin/apis/{api['id']}/edit",
            data=form(client, **{**values, "mock_error_percent": "150"}),
        )
        removed = await client.post(
            f"/admin/apis/{api['id']}/edit",
            data=form(client, **{**values, "remove_credentials": "on"}),
        )
        assert removed.status_code == 303
        missing = await client.get(f"/admin/apis/{uuid.uuid4()}/edit")
    first = fake.writes[0][2]
    assert first["status"] == "deprecated"
    assert first["sunset_at"] == "2027-03-31T00:00:00Z"
    assert "upstream_headers" not in first  # empty: the credentials stay as they are
    assert "slug" not in first
    assert first["sandbox"] == {"mock": True, "mock_error_percent": 5}
    assert too_many.status_code == 422
    assert 'data-testid="field-error-sandbox"' in too_many.text
    assert fake.writes[-1][2]["upstream_headers"] is None
    assert api["has_upstream_credentials"] is False
    assert missing.status_code == 404


async def test_routes_are_added_edited_and_deleted() -> None:
    fake = registry_fake()
    api = fake.apis[0]
    route = api["routes"][0]
    async with console(fake) as client:
        await sign_in(client)
        added = await client.post(
            f"/admin/apis/{api['id']}/routes",
            data=form(
                client,
                method="POST",
                path_template="/alerts/{id}",
                price="",
                required_scopes="alerts:write, alerts:read",
                **{"limits.per_minute": "60"},
            ),
        )
        assert added.status_code == 303
        page = await client.get(f"/admin/apis/{api['id']}")
        assert "/alerts/{id}" in page.text
        edit = await client.get(f"/admin/apis/{api['id']}/routes/{route['id']}")
        assert edit.status_code == 200
        assert 'value="/forecast"' in edit.text
        saved = await client.post(
            f"/admin/apis/{api['id']}/routes/{route['id']}",
            data=form(client, method="GET", path_template="/forecast", price="7"),
        )
        assert saved.status_code == 303
        bad = await client.post(
            f"/admin/apis/{api['id']}/routes", data=form(client, method="GET", price="x")
        )
        deleted = await client.post(
            f"/admin/apis/{api['id']}/routes/{route['id']}/delete", data=form(client)
        )
        assert deleted.status_code == 303
        other = await client.get(f"/admin/apis/{api['id']}/routes/{uuid.uuid4()}")
    assert fake.writes[0][2] == {
        "method": "POST",
        "path_template": "/alerts/{id}",
        "price": None,
        "limits": {"per_minute": 60},
        "required_scopes": ["alerts:write", "alerts:read"],
        "sandbox": None,  # every sandbox setting inherits the API's
    }
    assert fake.writes[1][0:2] == ("PATCH", f"/v1/apis/{api['id']}/routes/{route['id']}")
    assert fake.writes[1][2]["price"] == 7
    assert bad.status_code == 400
    assert 'data-testid="field-error-price"' in bad.text
    assert fake.writes[2] == ("DELETE", f"/v1/apis/{api['id']}/routes/{route['id']}", None)
    assert all(r["id"] != route["id"] for r in api["routes"])
    assert other.status_code == 404


async def test_an_openapi_document_is_imported_from_a_file_or_pasted_text() -> None:
    fake = registry_fake()
    api = fake.apis[0]
    path = f"/admin/apis/{api['id']}/openapi"
    async with console(fake) as client:
        await sign_in(client)
        uploaded = await client.post(
            path,
            data=form(client, replace="on"),
            files={"file": ("petstore.json", b'{"openapi": "3.1.0"}', "application/json")},
        )
        assert uploaded.status_code == 303
        assert uploaded.headers["location"].endswith("done=imported&created=3&kept=1&removed=0")
        shown = await client.get(uploaded.headers["location"])
        pasted = await client.post(path, data=form(client, document="openapi: 3.0.3\n"))
        assert pasted.status_code == 303
        refused = await client.post(path, data=form(client, document="swagger: 2.0"))
        empty = await client.post(path, data=form(client, document="  "))
        no_token = await client.post(path, data={"document": "openapi: 3.0.3"})
    assert "3 routes created, 1 kept, 0 removed" in shown.text
    assert fake.imported[0] == (b'{"openapi": "3.1.0"}', "application/json", "true")
    assert fake.imported[1] == (b"openapi: 3.0.3\n", "application/yaml", None)
    assert refused.status_code == 422
    assert 'data-testid="field-error-document"' in refused.text
    assert "swagger: 2.0" in refused.text  # the pasted text is kept
    assert empty.status_code == 400
    assert no_token.status_code == 403
    assert len(fake.imported) == 3


async def test_a_route_overrides_or_inherits_each_sandbox_setting() -> None:
    fake = registry_fake()  # the API mocks every call with 5 % errors
    api = fake.apis[0]
    route = api["routes"][0]
    path = f"/admin/apis/{api['id']}/routes/{route['id']}"
    kept = {"method": "GET", "path_template": "/forecast", "price": "5"}
    async with console(fake) as client:
        await sign_in(client)
        edit = await client.get(path)
        assert edit.status_code == 200
        assert 'data-testid="route-sandbox"' in edit.text
        assert '<option value="" selected>As the API (on)</option>' in edit.text
        assert 'name="sandbox.mock_error_percent" value="" inputmode="numeric"' in edit.text
        assert 'placeholder="5"' in edit.text  # the API's error rate, inherited
        saved = await client.post(
            path,
            data=form(
                client,
                **kept,
                **{"sandbox.mock": "off", "sandbox.mock_latency_ms": "250"},
                **{"sandbox.validate_requests": "", "sandbox.mock_error_percent": ""},
            ),
        )
        assert saved.status_code == 303
        page = await client.get(f"/admin/apis/{api['id']}")
        again = await client.get(path)
        typo = await client.post(
            path, data=form(client, **kept, **{"sandbox.mock_latency_ms": "x"})
        )
        too_slow = await client.post(
            path, data=form(client, **kept, **{"sandbox.mock_latency_ms": "70000"})
        )
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get(path)
        client.cookies.delete("tg_lang")
        inherited = await client.post(path, data=form(client, **kept))
        assert inherited.status_code == 303
    assert fake.writes[0][2]["sandbox"] == {"mock": False, "mock_latency_ms": 250}
    # The route list shows what the gateway applies: the route's own settings in bold,
    # the API's error rate inherited.
    cell = page.text.split('data-testid="route-sandbox">', 1)[1].split("</td>", 1)[0]
    assert '<strong data-testid="sandbox-override">mock off</strong>' in cell
    assert '<strong data-testid="sandbox-override">250 ms</strong>' in cell
    assert "5% errors" in cell
    assert "5% errors</strong>" not in cell
    assert '<option value="off" selected>Off</option>' in again.text
    assert 'name="sandbox.mock_latency_ms" value="250"' in again.text
    assert typo.status_code == 400
    assert 'data-testid="field-error-sandbox.mock_latency_ms"' in typo.text
    assert too_slow.status_code == 422
    assert 'data-testid="field-error-sandbox.mock_latency_ms">at most 60000' in too_slow.text
    assert len(fake.writes) == 3  # the typo never reached accounts
    assert "沙箱" in chinese.text
    assert "As the API" not in chinese.text
    assert fake.writes[-1][2]["sandbox"] is None  # all inherit: the overrides are removed


async def test_a_route_is_deprecated_with_a_sunset_and_the_route_list_shows_both() -> None:
    fake = registry_fake()
    api = fake.apis[0]
    route = api["routes"][0]
    path = f"/admin/apis/{api['id']}/routes/{route['id']}"
    kept = {"method": "GET", "path_template": "/forecast", "price": "5"}
    new = {"method": "GET", "path_template": "/old", "price": ""}
    async with console(fake) as client:
        await sign_in(client)
        added = await client.post(
            f"/admin/apis/{api['id']}/routes",
            data=form(client, **new, deprecated="on", sunset_at="2099-01-31T12:30"),
        )
        assert added.status_code == 303
        past = await client.post(
            f"/admin/apis/{api['id']}/routes",
            data=form(client, **{**new, "path_template": "/gone"}, sunset_at="2020-01-01T00:00"),
        )
        typo = await client.post(
            f"/admin/apis/{api['id']}/routes", data=form(client, **new, sunset_at="soon")
        )
        edit = await client.get(path)
        deprecated = await client.post(
            path, data=form(client, **kept, deprecated="on", sunset_at="2099-06-30T08:00")
        )
        assert deprecated.status_code == 303
        again = await client.get(path)
        repriced = await client.post(
            path,
            data=form(
                client, **{**kept, "price": "6"}, deprecated="on", sunset_at="2099-06-30T08:00"
            ),
        )
        too_early = await client.post(
            path, data=form(client, **kept, deprecated="on", sunset_at="2021-05-01T00:00")
        )
        page = await client.get(f"/admin/apis/{api['id']}")
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get(f"/admin/apis/{api['id']}")
        chinese_refusal = await client.post(
            path, data=form(client, **kept, sunset_at="2021-05-01T00:00")
        )
        client.cookies.delete("tg_lang")
        cleared = await client.post(path, data=form(client, **kept, sunset_at=""))
        assert cleared.status_code == 303
        other = await client.post(
            f"/admin/apis/{api['id']}/routes/{uuid.uuid4()}", data=form(client, **kept)
        )
    writes = [w[2] for w in fake.writes]
    # A new route: the flag and the Sunset in RFC 3339 with its offset (the form is UTC).
    assert writes[0]["deprecated"] is True
    assert writes[0]["sunset_at"] == "2099-01-31T12:30:00Z"
    # Accounts' 422 lands next to the field, translated, with what was typed kept.
    assert past.status_code == 422
    assert 'data-testid="field-error-sunset_at">The Sunset must be in the future.' in past.text
    assert 'value="2020-01-01T00:00"' in past.text
    assert '<details open data-testid="new-route-deprecation">' in past.text
    assert typo.status_code == 400
    assert 'data-testid="field-error-sunset_at">Enter a date and time.' in typo.text
    assert 'data-testid="route-deprecated-input">' in edit.text  # not ticked
    assert 'name="sunset_at" value=""' in edit.text
    # An edit sends the flag, and the Sunset only when it changes.
    assert writes[2] == {
        "method": "GET",
        "path_template": "/forecast",
        "price": 5,
        "limits": {},
        "required_scopes": [],
        "sandbox": None,
        "deprecated": True,
        "sunset_at": "2099-06-30T08:00:00Z",
    }
    assert 'data-testid="route-deprecated-input" checked>' in again.text
    assert 'value="2099-06-30T08:00"' in again.text
    assert repriced.status_code == 303
    assert writes[3]["price"] == 6
    assert "sunset_at" not in writes[3]
    assert too_early.status_code == 422
    assert 'data-testid="field-error-sunset_at">The Sunset must be in the future.' in too_early.text
    assert "停用时间必须在将来" in chinese_refusal.text
    # The route list: a badge with the deprecation date, and the Sunset, as dates are shown.
    english, zh = Formats("en"), Formats("zh-Hans")
    since = datetime.fromisoformat(NOW)
    sunset = datetime(2099, 6, 30, 8, tzinfo=UTC)
    old = page.text.split("<code>/old</code>", 1)[1].split("</td>", 1)[0]
    assert f"since {english.datetime(since)}" in old
    assert f"Sunset {english.datetime(datetime(2099, 1, 31, 12, 30, tzinfo=UTC))}" in old
    cell = page.text.split("<code>/forecast</code>", 1)[1].split("</td>", 1)[0]
    assert 'data-testid="route-deprecated">deprecated</span>' in cell
    assert f"Sunset {english.datetime(sunset)}" in cell
    assert zh.datetime(since) in chinese.text
    assert zh.datetime(sunset) in chinese.text
    assert 'data-testid="route-deprecated">已弃用</span>' in chinese.text
    # Emptied: null removes the date; an unknown route is not found, nothing sent.
    assert writes[-1]["sunset_at"] is None
    assert writes[-1]["deprecated"] is False
    assert other.status_code == 404
    assert len(writes) == 7  # the typo and the unknown route never reached accounts


async def test_an_openapi_document_is_imported_from_a_url_accounts_fetches() -> None:
    fake = registry_fake()
    api = fake.apis[0]
    path = f"/admin/apis/{api['id']}/openapi"
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/admin/apis/{api['id']}")
        assert 'data-testid="import-url"' in page.text
        imported = await client.post(
            path, data=form(client, url=" https://docs.example.com/openapi.json ", replace="on")
        )
        refused = await client.post(path, data=form(client, url="http://10.0.0.1/openapi.json"))
    assert imported.status_code == 303
    assert imported.headers["location"].endswith("done=imported&created=2&kept=0&removed=0")
    assert fake.fetched[0] == ("https://docs.example.com/openapi.json", "true")
    assert fake.imported == []  # the console never fetched or posted the document itself
    assert refused.status_code == 422
    assert 'data-testid="field-error-url">Document URL refused: 10.0.0.1' in refused.text
    assert 'value="http://10.0.0.1/openapi.json"' in refused.text


async def test_an_api_is_deleted_after_confirmation() -> None:
    fake = registry_fake()
    api = fake.apis[0]
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/admin/apis/{api['id']}")
        assert 'data-testid="delete-api"' in page.text
        assert "data-confirm=" in page.text
        deleted = await client.post(f"/admin/apis/{api['id']}/delete", data=form(client))
        listing = await client.get(deleted.headers["location"])
    assert deleted.headers["location"] == "/admin/apis?done=deleted"
    assert fake.apis == []
    assert "API deleted" in listing.text


async def test_an_admin_grants_and_revokes_platform_admin() -> None:
    fake = registry_fake()
    user = user_body("ops@example.com")
    fake.users[user["id"]] = user
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get("/admin/users")
        assert 'data-testid="grant-admin"' in page.text
        granted = await client.post(
            f"/admin/users/{user['id']}/grant-admin", data=form(client, back="/admin/users")
        )
        assert granted.headers["location"] == "/admin/users?done=grant-admin"
        assert user["is_admin"] is True
        shown = await client.get(granted.headers["location"])
        assert "now a platform admin" in shown.text
        assert 'data-testid="revoke-admin"' in shown.text
        await client.post(f"/admin/users/{user['id']}/revoke-admin", data=form(client))
    assert user["is_admin"] is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/apis/new"),
        ("POST", "/admin/apis/new"),
        ("GET", "/admin/apis/{api}/edit"),
        ("POST", "/admin/apis/{api}/edit"),
        ("POST", "/admin/apis/{api}/delete"),
        ("POST", "/admin/apis/{api}/routes"),
        ("POST", "/admin/apis/{api}/routes/{route}/delete"),
        ("POST", "/admin/apis/{api}/openapi"),
        ("POST", "/admin/users/{user}/grant-admin"),
        ("GET", "/admin/orgs"),
    ],
)
async def test_non_admins_reach_none_of_it(method: str, path: str) -> None:
    fake = registry_fake()
    fake.admin = False
    api = fake.apis[0]
    user = user_body("ops@example.com")
    fake.users[user["id"]] = user
    target = path.format(api=api["id"], route=api["routes"][0]["id"], user=user["id"])
    async with console(fake) as client:
        await sign_in(client)
        answer = await client.request(
            method, target, data=form(client, **NEW_API) if method == "POST" else None
        )
    assert answer.status_code == 404
    assert fake.writes == []
    assert user["is_admin"] is False
    assert not any(call[0] == "billing" for call in fake.calls)


def org_body(name: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": name, "created_at": "2026-11-29T10:00:00Z"}


def balance_body(org_id: str, balance: int, status: str) -> dict[str, Any]:
    return {"org_id": org_id, "balance": balance, "status": status, "mode": "prepaid"}


async def test_the_org_list_shows_balances_and_filters_by_status() -> None:
    fake = registry_fake()
    rich, poor = org_body("Rich"), org_body(XSS)
    fake.orgs = {o["id"]: o for o in (rich, poor)}
    fake.balances = {
        rich["id"]: balance_body(rich["id"], 125000, "ok"),
        poor["id"]: balance_body(poor["id"], -40, "exhausted"),
    }
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get("/admin/orgs")
        filtered = await client.get("/admin/orgs?status=exhausted")
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get("/admin/orgs")
        fake.down = {"billing"}
        client.cookies.delete("tg_lang")
        down = await client.get("/admin/orgs")
    assert page.status_code == 200
    assert "125,000" in page.text
    assert XSS not in page.text
    assert ESCAPED in page.text
    assert 'data-testid="next-page"' in page.text  # accounts' cursor pages the list
    # One billing call for the whole page, naming its orgs.
    assert sorted(v for k, v in fake.balance_params[0] if k == "org_id") == sorted(fake.orgs)
    assert filtered.text.count('data-testid="org-row"') == 1
    assert ESCAPED in filtered.text
    assert ("status", "exhausted") in fake.balance_params[1]
    assert "余额" in chinese.text
    assert down.status_code == 200
    assert 'data-testid="panel-down"' in down.text
    assert "Rich" in down.text


async def test_the_api_page_shows_which_deprecations_were_announced_to_how_many_orgs() -> None:
    fake = registry_fake()
    api = fake.apis[0]
    route = api["routes"][0]
    api["status"] = "deprecated"
    fake.deprecation_notices = [
        {
            "route_id": None,
            "sunset_at": "2099-06-30T08:00:00Z",
            "orgs_notified": 12,
            "announced_at": "2026-11-30T10:00:00Z",
            "api_version": 4,
        },
        {
            "route_id": route["id"],
            "sunset_at": None,
            "orgs_notified": 3,
            "announced_at": "2026-11-29T10:00:00Z",
            "api_version": 3,
        },
        {
            "route_id": str(uuid.uuid4()),
            "sunset_at": None,
            "orgs_notified": 1,
            "announced_at": "2026-11-28T10:00:00Z",
            "api_version": 2,
        },
    ]
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/admin/apis/{api['id']}")
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get(f"/admin/apis/{api['id']}")
        client.cookies.delete("tg_lang")
        fake.down.add("usage")
        usage_down = await client.get(f"/admin/apis/{api['id']}")

    section = page.text.split('data-testid="deprecation-notices"')[1].split("</section>")[0]
    assert "The whole API" in section
    assert f"<code>{route['method']} {route['path_template']}</code>" in section
    assert "A deleted route" in section
    told = [c.split("<")[0] for c in section.split('data-testid="orgs-notified">')[1:]]
    assert told == ["12", "3", "1"]
    assert "整个 API" in chinese.text
    assert "已通知的组织" in chinese.text
    # Usage down: the rest of the page is there, this part says why it is not.
    assert usage_down.status_code == 200
    assert 'data-testid="panel-down"' in usage_down.text
    assert route["path_template"] in usage_down.text


@pytest.mark.parametrize("sunset", ["0001-01-01T00:00+05:00", "9999-12-31T23:59-05:00"])
async def test_a_sunset_with_no_utc_time_is_a_field_error(sunset: str) -> None:
    fake = registry_fake()
    api = fake.apis[0]
    async with console(fake) as client:
        await sign_in(client)
        refused = await client.post(
            f"/admin/apis/{api['id']}/routes",
            data=form(client, method="GET", path_template="/old", price="", sunset_at=sunset),
        )
    assert refused.status_code == 400  # converting it to UTC overflowed: 500
    assert 'data-testid="field-error-sunset_at"' in refused.text
    assert fake.writes == []
