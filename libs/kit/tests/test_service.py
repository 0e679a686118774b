"""What every HTTP service gets from `create_app`: problem+json errors that never echo
submitted values, request ids, a body cap, and honest readiness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from tollgate.kit import service
from tollgate.kit.problems import Problem
from tollgate.kit.requests import json_too_deep
from tollgate.kit.service import add_ready_check, create_app


class Login(BaseModel):
    email: str
    password: str
    age: int


def build_app(ready: list[bool]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def check() -> bool:
            return ready[0]

        add_ready_check(app, "thing", check)
        yield

    app = create_app(
        service="test", title="t", description="d", lifespan=lifespan, max_body_bytes=2048
    )

    @app.post("/login")
    async def login(body: Login) -> dict[str, str]:
        return {"ok": body.email}

    @app.patch("/login")
    async def relogin() -> dict[str, str]:
        return {"ok": "again"}

    things = APIRouter()

    @things.get("/things")
    async def list_things() -> list[str]:
        return []

    @things.put("/things")
    async def put_things() -> list[str]:
        return []

    app.include_router(things, prefix="/v1")

    @app.get("/teapot")
    async def teapot() -> None:
        raise Problem(418, "I'm a teapot", "Short and stout.", slug="teapot", hint="tip")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


async def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://test",
    )


async def test_errors_are_problem_json_without_echoing_input() -> None:
    app = build_app([True])
    async with app.router.lifespan_context(app), await client_for(app) as client:
        bad = await client.post(
            "/login", json={"email": "a@b.c", "password": "hunter2-x", "age": "x"}
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert "hunter2-x" not in bad.text
        assert bad.json()["errors"][0]["loc"] == ["body", "age"]

        teapot = await client.get("/teapot")
        assert teapot.status_code == 418
        assert teapot.json()["type"].endswith("/teapot")
        assert teapot.json()["hint"] == "tip"
        assert teapot.json()["request_id"] == teapot.headers["x-request-id"]

        missing = await client.get("/nope")
        assert missing.status_code == 404
        assert missing.json()["title"] == "Not Found"

        boom = await client.get("/boom")
        assert boom.status_code == 500
        assert "secret internals" not in boom.text


async def test_405_allows_every_method_of_the_path() -> None:
    # Two routes at one path (POST and PATCH /login): Starlette alone names only the first.
    app = build_app([True])
    async with app.router.lifespan_context(app), await client_for(app) as client:
        reply = await client.request("OPTIONS", "/login")
        included = await client.request("OPTIONS", "/v1/things")
    assert reply.status_code == 405
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["allow"] == "PATCH, POST"
    assert included.status_code == 405
    assert included.headers["allow"] == "GET, PUT"


async def test_request_ids_are_kept_or_made() -> None:
    app = build_app([True])
    async with app.router.lifespan_context(app), await client_for(app) as client:
        given = await client.get("/healthz", headers={"x-request-id": "req-12345678"})
        assert given.headers["x-request-id"] == "req-12345678"
        made = await client.get("/healthz", headers={"x-request-id": "bad id!"})
        assert made.headers["x-request-id"] != "bad id!"
        assert len(made.headers["x-request-id"]) == 36


async def test_bodies_over_the_cap_get_413() -> None:
    app = build_app([True])
    async with app.router.lifespan_context(app), await client_for(app) as client:
        declared = await client.post("/login", content=b"x" * 4096)
        assert declared.status_code == 413
        assert declared.json()["status"] == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b"y" * 512

        streamed = await client.post("/login", content=chunks())
        assert streamed.status_code == 413


async def test_json_bodies_nested_too_deep_get_400_before_parsing() -> None:
    app = build_app([True])
    login = {"email": "a@b.c", "password": "p", "age": 3}

    def nested(levels: int) -> bytes:
        # `levels` levels in all: the object plus `levels - 1` arrays around the age.
        inner = "[" * (levels - 1) + "3" + "]" * (levels - 1)
        return f'{{"email": "a@b.c", "password": "p", "age": {inner}}}'.encode()

    async with app.router.lifespan_context(app), await client_for(app) as client:
        deep = await client.post(
            "/login", content=nested(900), headers={"content-type": "application/json"}
        )
        assert deep.status_code == 400, deep.text
        assert deep.headers["content-type"] == "application/problem+json"
        assert deep.json()["type"].endswith("/too-deep")
        assert deep.json()["request_id"] == deep.headers["x-request-id"]

        # Without a content type FastAPI parses JSON too; a +json type is JSON.
        for headers in ({}, {"content-type": "application/merge-patch+json; charset=utf-8"}):
            reply = await client.post("/login", content=nested(65), headers=headers)
            assert reply.status_code == 400, reply.text

        at_limit = await client.post(
            "/login", content=nested(64), headers={"content-type": "application/json"}
        )
        assert at_limit.status_code == 422  # parsed and validated: age is not a list
        assert at_limit.json()["errors"][0]["loc"] == ["body", "age"]

        # Brackets inside strings are text, not nesting.
        password = '\\"' + "[{" * 200
        texty = await client.post("/login", json={**login, "password": password})
        assert texty.status_code == 200, texty.text

        # Over the cap is still a 413, however deep.
        huge = await client.post(
            "/login", content=b"[" * 4096, headers={"content-type": "application/json"}
        )
        assert huge.status_code == 413


def test_json_depth_is_measured_on_the_raw_text() -> None:
    assert not json_too_deep(b"[" * 64 + b"]" * 64)
    assert json_too_deep(b"[" * 65 + b"]" * 65)
    assert json_too_deep(b"[" * 100_000)  # unterminated, still measured, no recursion
    assert not json_too_deep(b'["' + b"[" * 100 + b'"]')
    assert not json_too_deep(b'["\\"' + b"{" * 100 + b'"]')  # escaped quotes stay in
    assert json_too_deep(b'[{"a": [[[' + b"[" * 62 + b"]]]}]", limit=64)
    assert not json_too_deep(b"[" * 3 + b"]" * 3, limit=3)


async def test_readiness_follows_the_checks() -> None:
    ready = [False]
    app = build_app(ready)
    async with app.router.lifespan_context(app), await client_for(app) as client:
        assert (await client.get("/readyz")).status_code == 503
        assert "thing" in (await client.get("/readyz")).json()["detail"]
        ready[0] = True
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        metrics = await client.get("/metrics")
        assert "tollgate_http_requests_total" in metrics.text


async def test_spans_are_named_after_the_route_and_continue_the_callers_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(service, "_tracer", provider.get_tracer("test"))
    app = build_app([True])

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    trace_id = "ab" * 16
    caller = f"00-{trace_id}-{'cd' * 8}-01"
    async with app.router.lifespan_context(app), await client_for(app) as client:
        for thing_id in (1, 2):
            await client.get(f"/things/{thing_id}", headers={"traceparent": caller})
        await client.get("/teapot")
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["GET /things/{thing_id}"] * 2 + ["GET /teapot"]
    first = spans[0]
    assert first.context is not None
    assert f"{first.context.trace_id:032x}" == trace_id
    assert first.parent is not None
    assert f"{first.parent.span_id:016x}" == "cd" * 8
    assert first.attributes is not None
    assert first.attributes["http.route"] == "/things/{thing_id}"
    assert first.attributes["http.response.status_code"] == 200
    assert spans[2].attributes is not None
    assert spans[2].attributes["http.response.status_code"] == 418
