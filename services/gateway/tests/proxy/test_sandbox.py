"""Test mode and the built-in mock, in process: which upstream a key reaches, what a
call costs, what the mock answers (Prism's `Prefer`), the stateful mock's CRUD and
its bounds, and contract drift in test mode."""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from tollgate.gateway.proxy.mock import MockRefused, MockState, mock_answer
from tollgate.gateway.registry.openapi import Contract
from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

DATA = Path(__file__).parent / "data"
CRUD = yaml.safe_load((DATA / "petstore-crud.yaml").read_text())
# The registry's own import test data: what an operator imports first.
PETSTORE = yaml.safe_load(
    (Path(__file__).parents[3] / "accounts/tests/data/petstore.yaml").read_text()
)

LIVE = apikeys.generate("live").raw
TEST = apikeys.generate("test").raw
OTHER_TEST = apikeys.generate("test").raw


def _apis(upstream: str) -> list[Any]:
    return [
        # A sandbox upstream configured: test keys go there, live keys to the upstream.
        api_event(
            "shop",
            upstream + "/live",
            sandbox_url=upstream + "/sandbox",
            openapi_document=CRUD,
            sandbox={"validate_responses": True},
            price=5,
        ),
        # No sandbox: test keys get the mock.
        api_event("pets", upstream + "/live", openapi_document=PETSTORE, price=5),
        # Mock for everyone, stateful.
        api_event(
            "crud",
            upstream + "/live",
            openapi_document=CRUD,
            sandbox={"mock": True, "mock_stateful": True},
            price=2,
        ),
        # No document, no sandbox: nothing can answer a test key.
        api_event("bare", upstream + "/live", price=5),
    ]


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(
        _apis,
        [
            key_event(LIVE),
            key_event(TEST, environment="test"),
            key_event(OTHER_TEST, environment="test"),
        ],
    )
    try:
        yield gateway
    finally:
        gateway.close()


def _last_event(gw: InProcessGateway) -> dict[str, Any]:
    return gw.publisher.events[-1][1]


def _conforms(document: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    validator = OAS30Validator({**schema, "components": document.get("components", {})})
    return [error.message for error in validator.iter_errors(value)]


# ---------------------------------------------------------------- routing both ways


def test_a_test_key_reaches_the_sandbox_and_costs_nothing(gw: InProcessGateway) -> None:
    before = len(gw.seen)
    reply = gw.request("GET", "/shop/pets?limit=2", {"X-API-Key": TEST})
    assert reply.status == 200
    assert [s.raw_path for s in gw.seen[before:]] == ["/sandbox/pets?limit=2"]
    event = _last_event(gw)
    assert (event["mode"], event["served_by"], event["cost"]) == ("test", "sandbox", 0)


def test_a_live_key_never_reaches_the_sandbox(gw: InProcessGateway) -> None:
    before = len(gw.seen)
    reply = gw.request("GET", "/shop/pets", {"X-API-Key": LIVE})
    assert reply.status == 200
    assert [s.raw_path for s in gw.seen[before:]] == ["/live/pets"]
    event = _last_event(gw)
    assert (event["mode"], event["served_by"], event["cost"]) == ("live", "upstream", 5)


def test_a_test_key_without_sandbox_gets_the_mock_never_the_live_upstream(
    gw: InProcessGateway,
) -> None:
    before = len(gw.seen)
    reply = gw.request("GET", "/pets/pets/12", {"X-API-Key": TEST})
    assert reply.status == 200
    assert gw.seen[before:] == []
    event = _last_event(gw)
    assert (event["mode"], event["served_by"], event["cost"]) == ("test", "mock", 0)


def test_a_test_key_with_nothing_to_answer_is_refused_not_forwarded(
    gw: InProcessGateway,
) -> None:
    before = len(gw.seen)
    reply = gw.request("GET", "/bare/anything", {"X-API-Key": TEST})
    assert reply.status == 503
    assert orjson.loads(reply.body)["type"].endswith("/mock-unavailable")
    assert gw.seen[before:] == []
    event = _last_event(gw)
    assert (event["reason"], event["mode"]) == ("sandbox_unavailable", "test")


def test_a_live_key_on_an_api_without_mock_still_reaches_the_upstream(
    gw: InProcessGateway,
) -> None:
    before = len(gw.seen)
    assert gw.request("GET", "/bare/anything", {"X-API-Key": LIVE}).status == 200
    assert [s.raw_path for s in gw.seen[before:]] == ["/live/anything"]


# ---------------------------------------------------------------- mock answers


def test_the_petstore_mock_answers_every_operation_conforming_to_the_document(
    gw: InProcessGateway,
) -> None:
    contract = Contract.compile(PETSTORE)
    assert len(contract.operations) == 3
    for operation in contract.operations:
        path = operation.template.replace("{petId}", "42")
        body = b'{"id": 1, "name": "Rex"}' if operation.method == "POST" else b""
        for prefer in ("", "dynamic=true"):
            reply = gw.request(
                operation.method,
                "/pets" + path,
                {"X-API-Key": TEST, "Prefer": prefer, "Content-Type": "application/json"},
                body,
            )
            documented = operation.response_for(reply.status)
            assert documented is not None, (operation.template, reply.status)
            assert reply.status // 100 == 2
            media = next(iter(documented.content), None)
            if media is None:
                assert reply.body == b""
                continue
            spec = PETSTORE["paths"][operation.template][operation.method.lower()]
            schema = spec["responses"][str(reply.status)]["content"][media]["schema"]
            assert _conforms(PETSTORE, schema, orjson.loads(reply.body)) == []


def test_dynamic_answers_validate_and_are_deterministic_per_request(gw: InProcessGateway) -> None:
    schema = CRUD["paths"]["/pets"]["get"]["responses"]["200"]["content"]["application/json"]
    first = gw.request("GET", "/shop/pets?limit=3", {"X-API-Key": LIVE, "Prefer": "dynamic=true"})
    # /shop forwards live keys: the dynamic mock is on the mocked API.
    assert first.status == 200
    answers = [
        gw.request("GET", f"/crud/pets?limit={n}", {"X-API-Key": TEST, "Prefer": "dynamic=true"})
        for n in (1, 1, 2)
    ]
    assert all(a.status == 200 for a in answers)
    values = [orjson.loads(a.body) for a in answers]
    for value in values:
        assert _conforms(CRUD, schema["schema"], value) == []
    assert values[0] == values[1]
    assert values[0] != values[2]


def test_prefer_code_picks_the_documented_answer(gw: InProcessGateway) -> None:
    reply = gw.request("GET", "/crud/pets/3", {"X-API-Key": TEST, "Prefer": "code=404"})
    assert reply.status == 404
    assert set(orjson.loads(reply.body)) == {"code", "message"}
    # Undocumented code with a `default` answer: that answer, with the code asked for.
    reply = gw.request("GET", "/crud/pets", {"X-API-Key": TEST, "Prefer": "code=503"})
    assert reply.status == 503
    assert set(orjson.loads(reply.body)) == {"code", "message"}
    # Neither: a problem naming it, as Prism's NOT_FOUND.
    reply = gw.request("DELETE", "/crud/pets/3", {"X-API-Key": TEST, "Prefer": "code=418"})
    assert reply.status == 404
    assert orjson.loads(reply.body)["type"].endswith("/mock-no-response")


def test_prefer_example_picks_the_named_example(gw: InProcessGateway) -> None:
    reply = gw.request("GET", "/crud/pets/3", {"X-API-Key": TEST, "Prefer": "example=dog"})
    assert reply.status == 200
    assert orjson.loads(reply.body) == {"id": 4, "name": "Rex", "tag": "dog", "status": "available"}
    both = gw.request("GET", "/crud/pets", {"X-API-Key": TEST, "Prefer": "code=200, example=none"})
    assert (both.status, orjson.loads(both.body)) == (200, [])
    missing = gw.request("GET", "/crud/pets/3", {"X-API-Key": TEST, "Prefer": "example=bird"})
    assert missing.status == 404
    assert orjson.loads(missing.body)["type"].endswith("/mock-no-example")


def test_the_first_example_answers_when_none_is_named(gw: InProcessGateway) -> None:
    # A preference leaves the stateful store aside: the document's answer, first example.
    reply = gw.request("GET", "/crud/pets/3", {"X-API-Key": TEST, "Prefer": "code=200"})
    assert orjson.loads(reply.body)["name"] == "Felix"


# ---------------------------------------------------------------- stateful


def test_stateful_crud_and_list_isolated_per_key(gw: InProcessGateway) -> None:
    headers = {"X-API-Key": TEST, "Content-Type": "application/json"}
    created = []
    for name in ("Rex", "Tom", "Kit"):
        reply = gw.request("POST", "/crud/pets", headers, orjson.dumps({"name": name}))
        assert reply.status == 201
        created.append(orjson.loads(reply.body))
        assert reply.headers["location"] == f"/pets/{created[-1]['id']}"
    first = created[0]["id"]
    assert orjson.loads(gw.request("GET", f"/crud/pets/{first}", headers).body)["name"] == "Rex"
    patched = gw.request("PATCH", f"/crud/pets/{first}", headers, b'{"status": "sold"}')
    assert orjson.loads(patched.body) == {"id": first, "name": "Rex", "status": "sold"}
    put = gw.request("PUT", f"/crud/pets/{first}", headers, b'{"name": "Max"}')
    assert orjson.loads(put.body) == {"id": first, "name": "Max"}
    page = gw.request("GET", "/crud/pets?limit=2", headers)
    assert [p["name"] for p in orjson.loads(page.body)] == ["Max", "Tom"]
    assert page.headers["link"] == '<?limit=2&offset=2>; rel="next"'
    rest = gw.request("GET", "/crud/pets?limit=2&offset=2", headers)
    assert [p["name"] for p in orjson.loads(rest.body)] == ["Kit"]
    assert gw.request("DELETE", f"/crud/pets/{first}", headers).status == 204
    assert gw.request("GET", f"/crud/pets/{first}", headers).status == 404
    # Another key sees none of it.
    other = {"X-API-Key": OTHER_TEST}
    assert orjson.loads(gw.request("GET", "/crud/pets", other).body) == []
    assert gw.request("GET", f"/crud/pets/{created[1]['id']}", other).status == 404


def test_stateful_memory_is_bounded() -> None:
    contract = Contract.compile(CRUD)
    create, _, _ = contract.operation("POST", "/pets")
    assert create is not None
    state = MockState(max_keys=3, max_items=5, max_bytes=1 << 20)
    for key in range(10):
        for n in range(8):
            state.answer("api", f"k{key}", create, "/pets", {}, "", orjson.dumps({"name": f"p{n}"}))
    assert state.resources() == 3 * 5
    # 7 least recently used key spaces dropped, and 3 oldest resources of each key's 8.
    assert state.evicted == 7 + 10 * 3
    # The space used last is still there, with its five newest resources.
    page = state.answer("api", "k9", create, "/pets", {}, "", b'{"name": "x"}')
    assert page is not None
    assert page.status == 201


def test_stateful_memory_is_bounded_in_bytes_not_only_in_resources() -> None:
    # Before: a resource was kept as its parsed objects, bounded only in number: a
    # 60 KiB body of empty objects held over 2 MiB, and 1,000 of them per free test
    # key filled the gateway's memory.
    contract = Contract.compile(CRUD)
    create, _, _ = contract.operation("POST", "/pets")
    assert create is not None
    state = MockState(max_keys=100, max_items=1_000, max_bytes=1 << 20)
    body = orjson.dumps({"tags": [{}] * 20_000})  # 60 KiB
    tracemalloc.start()
    try:
        for key in range(4):
            for _ in range(50):
                answer = state.answer("api", f"k{key}", create, "/pets", {}, "", body)
                assert answer is not None
                assert answer.status == 201
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state.held_bytes <= 1 << 20
    assert held < 2 << 20  # what the process holds, not only what is counted
    # The space written last keeps its newest resources; the others gave theirs up.
    listing, _, _ = contract.operation("GET", "/pets")
    assert listing is not None
    listed = state.answer("api", "k3", listing, "/pets", {}, "limit=100", b"")
    assert listed is not None
    assert len(orjson.loads(listed.body)) == state.resources() == (1 << 20) // len(body)
    with pytest.raises(MockRefused) as refused:
        state.answer("api", "k0", create, "/pets", {}, "", orjson.dumps({"x": "y" * 70_000}))
    assert (refused.value.status, refused.value.slug) == (413, "mock-too-large")


def test_stateful_memory_counts_paths_and_forgets_emptied_collections() -> None:
    # Before: only the JSON was counted, and a collection emptied by eviction kept its
    # path for ever: 5,000 resources under 8 KB paths held 40 MB against a count of 8 KB.
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/owners/{ownerId}/pets": {
                "parameters": [
                    {
                        "name": "ownerId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "post": {"responses": {"201": {"description": "ok"}}},
            }
        },
    }
    create, _, _ = Contract.compile(document).operation("POST", "/owners/x/pets")
    assert create is not None
    state = MockState(max_keys=100, max_items=1_000, max_bytes=1 << 20)
    tracemalloc.start()
    try:
        for n in range(2_000):
            owner = f"{n:08d}" + "o" * 7_992
            path = f"/owners/{owner}/pets"
            state.answer("api", "k", create, path, {"ownerId": owner}, "", b"{}")
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state.held_bytes <= 1 << 20
    assert held < 3 << 20


@pytest.mark.parametrize(
    "prefer", ["code=\u00b2\u00b2\u00b2", "code=" + "2" * 5000, "dynamic=true, seed=" + "7" * 5000]
)
def test_an_odd_preference_is_a_400_or_ignored_never_a_500(
    gw: InProcessGateway, prefer: str
) -> None:
    # Before: `isdigit` took "²" and 5,000 digits, which `int` refuses: a 500
    # `mock-failed` that blamed the API's document.
    reply = gw.request("GET", "/crud/pets", {"X-API-Key": TEST, "Prefer": prefer})
    if prefer.startswith("code="):
        assert reply.status == 400
        assert orjson.loads(reply.body)["type"].endswith("/mock-bad-preference")
    else:
        assert reply.status == 200


def test_stateful_ids_and_pages_that_are_no_numbers_are_no_500(gw: InProcessGateway) -> None:
    headers = {"X-API-Key": TEST, "Content-Type": "application/json"}
    odd = gw.request("POST", "/crud/pets", headers, orjson.dumps({"id": "\u00b2", "name": "a"}))
    assert odd.status == 201
    assert gw.request("POST", "/crud/pets", headers, b'{"name": "b"}').status == 201
    assert gw.request("GET", "/crud/pets?limit=abc&offset=-1", headers).status == 200


def test_test_traffic_counts_in_windows_of_its_own() -> None:
    # Before: a test key's calls counted in the API's windows, shared by every org: one
    # org's free mock calls, which never reach the upstream those limits protect, got
    # another org's live calls refused with 429.
    other_org = key_event(LIVE, org_id=uuid.uuid4())
    gateway = InProcessGateway(
        lambda upstream: [
            api_event("limited", upstream, openapi_document=CRUD, limits={"per_minute": 3})
        ],
        [key_event(TEST, environment="test"), other_org],
    )
    try:
        for _ in range(3):
            assert gateway.request("GET", "/limited/pets", {"X-API-Key": TEST}).status == 200
        refused = gateway.request("GET", "/limited/pets", {"X-API-Key": TEST})
        assert refused.status == 429  # test traffic is limited all the same...
        for _ in range(3):  # ... apart from live traffic
            assert gateway.request("GET", "/limited/pets", {"X-API-Key": LIVE}).status == 200
        assert gateway.request("GET", "/limited/pets", {"X-API-Key": LIVE}).status == 429
    finally:
        gateway.close()


# ---------------------------------------------------------------- drift and errors


def test_contract_drift_is_reported_in_test_mode_never_altered(gw: InProcessGateway) -> None:
    # The recording upstream answers {"ok": true}: no `id`, no `name`.
    reply = gw.request("GET", "/shop/pets/5", {"X-API-Key": TEST})
    assert (reply.status, orjson.loads(reply.body)) == (200, {"ok": True})
    drift = _last_event(gw)["contract_drift"]
    assert drift == [
        '/body/id: "id" is a required property',
        '/body/name: "name" is a required property',
    ]
    gw.request("GET", "/shop/pets/5", {"X-API-Key": LIVE})
    assert "contract_drift" not in _last_event(gw)  # live answers are not checked


def test_injected_errors_and_latency() -> None:
    gateway = InProcessGateway(
        lambda upstream: [
            api_event(
                "flaky",
                upstream,
                openapi_document=CRUD,
                sandbox={"mock": True, "mock_error_percent": 100, "mock_latency_ms": 50},
            )
        ],
        [key_event(LIVE)],
    )
    try:
        reply = gateway.request("GET", "/flaky/pets", {"X-API-Key": LIVE})
        assert reply.status == 500
        assert orjson.loads(reply.body)["type"].endswith("/mock-injected-error")
        event = gateway.publisher.events[-1][1]
        assert event["latency_ms"] >= 50
        assert event["cost"] == 0  # a 5xx is not charged
        assert gateway.seen == []
    finally:
        gateway.close()


def test_route_override_turns_the_mock_off_for_one_route() -> None:
    api_id = uuid.uuid4()
    gateway = InProcessGateway(
        lambda upstream: [
            api_event(
                "mixed",
                upstream,
                api_id=api_id,
                openapi_document=CRUD,
                sandbox={"mock": True},
                routes=[
                    {"route_id": uuid.uuid4(), "method": "GET", "path_template": "/pets"},
                    {
                        "route_id": uuid.uuid4(),
                        "method": "GET",
                        "path_template": "/pets/{petId}",
                        "sandbox": {"mock": False},
                    },
                ],
            )
        ],
        [key_event(LIVE)],
    )
    try:
        assert gateway.request("GET", "/mixed/pets", {"X-API-Key": LIVE}).status == 200
        assert gateway.seen == []
        gateway.request("GET", "/mixed/pets/3", {"X-API-Key": LIVE})
        assert [s.raw_path for s in gateway.seen] == ["/pets/3"]
    finally:
        gateway.close()


HOSTILE_DOCUMENTS: list[dict[str, Any]] = [
    # Invalid schemas: left unchecked, never a failed replay.
    {
        "paths": {
            "/a": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {"type": 5}}}},
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"pattern": "("}}}}
                    },
                }
            }
        }
    },
    # A required property that contains itself, and a dangling $ref.
    {
        "paths": {
            "/a/{x}": {
                "get": {
                    "parameters": [{"name": "x", "in": "path", "schema": {"$ref": "#/nope"}}],
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/N"}}
                            }
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "N": {
                    "type": "object",
                    "required": ["c"],
                    "properties": {"c": {"$ref": "#/components/schemas/N"}},
                }
            }
        },
    },
    # Wrong shapes everywhere.
    {"paths": {"/a": "x", "/b": {"get": "y", "parameters": "z"}, "/c": {"get": {"responses": []}}}},
    {"paths": None, "components": "x"},
    # Bounds no value meets.
    {
        "paths": {
            "/a": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"type": "integer", "minimum": 10, "maximum": 1}
                                }
                            }
                        }
                    }
                }
            }
        }
    },
]


@pytest.mark.parametrize("document", HOSTILE_DOCUMENTS)
def test_hostile_documents_compile_and_the_mock_answers_or_refuses(
    document: dict[str, Any],
) -> None:
    contract = Contract.compile(document)
    for operation in contract.operations:
        for prefer in ({}, {"dynamic": "true"}):
            statuses = []
            try:
                answer = mock_answer(contract, operation, prefer, None, 1)
                orjson.loads(answer.body or b"null")
            except MockRefused as refused:
                statuses.append(refused.status)
            assert set(statuses) <= {404}
        operation.request_violations({}, "a=1", {}, "application/json", b"{}")
