"""The consumer document: valid OpenAPI 3.1, the gateway as its only server, the key
schemes instead of the upstream's auth, no credential, no upstream host, prices shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from tollgate.accounts.catalog.consumer_openapi import (
    ApiFacts,
    Language,
    RouteFacts,
    consumer_document,
)

PETSTORE = Path(__file__).resolve().parents[1] / "data" / "petstore.yaml"
GATEWAY = "https://api.example.com"
UPSTREAM = "http://petstore-upstream.internal:9000/v1"
SECRET_HEADER = "X-Upstream-Token"


def petstore() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(PETSTORE.read_text())
    return doc


def petstore_api(**changes: Any) -> ApiFacts:
    facts: dict[str, Any] = {
        "slug": "petstore",
        "name": "Petstore",
        "api_version": "v1",
        "status": "active",
        "price": 2,
        "upstream_url": UPSTREAM,
        "limits": {"per_minute": 60},
        "routes": [
            RouteFacts("GET", "/pets", price=1, limits={"per_second": 5}),
            RouteFacts("POST", "/pets", price=None, required_scopes=["pets:write"]),
            RouteFacts("GET", "/pets/{petId}", price=3),
        ],
        "upstream_header_names": [SECRET_HEADER],
    }
    facts.update(changes)
    return ApiFacts(**facts)


def with_upstream_auth(doc: dict[str, Any]) -> dict[str, Any]:
    """The Petstore plus what an upstream's own document often carries."""
    doc["components"]["securitySchemes"] = {
        "upstreamKey": {"type": "apiKey", "in": "header", "name": "X-Petstore-Key"}
    }
    doc["security"] = [{"upstreamKey": []}]
    doc["paths"]["/pets"]["get"]["parameters"].append(
        {"name": SECRET_HEADER, "in": "header", "schema": {"type": "string"}}
    )
    doc["paths"]["/pets"]["get"]["parameters"].append(
        {"name": "X-Petstore-Key", "in": "header", "schema": {"type": "string"}}
    )
    doc["paths"]["/pets"]["get"]["description"] = f"Served by {UPSTREAM}/pets."
    doc["paths"]["/admin/reindex"] = {
        "post": {"x-internal": True, "responses": {"204": {"description": "done"}}}
    }
    return doc


def test_petstore_consumer_document_is_valid_openapi_31_without_upstream_or_credentials() -> None:
    source = with_upstream_auth(petstore())
    doc = consumer_document(petstore_api(), source, GATEWAY)

    validate(doc, cls=OpenAPIV31SpecValidator)
    text = json.dumps(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": f"{GATEWAY}/petstore", "description": "Tollgate gateway"}]
    assert "petstore-upstream.internal" not in text
    assert "petstore.swagger.io" not in text
    assert SECRET_HEADER not in text
    assert "X-Petstore-Key" not in text
    assert "upstreamKey" not in text
    assert source["servers"] == [{"url": "http://petstore.swagger.io/v1"}]  # input untouched


def test_key_schemes_replace_the_upstream_auth() -> None:
    doc = consumer_document(petstore_api(), with_upstream_auth(petstore()), GATEWAY)

    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKeyHeader"]["in"] == "header"
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiKeyQuery"]["in"] == "query"
    assert schemes["apiKeyQuery"]["name"] == "api_key"
    assert doc["security"] == [{"apiKeyHeader": []}, {"bearer": []}, {"apiKeyQuery": []}]


def test_each_operation_shows_its_price_and_limits() -> None:
    doc = consumer_document(petstore_api(), petstore(), GATEWAY)

    listing = doc["paths"]["/pets"]["get"]
    assert listing["x-tollgate-price"] == 1
    assert listing["x-tollgate-limits"] == {"per_second": 5}
    facts = "**Price:** 1 credit per call. **Limits:** 5 per second."
    assert listing["description"].startswith(facts)
    create = doc["paths"]["/pets"]["post"]
    assert create["x-tollgate-price"] == 2  # null route price = the API's
    assert create["x-tollgate-limits"] == {"per_minute": 60}
    assert create["x-tollgate-scopes"] == ["pets:write"]


def test_tollgates_own_text_is_in_chinese_for_the_chinese_portal() -> None:
    """What Tollgate writes (key schemes, server, price, limits, scopes, deprecation
    notes) in Simplified Chinese; the API's own text stays as imported; the document is
    the same but for those words."""
    routes = petstore_api().routes
    deprecated = RouteFacts("POST", "/pets", required_scopes=["pets:write"], deprecated=True)
    api = petstore_api(routes=[routes[0], deprecated, routes[2]])
    english = consumer_document(api, petstore(), GATEWAY)
    chinese = consumer_document(api, petstore(), GATEWAY, Language.ZH_HANS)

    validate(chinese, cls=OpenAPIV31SpecValidator)
    assert chinese["servers"] == [{"url": f"{GATEWAY}/petstore", "description": "Tollgate 网关"}]
    schemes = chinese["components"]["securitySchemes"]
    assert schemes["apiKeyHeader"]["description"].startswith("您的 Tollgate API 密钥")
    listing = chinese["paths"]["/pets"]["get"]
    assert listing["description"].startswith("**价格:** 每次调用 1 额度。**限额:** 每秒 5 次。")
    create = chinese["paths"]["/pets"]["post"]
    assert "**密钥权限范围:** pets:write。" in create["description"]
    assert "**已弃用。**" in create["description"]
    assert chinese["info"]["title"] == english["info"]["title"]  # the API's own text
    for doc in (english, chinese):  # the machine-readable facts do not change
        for key in ("x-tollgate-price", "x-tollgate-limits", "deprecated"):
            assert doc["paths"]["/pets"]["post"].get(key) == create.get(key)


def test_operations_without_a_route_and_internal_ones_are_removed() -> None:
    api = petstore_api(routes=[RouteFacts("GET", "/pets", price=1)])
    doc = consumer_document(api, with_upstream_auth(petstore()), GATEWAY)

    assert list(doc["paths"]) == ["/pets"]
    assert list(doc["paths"]["/pets"]) == ["get"]


def test_without_an_import_the_document_comes_from_the_routes() -> None:
    api = petstore_api(status="deprecated", sunset_at=datetime(2027, 3, 1, tzinfo=UTC))
    doc = consumer_document(api, None, GATEWAY)

    validate(doc, cls=OpenAPIV31SpecValidator)
    assert sorted(doc["paths"]) == ["/pets", "/pets/{petId}"]
    assert doc["paths"]["/pets/{petId}"]["parameters"][0]["name"] == "petId"
    assert doc["paths"]["/pets/{petId}"]["get"]["x-tollgate-price"] == 3
    assert doc["paths"]["/pets"]["get"]["deprecated"] is True
    assert doc["info"]["x-tollgate-sunset"] == "2027-03-01T00:00:00+00:00"
    assert "Sunset: 2027-03-01" in doc["info"]["description"]


def test_a_deprecated_operation_is_marked_with_its_sunset() -> None:
    sunset = datetime(2027, 6, 30, tzinfo=UTC)
    api = petstore_api(
        routes=[
            RouteFacts("GET", "/pets", price=1, deprecated=True, sunset_at=sunset),
            RouteFacts("POST", "/pets"),
            RouteFacts("GET", "/pets/{petId}", deprecated=True),
        ]
    )
    source = petstore()
    source["paths"]["/pets"]["post"]["deprecated"] = True  # an admin took this back
    for doc in (consumer_document(api, source, GATEWAY), consumer_document(api, None, GATEWAY)):
        validate(doc, cls=OpenAPIV31SpecValidator)
        listing, create = doc["paths"]["/pets"]["get"], doc["paths"]["/pets"]["post"]
        assert listing["deprecated"] is True
        assert listing["x-sunset"] == "2027-06-30T00:00:00+00:00"
        assert listing["description"].startswith("**Deprecated.** Sunset: 2027-06-30.")
        assert "deprecated" not in create
        assert "x-sunset" not in create
        one = doc["paths"]["/pets/{petId}"]["get"]
        assert one["deprecated"] is True
        assert "x-sunset" not in one


def test_an_operation_of_a_deprecated_api_takes_the_earlier_sunset() -> None:
    route_sunset = datetime(2027, 1, 1, tzinfo=UTC)
    api = petstore_api(
        status="deprecated",
        sunset_at=datetime(2027, 3, 1, tzinfo=UTC),
        routes=[RouteFacts("GET", "/pets", sunset_at=route_sunset), RouteFacts("POST", "/pets")],
    )
    doc = consumer_document(api, petstore(), GATEWAY)

    assert doc["paths"]["/pets"]["get"]["x-sunset"] == route_sunset.isoformat()
    assert doc["paths"]["/pets"]["post"]["x-sunset"] == "2027-03-01T00:00:00+00:00"
    assert doc["paths"]["/pets"]["post"]["deprecated"] is True


def test_openapi_30_nullable_becomes_a_type_union() -> None:
    source = petstore()
    source["components"]["schemas"]["Pet"]["properties"]["tag"]["nullable"] = True
    doc = consumer_document(petstore_api(), source, GATEWAY)

    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc["components"]["schemas"]["Pet"]["properties"]["tag"]["type"] == ["string", "null"]
