"""The FastAPI app factory every HTTP service (all but the gateway) starts from.

`create_app` wires the pieces a service must not forget: problem+json errors, a
request id on every request and response (`X-Request-ID`, also in every log line),
a request body cap (413), a nesting limit on JSON bodies (400 above
`MAX_JSON_DEPTH`, checked on the raw bytes before anything parses them), trace
context from `traceparent`, HTTP metrics, and the operational endpoints `/healthz`
(alive), `/readyz` (every registered readiness check passes) and `/metrics`.
Services register readiness checks in their lifespan with
`add_ready_check(app, name, check)`.

Given the service's settings, it keeps them for `settings_dependency` and answers CORS
for the origins of `cors_origins` (off when empty). The OpenAPI document lists the
problem slugs of every error response (`x-problem-types`) and the bearer JWT scheme
the routes that need a token declare.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry import trace
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollgate.contracts.ids import uuid7
from tollgate.kit.audit import AuditTrail
from tollgate.kit.logs import request_id_var
from tollgate.kit.metrics import HTTP_DURATION, HTTP_REQUESTS, exposition
from tollgate.kit.problems import (
    PROBLEM_RESPONSES,
    document_problem_types,
    install_problem_handlers,
    problem_body,
    problem_response,
)
from tollgate.kit.requests import MAX_JSON_DEPTH, json_too_deep
from tollgate.kit.settings import ServiceSettings, origins
from tollgate.kit.telemetry import context_from_headers

ReadyCheck = Callable[[], Awaitable[bool]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_OPS_SUFFIXES = ("/healthz", "/readyz", "/metrics")
_tracer = trace.get_tracer("tollgate.http")


class RequestContextMiddleware:
    """Request id, body cap, tracing and metrics around every HTTP request."""

    def __init__(self, app: ASGIApp, *, service: str, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else str(uuid7())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _send_too_large(send, request_id, self.max_body_bytes)
            request_id_var.reset(token)
            return

        received = 0
        too_large = False

        async def capped_receive() -> Message:
            # Over the cap: answer 413 here and tell the app the client went away, so
            # no handler ever sees a partial body.
            nonlocal received, too_large, status, response_started
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    if not response_started:
                        await _send_too_large(send, request_id, self.max_body_bytes)
                        response_started = True
                        status = 413
                    return {"type": "http.disconnect"}
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if too_large:
                return  # the 413 is already out; drop whatever the app answers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        ctx = context_from_headers(headers)
        try:
            with _tracer.start_as_current_span(
                scope["method"], context=ctx, kind=trace.SpanKind.SERVER
            ) as span:
                try:
                    await self.app(scope, capped_receive, send_with_id)
                finally:
                    # Named after the route template once routing has run: a span name
                    # per id would make every request its own operation in the backend.
                    template = getattr(scope.get("route"), "path", None)
                    if template is not None:
                        span.update_name(f"{scope['method']} {template}")
                        span.set_attribute("http.route", template)
                    span.set_attribute("http.response.status_code", status)
        except Exception:
            if not too_large:
                raise
        finally:
            request_id_var.reset(token)
            path = scope["path"]
            if not path.endswith(_OPS_SUFFIXES):
                route = scope.get("route")
                label = getattr(route, "path", "unmatched")
                HTTP_REQUESTS.labels(self.service, scope["method"], label, str(status)).inc()
                HTTP_DURATION.labels(self.service, scope["method"], label).observe(
                    time.perf_counter() - started
                )


class JsonDepthLimit:
    """Refuses (400 problem+json) a JSON request body nested deeper than `max_depth`
    before the app sees it: Python's parser and every recursive walk over the parsed
    value (validators, NUL checks) would otherwise fail with a RecursionError, a 500.

    Runs inside the body cap, so what it buffers is at most `max_body_bytes`. Bodies the
    app reads as JSON are checked: `application/json`, `application/*+json`, and bodies
    sent without a content type (FastAPI parses those as JSON too).
    """

    def __init__(self, app: ASGIApp, *, max_depth: int) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower()
        if content_type and not _is_json_media_type(content_type):
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        if buffered[-1]["type"] == "http.request":
            body = b"".join(m.get("body", b"") for m in buffered)
            if json_too_deep(body, self.max_depth):
                await _send_problem(
                    send,
                    problem_body(
                        400,
                        "Bad Request",
                        f"JSON bodies may be nested at most {self.max_depth} levels deep.",
                        slug="too-deep",
                        request_id=request_id_var.get(),
                    ),
                    400,
                )
                return
            buffered = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)


def _is_json_media_type(media_type: bytes) -> bool:
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


async def _send_problem(send: Send, body: bytes, status: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_too_large(send: Send, request_id: str, limit: int) -> None:
    body = problem_body(
        413,
        "Content Too Large",
        f"Request bodies are limited to {limit} bytes.",
        slug="too-large",
        request_id=request_id,
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _document_problem_types(app: FastAPI) -> None:
    """Post-process the generated document so every problem response names its slugs."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problem_types(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_ready_check(app: FastAPI, name: str, check: ReadyCheck) -> None:
    """Register a readiness check (e.g. database ping, consumer caught up)."""
    app.state.ready_checks[name] = check


def create_app(
    *,
    service: str,
    title: str,
    description: str,
    lifespan: Lifespan,
    max_body_bytes: int,
    max_json_depth: int = MAX_JSON_DEPTH,
    version: str = "0.1.0",
    ops_prefix: str = "",
    settings: ServiceSettings | None = None,
    audit: bool = True,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with Tollgate's operational endpoints and middleware; `settings`
    (the service's) are kept in `app.state.settings` and set the CORS allow-list.
    With `audit`, every successful state-changing call of a signed-in caller writes an
    audit record to the service's outbox (`tollgate.kit.audit`)."""
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
        **fastapi_kwargs,
    )
    app.state.ready_checks = {}
    if settings is not None:
        app.state.settings = settings
    install_problem_handlers(app)
    _document_problem_types(app)
    # Added first, so it runs inside the body cap (and sees the request id).
    app.add_middleware(JsonDepthLimit, max_depth=max_json_depth)
    allowed = origins(settings.cors_origins) if settings is not None else []
    if allowed:
        # Inside the request id middleware, so preflight answers carry one too. No
        # cookies anywhere: tokens travel in Authorization, so credentials stay off.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=allowed,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Location"],
            max_age=600,
        )
    if audit:
        # Inside the request id middleware (the record carries the id), outside the
        # body checks (it keeps the body the app read).
        app.add_middleware(AuditTrail, service=service, fastapi_app=app)
    app.add_middleware(RequestContextMiddleware, service=service, max_body_bytes=max_body_bytes)

    @app.get(f"{ops_prefix}/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(f"{ops_prefix}/readyz", include_in_schema=False)
    async def readyz() -> Response:
        checks: dict[str, ReadyCheck] = app.state.ready_checks
        results = {name: await check() for name, check in checks.items()}
        if all(results.values()):
            return Response(b'{"status":"ready"}', media_type="application/json")
        failing = sorted(name for name, ok in results.items() if not ok)
        return problem_response(
            503, "Service Unavailable", "Not ready: " + ", ".join(failing), slug="not-ready"
        )

    @app.get(f"{ops_prefix}/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return app
