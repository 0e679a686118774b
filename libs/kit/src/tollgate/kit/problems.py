"""RFC 9457 problem details: the one error format of every Tollgate HTTP API.

Raise `Problem(status, title, detail)` anywhere in a request; the handlers installed
by `install_problem_handlers` turn it, FastAPI's validation errors and Starlette's
HTTP errors into `application/problem+json` carrying the request id. Validation
errors never echo the submitted values (they may be passwords).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from tollgate.kit.logs import request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://tollgate.dev/problems/"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error answered as problem+json; `slug` becomes the `type` URI."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug
        self.headers = headers or {}
        self.extensions = extensions


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "additionalProperties": True,
}


def _documented(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_SCHEMA}},
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Bad request"),
    401: _documented("Not authenticated"),
    403: _documented("Not allowed"),
    404: _documented("Not found (or not visible to the caller)"),
    409: _documented("Conflict with the current state"),
    413: _documented("Request body too large"),
    422: _documented("Invalid request"),
    429: _documented("Too many requests; see Retry-After"),
    503: _documented("Not available right now (not ready, or configuration missing)"),
}
"""The problem+json answers every route of every service may give, documented once
for the whole OpenAPI document (`create_app` applies them), so schema-driven clients
and the schema fuzz tests check error bodies too."""


def documented_problems(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """Route-specific wording for problem answers (`responses=` of a route); the body
    stays documented as problem+json."""
    return {status: _documented(text) for status, text in descriptions.items()}


def problem_body(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    slug: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    **extensions: Any,
) -> bytes:
    """Serialise a problem document."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    body.update(extensions)
    return orjson.dumps(body)


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    slug: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem+json response carrying the current request id."""
    body = problem_body(
        status,
        title,
        detail,
        slug=slug,
        instance=instance,
        request_id=request_id_var.get(),
        **extensions,
    )
    return Response(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extensions,
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return problem_response(
        exc.status_code,
        _phrase(exc.status_code),
        detail if detail != _phrase(exc.status_code) else None,
        instance=request.url.path,
        headers=headers,
    )


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's 405 names only the first
    route's (`GET` where `GET` and `PATCH` are two routes), which misleads clients."""
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    # FastAPI keeps an included router as one entry whose candidates are its routes.
    for route in routes:
        nested = getattr(route, "effective_candidates", None)
        if callable(nested):
            yield from _leaf_routes(nested())
        else:
            yield route


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return problem_response(
        422,
        "Unprocessable Content",
        "The request does not match the expected shape.",
        slug="validation",
        instance=request.url.path,
        errors=errors,
    )


async def _on_unhandled(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, "Internal Server Error", instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` a problem+json response."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unhandled)
