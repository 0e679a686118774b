"""The fuzzing loop reports what an API gets wrong (a 5xx, a response its schema does
not allow), and nothing about one that behaves."""

from __future__ import annotations

import gc
import sys
import time
import weakref
from types import FrameType
from typing import Annotated, Any

import schemathesis
from fastapi import FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from tollgate.kit.problems import allowed_methods
from tollgate.kit.testing.fuzz import ALL_CHECKS, _inside_unraisable_callback, fuzz_operations


class Item(BaseModel):
    name: str


class Reset(BaseModel):
    email: Annotated[
        str,
        Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$", json_schema_extra={"format": "email"}),
    ]


def _app(calls: list[str], *, with_bugs: bool) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        # A behaving API's 405 lists every method of the path (Starlette's names one).
        headers = {"Allow": allowed_methods(request)}
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers=headers)

    @app.get("/items/{item_id}", response_model=Item)
    async def get_item(item_id: int, x_token: Annotated[str, Header()]) -> Item:
        calls.append(f"GET {item_id} {x_token}")
        return Item(name="kept")

    @app.delete("/items/{item_id}", status_code=204)
    async def delete_item(item_id: int) -> None:
        calls.append(f"DELETE {item_id}")

    if not with_bugs:
        return app

    @app.get("/ratio/{n}", responses={200: {"content": {"application/json": {}}}})
    async def ratio(n: Annotated[int, Path(ge=0)]) -> JSONResponse:
        if n == 0:  # the bug a fuzzer is for
            return JSONResponse({"detail": "division by zero"}, status_code=500)
        return JSONResponse({"ratio": 1 / n})

    @app.get("/shape", response_model=Item)
    async def shape() -> JSONResponse:
        return JSONResponse({"title": "not an item"})  # bypasses the response model

    return app


def test_a_behaving_api_reports_no_failures_and_runs_deletes_last() -> None:
    calls: list[str] = []
    schema = schemathesis.openapi.from_asgi("/openapi.json", _app(calls, with_bugs=False))

    report = fuzz_operations(
        schema,
        examples=5,
        headers={"X-Token": "from-run"},
        known_path_parameters={"item_id": "424242"},
    )

    assert report.operations == 2
    assert report.calls >= 4
    assert not report.failures, report.failures
    assert "GET 424242 from-run" in calls
    assert "DELETE 424242" in calls
    first_delete = next(i for i, call in enumerate(calls) if call.startswith("DELETE"))
    assert all(call.startswith("DELETE") for call in calls[first_delete:])


def test_server_errors_and_schema_violations_are_reported() -> None:
    calls: list[str] = []
    schema = schemathesis.openapi.from_asgi("/openapi.json", _app(calls, with_bugs=True))

    def per_call(case: schemathesis.Case) -> dict[str, Any]:
        return {"headers": {"X-Token": "per-call"}} if case.path == "/items/{item_id}" else {}

    report = fuzz_operations(
        schema, examples=5, call_kwargs=per_call, known_path_parameters={"n": "0"}
    )

    assert report.operations == 4
    assert any(f.startswith("[positive] GET /ratio/0:") and "500" in f for f in report.failures)
    assert any(f.startswith("[positive] GET /shape:") for f in report.failures)
    assert not any("/items/" in f for f in report.failures), report.failures
    assert all(call.endswith("per-call") for call in calls if call.startswith("GET"))
    assert str(report).startswith(f"4 operations, {report.calls} calls, ")


def _store_app(*, forgets_deletes: bool) -> FastAPI:
    """Items created by POST, read and deleted by id, with the OpenAPI links between
    them; `forgets_deletes` is the bug: a deleted item is still served."""
    app = FastAPI()
    items: dict[int, Item] = {}
    by_id = {"item_id": "$response.body#/id"}
    created: dict[int | str, dict[str, Any]] = {
        201: {
            "description": "Created",
            "links": {
                "GetItem": {"operationId": "get_item", "parameters": by_id},
                "DeleteItem": {"operationId": "delete_item", "parameters": by_id},
            },
        },
        # FastAPI's answer to a body that is not UTF-8 at all (not a 422): documented, or
        # a scenario that happens to send one fails the healthy app.
        400: {"description": "Unparseable body"},
    }

    class Stored(BaseModel):
        id: int
        name: str

    @app.post("/items", status_code=201, response_model=Stored, responses=created)
    async def create_item(body: Item) -> Stored:
        item_id = len(items) + 1
        items[item_id] = body
        return Stored(id=item_id, name=body.name)

    @app.get(
        "/items/{item_id}",
        operation_id="get_item",
        response_model=Item,
        responses={404: {"description": "No such item"}},
    )
    async def get_item(item_id: int) -> Response | Item:
        if item_id not in items:
            return JSONResponse({"detail": "no such item"}, status_code=404)
        return items[item_id]

    @app.delete(
        "/items/{item_id}",
        operation_id="delete_item",
        status_code=204,
        response_model=None,
        responses={404: {"description": "No such item"}},
    )
    async def delete_item(item_id: int) -> Response:
        if item_id not in items:
            return JSONResponse({"detail": "no such item"}, status_code=404)
        if not forgets_deletes:
            del items[item_id]
        return Response(status_code=204)

    return app


def test_stateful_scenarios_follow_links_and_catch_use_after_free() -> None:
    healthy = fuzz_operations(
        schemathesis.openapi.from_asgi("/openapi.json", _store_app(forgets_deletes=False)),
        examples=2,
        coverage_cases=0,
        scenarios=15,
    )
    assert not [f for f in healthy.failures if f.startswith("[stateful]")], healthy.failures

    buggy = fuzz_operations(
        schemathesis.openapi.from_asgi("/openapi.json", _store_app(forgets_deletes=True)),
        examples=2,
        coverage_cases=0,
        scenarios=15,
    )
    assert any(
        f.startswith("[stateful] GET /items/") and "deleted" in f.lower() for f in buggy.failures
    ), buggy.failures


def test_coverage_generation_is_time_bounded() -> None:
    # A pattern, a format and a length bound together make schemathesis search for
    # minutes for the longest valid string; the run moves on and says so.
    app = FastAPI()

    @app.post("/reset", responses={400: {"description": "Unparseable body"}})
    async def reset(body: Reset) -> dict[str, str]:
        return {}

    # Schemathesis' negative mutation of `[^@\\s]` patterns can produce a value that still
    # matches (it appended `*` to an address and called it a pattern violation), so the
    # rejection check is left out here: this test is about the time bound.
    checks = [c for c in ALL_CHECKS if c.__name__ != "negative_data_rejection"]
    started = time.monotonic()
    report = fuzz_operations(
        schemathesis.openapi.from_asgi("/openapi.json", app), examples=2, checks=checks
    )
    assert time.monotonic() - started < 60
    assert report.notes == ["[coverage] POST /reset: case generation stopped after 5 s"]
    assert not report.failures, report.failures


# The budget's alarm never fires where its exception would be lost: inside code the
# interpreter calls on its own (a weak reference's callback, a collector callback).
def _verdicts_in(name: str, filename: str, run: Any) -> list[bool]:
    """Whether each call of `name` in `filename` made while `run()` runs counts as such
    a callback (what the alarm's handler would decide there)."""
    seen: list[bool] = []

    def tracer(frame: FrameType, event: str, arg: object) -> None:
        code = frame.f_code
        if event == "call" and code.co_name == name and code.co_filename == filename:
            seen.append(_inside_unraisable_callback(frame))

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return seen


def test_a_weak_key_dictionarys_callback_is_one() -> None:
    class Held:
        pass

    table: weakref.WeakKeyDictionary[Held, int] = weakref.WeakKeyDictionary()
    held = [Held()]
    table[held[0]] = 1
    assert _verdicts_in("remove", weakref.__file__, held.clear) == [True]
    assert len(table) == 0


def test_a_collector_callback_is_one_and_ordinary_code_is_not() -> None:
    def gc_callback(phase: str, info: dict[str, int]) -> None:
        pass

    gc.callbacks.append(gc_callback)
    try:
        assert True in _verdicts_in("gc_callback", __file__, gc.collect)
    finally:
        gc.callbacks.remove(gc_callback)
    assert not _inside_unraisable_callback(sys._getframe())
