"""Request validation against the API's OpenAPI document, table-driven: each malformed
request is a 400 listing its violations with JSON pointers, is never forwarded and is a
`request_invalid` rejection (never charged); valid requests pass untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

CRUD = yaml.safe_load((Path(__file__).parent / "data" / "petstore-crud.yaml").read_text())
KEY = apikeys.generate().raw
TENANT = {"X-Request-Tenant": "acme", "Content-Type": "application/json"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(
        lambda upstream: [
            api_event(
                "strict",
                upstream,
                openapi_document=CRUD,
                sandbox={"validate_requests": True},
                price=3,
            )
        ],
        [key_event(KEY)],
    )
    try:
        yield gateway
    finally:
        gateway.close()


def _pet(**fields: Any) -> bytes:
    return orjson.dumps({"name": "Rex", **fields})


# (method, target, headers, body, pointers expected in the answer)
MALFORMED: list[tuple[str, str, dict[str, str], bytes, list[str]]] = [
    # method and path
    ("POST", "/pets/3", TENANT, _pet(), ["/method"]),
    ("GET", "/owners", {}, b"", ["/path"]),
    ("GET", "/pets/3/toys", {}, b"", ["/path"]),
    # path parameters
    ("GET", "/pets/abc", {}, b"", ["/path/petId"]),
    ("GET", "/pets/0", {}, b"", ["/path/petId"]),
    ("GET", "/pets/-4", {}, b"", ["/path/petId"]),
    ("DELETE", "/pets/1.5", {}, b"", ["/path/petId"]),
    # query parameters
    ("GET", "/pets?limit=abc", {}, b"", ["/query/limit"]),
    ("GET", "/pets?limit=0", {}, b"", ["/query/limit"]),
    ("GET", "/pets?limit=101", {}, b"", ["/query/limit"]),
    ("GET", "/pets?limit=2.5", {}, b"", ["/query/limit"]),
    ("GET", "/pets?status=lost", {}, b"", ["/query/status"]),
    ("GET", "/pets?status=AVAILABLE", {}, b"", ["/query/status"]),
    ("GET", "/pets?tags=a,b,c,d", {}, b"", ["/query/tags"]),
    ("GET", "/pets?tags=waytoolongtag", {}, b"", ["/query/tags/0"]),
    ("GET", "/pets?limit=0&status=lost", {}, b"", ["/query/limit", "/query/status"]),
    ("POST", "/pets?dry_run=maybe", TENANT, _pet(), ["/query/dry_run"]),
    # headers
    ("GET", "/pets", {"X-Trace-Level": "9"}, b"", ["/header/x-trace-level"]),
    ("GET", "/pets", {"X-Trace-Level": "high"}, b"", ["/header/x-trace-level"]),
    ("POST", "/pets", JSON, _pet(), ["/header/x-request-tenant"]),
    (
        "POST",
        "/pets",
        {**JSON, "X-Request-Tenant": "ACME!"},
        _pet(),
        ["/header/x-request-tenant"],
    ),
    ("POST", "/pets", {**TENANT, "Content-Type": "text/plain"}, b"Rex", ["/header/content-type"]),
    # body: missing, not JSON, wrong shape
    ("POST", "/pets", TENANT, b"", ["/body"]),
    ("POST", "/pets", TENANT, b"{name: Rex}", ["/body"]),
    ("POST", "/pets", TENANT, b"[]", ["/body"]),
    ("POST", "/pets", TENANT, b'"Rex"', ["/body"]),
    # missing required
    ("POST", "/pets", TENANT, b"{}", ["/body/name"]),
    ("POST", "/pets", TENANT, b'{"tag": "dog"}', ["/body/name"]),
    ("POST", "/pets", TENANT, _pet(chip={}), ["/body/chip/code"]),
    # wrong types
    ("POST", "/pets", TENANT, b'{"name": 42}', ["/body/name"]),
    ("POST", "/pets", TENANT, b'{"name": null}', ["/body/name"]),
    ("POST", "/pets", TENANT, _pet(weight_kg="heavy"), ["/body/weight_kg"]),
    ("POST", "/pets", TENANT, _pet(vaccinations="rabies"), ["/body/vaccinations"]),
    ("POST", "/pets", TENANT, _pet(chip="123"), ["/body/chip"]),
    (
        "POST",
        "/pets",
        TENANT,
        _pet(chip={"code": "1" * 15, "registered": "yes"}),
        ["/body/chip/registered"],
    ),
    # extra properties where forbidden
    ("POST", "/pets", TENANT, _pet(id=7), ["/body/id"]),
    ("POST", "/pets", TENANT, _pet(colour="red"), ["/body/colour"]),
    ("POST", "/pets", TENANT, _pet(chip={"code": "1" * 15, "x": 1}), ["/body/chip/x"]),
    # bad enum
    ("POST", "/pets", TENANT, _pet(status="lost"), ["/body/status"]),
    ("PATCH", "/pets/3", JSON, b'{"status": "gone"}', ["/body/status"]),
    # bad format / pattern
    ("POST", "/pets", TENANT, _pet(birthday="31/12/2020"), ["/body/birthday"]),
    ("POST", "/pets", TENANT, _pet(owner_email="not-an-email"), ["/body/owner_email"]),
    ("POST", "/pets", TENANT, _pet(chip={"code": "12ab"}), ["/body/chip/code"]),
    # bounds and oversize
    ("POST", "/pets", TENANT, _pet(weight_kg=0), ["/body/weight_kg"]),
    ("POST", "/pets", TENANT, _pet(weight_kg=501), ["/body/weight_kg"]),
    ("POST", "/pets", TENANT, b'{"name": ""}', ["/body/name"]),
    ("POST", "/pets", TENANT, _pet(name="x" * 41), ["/body/name"]),
    ("POST", "/pets", TENANT, _pet(tag="t" * 21), ["/body/tag"]),
    (
        "POST",
        "/pets",
        TENANT,
        _pet(vaccinations=["a1", "b1", "c1", "d1", "e1", "f1"]),
        ["/body/vaccinations"],
    ),
    ("POST", "/pets", TENANT, _pet(vaccinations=["rabies", "rabies"]), ["/body/vaccinations"]),
    ("POST", "/pets", TENANT, _pet(vaccinations=["x"]), ["/body/vaccinations/0"]),
    ("PATCH", "/pets/3", JSON, b"{}", ["/body"]),
    # several at once: each one listed
    (
        "POST",
        "/pets?dry_run=1",
        JSON,
        b'{"name": 1, "status": "lost", "extra": true}',
        [
            "/header/x-request-tenant",
            "/query/dry_run",
            "/body/name",
            "/body/status",
            "/body/extra",
        ],
    ),
]


def test_the_table_is_large_enough() -> None:
    assert len(MALFORMED) >= 40


@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "pointers"),
    MALFORMED,
    ids=[f"{m} {t} {b[:30]!r}" for m, t, _, b, _ in MALFORMED],
)
def test_malformed_requests_are_refused_with_pointers(
    gw: InProcessGateway,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    pointers: list[str],
) -> None:
    before = len(gw.seen)
    reply = gw.request(method, "/strict" + target, {"X-API-Key": KEY, **headers}, body)
    assert reply.status == 400, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    problem = orjson.loads(reply.body)
    assert problem["type"].endswith("/request-invalid")
    assert sorted({v["pointer"] for v in problem["violations"]}) == sorted(pointers)
    assert gw.seen[before:] == []  # never forwarded
    kind, event = gw.publisher.events[-1]
    assert kind.endswith("request.rejected.v1")
    assert event["reason"] == "request_invalid"
    assert "cost" not in event
    assert sorted({v.split(": ", 1)[0] for v in event["violations"]}) == sorted(pointers)


VALID: list[tuple[str, str, dict[str, str], bytes]] = [
    ("GET", "/pets", {}, b""),
    ("GET", "/pets?limit=100&status=sold&tags=a&tags=b", {"X-Trace-Level": "2"}, b""),
    ("GET", "/pets?tags=a,b,c&unknown=kept", {}, b""),
    ("GET", "/pets/12", {}, b""),
    ("POST", "/pets?dry_run=true", TENANT, _pet()),
    (
        "POST",
        "/pets",
        TENANT,
        _pet(
            tag=None,
            status="pending",
            birthday="2020-02-29",
            owner_email="a@example.com",
            weight_kg=0.5,
            vaccinations=["rabies", "flu"],
            chip={"code": "123456789012345", "registered": True},
        ),
    ),
    ("PUT", "/pets/3", JSON, _pet()),
    ("PATCH", "/pets/3", {"Content-Type": "application/json; charset=utf-8"}, b'{"tag": null}'),
    ("DELETE", "/pets/3", {}, b""),
]


@pytest.mark.parametrize(("method", "target", "headers", "body"), VALID)
def test_valid_requests_are_forwarded_unchanged(
    gw: InProcessGateway, method: str, target: str, headers: dict[str, str], body: bytes
) -> None:
    before = len(gw.seen)
    reply = gw.request(method, "/strict" + target, {"X-API-Key": KEY, **headers}, body)
    assert reply.status == 200, reply.body
    assert [(s.method, s.raw_path) for s in gw.seen[before:]] == [(method, target)]
    assert gw.publisher.events[-1][1]["cost"] == 3


# A keyed API's document often describes its key: a header it constrains, a required
# query parameter. The gateway takes the key for itself and strips it, so validation
# neither checks nor misses it: a violation quoting it went to the client and into the
# rejection event (key material in the request log), and `?api_key=` was always missing.
KEYED = {
    "openapi": "3.0.3",
    "info": {"title": "keyed", "version": "1"},
    "paths": {
        "/items": {
            "get": {
                "parameters": [
                    {
                        "name": "X-API-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    },
                    {
                        "name": "Authorization",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 10},
                    },
                    {"name": "api_key", "in": "query", "required": True, "schema": {}},
                ],
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


@pytest.mark.parametrize(
    "carrier",
    [
        {"headers": {"X-API-Key": KEY}, "query": ""},
        {"headers": {"Authorization": f"Bearer {KEY}"}, "query": ""},
        {"headers": {}, "query": f"?api_key={KEY}"},
    ],
    ids=["x-api-key", "bearer", "query"],
)
def test_the_key_is_never_validated_nor_quoted(carrier: dict[str, Any]) -> None:
    gw = InProcessGateway(
        lambda upstream: [
            api_event(
                "keyed", upstream, openapi_document=KEYED, sandbox={"validate_requests": True}
            )
        ],
        [key_event(KEY)],
    )
    try:
        reply = gw.request("GET", "/keyed/items" + carrier["query"], carrier["headers"])
        assert reply.status == 200, reply.body
        assert KEY not in reply.body.decode()
        assert KEY not in repr(gw.publisher.events)
        assert len(gw.seen) == 1
    finally:
        gw.close()
