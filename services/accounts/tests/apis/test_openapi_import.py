"""Parsing OpenAPI documents into routes (no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tollgate.accounts.apis.openapi_import import (
    MAX_DEPTH,
    OpenApiInvalid,
    parse_document,
    routes_of,
)

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"


def test_petstore_yaml_and_json_give_the_same_routes() -> None:
    from_yaml = parse_document(PETSTORE.read_bytes())
    from_json = parse_document(json.dumps(from_yaml).encode())
    routes = routes_of(from_yaml)
    assert [(r.method, r.path_template, r.operation_id) for r in routes] == [
        ("GET", "/pets", "listPets"),
        ("POST", "/pets", "createPets"),
        ("GET", "/pets/{petId}", "showPetById"),
    ]
    assert routes_of(from_json) == routes


def test_security_scopes_become_required_scopes() -> None:
    doc = {
        "openapi": "3.1.0",
        "security": [{"oauth": ["read"]}],
        "paths": {
            "/a": {"get": {}, "post": {"security": [{"oauth": ["write", "read"]}]}},
            "/b": {"delete": {"security": []}},
        },
    }
    routes = {(r.method, r.path_template): r.required_scopes for r in routes_of(doc)}
    assert routes == {
        ("GET", "/a"): ["read"],
        ("POST", "/a"): ["read", "write"],
        ("DELETE", "/b"): [],
    }


@pytest.mark.parametrize(
    ("scopes", "refusal"),
    [
        (["has space"], "GET /a: the scope 'has space' is not"),
        (["read\n"], "GET /a: the scope 'read\\n' is not"),
        (["s" * 65], "GET /a: the scope"),
        ([f"s{n}" for n in range(51)], "GET /a: more than 50 scopes"),
    ],
)
def test_imported_scopes_follow_the_rules_of_a_routes_own(scopes: list[str], refusal: str) -> None:
    # Before: any scopes, any number, were copied onto every route; 64 global scopes on
    # 300 operations (a 25 KB document) made an API event of 1.3 MB that Kafka refused,
    # and the accounts outbox stopped behind it.
    doc = {"openapi": "3.1.0", "security": [{"oauth": scopes}], "paths": {"/a": {"get": {}}}}
    with pytest.raises(OpenApiInvalid) as refused:
        routes_of(doc)
    assert str(refused.value).startswith(refusal)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[1, 2]",
        b"{not json",
        b"swagger: '2.0'\npaths: {}\n",
        b"openapi: 3.0.0\n",
        b"openapi: 3.0.0\npaths:\n  nopath: {}\n",
        b"a: &x [1]\nb: *x\nopenapi: 3.0.0\npaths: {}\n",
        b"\xff\xfe",
    ],
)
def test_invalid_documents_are_refused(raw: bytes) -> None:
    with pytest.raises((OpenApiInvalid, UnicodeDecodeError)):
        routes_of(parse_document(raw))


def _nested_json(depth: int) -> bytes:
    inner = '{"openapi": "3.0.0", "paths": {}, "x-deep": ' + "[" * depth + "]" * depth + "}"
    return inner.encode()


def _nested_yaml_flow(depth: int) -> bytes:
    return b"openapi: 3.0.0\npaths: {}\nx-deep: " + b"[" * depth + b"]" * depth + b"\n"


def _nested_yaml_block(depth: int) -> bytes:
    lines = ["openapi: 3.0.0", "paths: {}", "x-deep:"]
    lines += [" " * (i + 1) + "a:" for i in range(depth)]
    return ("\n".join(lines) + " 1\n").encode()


@pytest.mark.parametrize(
    "raw",
    [
        _nested_json(MAX_DEPTH + 1),
        _nested_json(100_000),
        _nested_yaml_flow(MAX_DEPTH + 1),
        _nested_yaml_flow(100_000),
        _nested_yaml_block(MAX_DEPTH + 1),
        _nested_yaml_block(3_000),
    ],
    ids=["json-65", "json-100k", "yaml-flow-65", "yaml-flow-100k", "yaml-65", "yaml-3k"],
)
def test_documents_nested_too_deeply_are_refused_without_recursing(raw: bytes) -> None:
    with pytest.raises(OpenApiInvalid, match="nested deeper than"):
        parse_document(raw)


def test_a_document_nested_up_to_the_limit_is_accepted() -> None:
    # The document object itself is level 1, `x-deep` adds the levels of its lists.
    assert parse_document(_nested_json(MAX_DEPTH - 1))["openapi"] == "3.0.0"
    assert parse_document(_nested_yaml_flow(MAX_DEPTH - 1))["openapi"] == "3.0.0"
