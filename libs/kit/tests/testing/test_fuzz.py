"""The fuzzing loop reports what an API gets wrong (a 5xx, a response its schema does
not allow), and nothing about one that behaves."""

from __future__ import annotations

from typing import Annotated, Any

import schemathesis
from fastapi import FastAPI, Header, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tollgate.kit.testing.fuzz import fuzz_operations


class Item(BaseModel):
    name: str


def _app(calls: list[str], *, with_bugs: bool) -> FastAPI:
    app = FastAPI()

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
