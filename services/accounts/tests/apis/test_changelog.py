"""The changelog between two OpenAPI documents: one test per breaking rule (no database)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tollgate.accounts.apis.changelog import Published, changes_between, public_changes
from tollgate.accounts.apis.openapi_import import parse_document
from tollgate.contracts.events.accounts import ApiChange, ApiChangeKind, BreakingRule

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"


def petstore() -> dict[str, Any]:
    return parse_document(PETSTORE.read_bytes())


def breaking(changes: list[ApiChange]) -> list[tuple[str, str, str, str | None, str | None]]:
    return [
        (c.rule.value, c.method, c.path, c.location, c.name) for c in changes if c.rule is not None
    ]


def with_operation(
    op: dict[str, Any], path: str = "/things", method: str = "post"
) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {path: {method: op}},
    }


def test_second_petstore_with_a_removed_operation_and_a_new_required_parameter() -> None:
    v1 = petstore()
    v2 = copy.deepcopy(v1)
    del v2["paths"]["/pets"]["post"]
    v2["paths"]["/pets"]["get"]["parameters"].append(
        {"name": "owner", "in": "query", "required": True, "schema": {"type": "string"}}
    )

    changes = changes_between(v1, v2)

    assert breaking(changes) == [
        ("new-required-parameter", "GET", "/pets", "query", "owner"),
        ("removed-operation", "POST", "/pets", None, None),
    ]
    assert len(changes) == 2


def test_a_first_import_lists_every_operation_as_added() -> None:
    changes = changes_between(None, petstore())
    assert [(c.kind, c.method, c.path, c.breaking) for c in changes] == [
        (ApiChangeKind.ADDED, "GET", "/pets", False),
        (ApiChangeKind.ADDED, "POST", "/pets", False),
        (ApiChangeKind.ADDED, "GET", "/pets/{petId}", False),
    ]


def test_the_same_document_again_changes_nothing() -> None:
    assert changes_between(petstore(), petstore()) == []


def test_removed_operation_is_breaking_and_a_renamed_path_parameter_is_not() -> None:
    v1 = petstore()
    v2 = copy.deepcopy(v1)
    v2["paths"]["/pets/{id}"] = v2["paths"].pop("/pets/{petId}")
    v2["paths"]["/pets/{id}"]["get"]["parameters"][0]["name"] = "id"
    v2["paths"]["/pets/{id}"]["delete"] = {"responses": {"204": {"description": "gone"}}}
    del v2["paths"]["/pets"]["get"]

    changes = changes_between(v1, v2)

    assert breaking(changes) == [("removed-operation", "GET", "/pets", None, None)]
    assert (ApiChangeKind.ADDED, "DELETE", "/pets/{id}") in [
        (c.kind, c.method, c.path) for c in changes
    ]


def test_new_required_header_body_and_body_properties() -> None:
    v1 = with_operation(
        {
            "parameters": [{"name": "X-Tenant", "in": "header", "schema": {"type": "string"}}],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "tag": {"type": "string"},
                                "owner": {"type": "object", "properties": {"id": {}}},
                            },
                        }
                    }
                }
            },
        }
    )
    v2 = copy.deepcopy(v1)
    op = v2["paths"]["/things"]["post"]
    op["parameters"][0]["required"] = True
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    schema["required"] = ["name", "tag"]
    schema["properties"]["owner"]["required"] = ["id"]
    schema["properties"]["extra"] = {"type": "object", "required": ["x"], "properties": {}}
    op["requestBody"]["required"] = True

    assert breaking(changes_between(v1, v2)) == [
        ("new-required-parameter", "POST", "/things", "header", "X-Tenant"),
        ("new-required-parameter", "POST", "/things", "body", None),
        ("new-required-parameter", "POST", "/things", "body", "owner.id"),
        ("new-required-parameter", "POST", "/things", "body", "tag"),
    ]


def test_new_optional_parameter_is_a_compatible_change() -> None:
    v1 = petstore()
    v2 = copy.deepcopy(v1)
    v2["paths"]["/pets"]["get"]["parameters"].append(
        {"name": "sort", "in": "query", "schema": {"type": "string"}}
    )
    assert [(c.kind, c.method, c.path, c.rule) for c in changes_between(v1, v2)] == [
        (ApiChangeKind.CHANGED, "GET", "/pets", None)
    ]


def test_narrowed_types_of_parameters_and_body_properties() -> None:
    v1 = with_operation(
        {
            "parameters": [
                {"name": "amount", "in": "query", "schema": {"type": "number"}},
                {"name": "color", "in": "query", "schema": {"enum": ["red", "green", "blue"]}},
                {"name": "since", "in": "query", "schema": {"type": "string"}},
                {"name": "page", "in": "query", "schema": {"type": "integer"}},
            ],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "$ref": "#/components/schemas/Thing",
                        }
                    }
                }
            },
        }
    )
    v1["components"] = {
        "schemas": {
            "Thing": {"type": "object", "properties": {"size": {"type": ["string", "null"]}}}
        }
    }
    v2 = copy.deepcopy(v1)
    params = v2["paths"]["/things"]["post"]["parameters"]
    params[0]["schema"] = {"type": "integer"}
    params[1]["schema"] = {"enum": ["red", "green"]}
    params[2]["schema"] = {"type": "string", "format": "date-time"}
    params[3]["schema"] = {"type": "number"}  # widened: not breaking
    v2["components"]["schemas"]["Thing"]["properties"]["size"] = {"type": "string"}

    changes = changes_between(v1, v2)

    assert [(c.location, c.name, c.before, c.after) for c in changes if c.breaking] == [
        ("query", "amount", "number", "integer"),
        ("query", "color", "red, green, blue", "red, green"),
        ("query", "since", "string", "string (date-time)"),
        ("body", "size", "string | null", "string"),
    ]
    assert {c.rule for c in changes} == {BreakingRule.NARROWED_TYPE}


def test_removed_response_field_of_a_success_response() -> None:
    v1 = petstore()
    v2 = copy.deepcopy(v1)
    del v2["components"]["schemas"]["Pet"]["properties"]["tag"]
    del v2["components"]["schemas"]["Error"]["properties"]["message"]  # not a 2xx schema

    changes = changes_between(v1, v2)

    assert [(c.rule, c.method, c.path, c.status, c.name) for c in changes if c.breaking] == [
        (BreakingRule.REMOVED_RESPONSE_FIELD, "GET", "/pets", "200", "[].tag"),
        (BreakingRule.REMOVED_RESPONSE_FIELD, "GET", "/pets/{petId}", "200", "tag"),
    ]


def test_a_self_referencing_schema_is_compared_without_looping() -> None:
    node = {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}
    doc = with_operation(
        {"responses": {"200": {"content": {"application/json": {"schema": node}}}}}, method="get"
    )
    doc["components"] = {"schemas": {"Node": node}}
    changed = copy.deepcopy(doc)
    changed["components"]["schemas"]["Node"]["properties"]["name"] = {"type": "string"}
    assert changes_between(doc, doc) == []
    assert [c.kind for c in changes_between(doc, changed)] == [ApiChangeKind.CHANGED]


def test_customers_see_only_changes_to_operations_they_could_call() -> None:
    old = petstore()
    old["paths"]["/admin/purge"] = {"x-internal": True, "post": {"responses": {}}}
    old["paths"]["/pets/{petId}"]["get"]["x-internal"] = True
    old["paths"]["/reports"] = {"get": {"responses": {}}}  # no route: the gateway refuses it
    old["paths"]["/pets"]["get"]["x-internal"] = True
    new = copy.deepcopy(old)
    for gone in ("/admin/purge", "/pets/{petId}", "/reports"):
        del new["paths"][gone]
    del new["paths"]["/pets"]["post"]
    del new["paths"]["/pets"]["get"]["x-internal"]  # made public, and changed
    new["paths"]["/pets"]["get"]["parameters"].append(
        {"name": "owner", "in": "query", "required": True, "schema": {"type": "string"}}
    )
    new["paths"]["/stores"] = {
        "get": {"responses": {}},
        "post": {"x-internal": True, "responses": {}},
    }
    routes = frozenset({("GET", "/pets"), ("POST", "/pets"), ("*", "/pets/{petId}")})
    before = Published(old, routes | {("POST", "/admin/purge")})
    after = Published(new, routes | {("GET", "/stores"), ("POST", "/stores")})
    changes = changes_between(old, new)

    shown = public_changes(changes, before, after, frozenset())

    assert len(changes) == 7
    assert [(c.kind, c.method, c.path) for c in shown] == [
        (ApiChangeKind.REMOVED, "POST", "/pets"),
        (ApiChangeKind.ADDED, "GET", "/stores"),
    ]
    # A change naming a credential header is left out, the operation's others are not.
    later = copy.deepcopy(new)
    later["paths"]["/stores"]["get"]["parameters"] = [
        {"name": "X-Partner-Key", "in": "header", "required": True},
        {"name": "region", "in": "query", "required": True},
    ]
    changes = changes_between(new, later)
    credentials = frozenset({"x-partner-key"})

    shown = public_changes(changes, after, Published(later, after.routes), credentials)

    assert {(c.location, c.name) for c in changes} == {
        ("header", "X-Partner-Key"),
        ("query", "region"),
    }
    assert [(c.location, c.name) for c in shown] == [("query", "region")]
