"""RFC 9457 problem details: the one error format of every Tollgate HTTP API.

Raise a named problem anywhere in a request: `NotFound("not-found", "No such key.")`,
`Conflict("last-owner", ...)`. The class fixes the status and its title (RFC 9110's
reason phrase), the first argument is the stable slug clients branch on (the `type`
URI is `PROBLEM_BASE + slug`); no title is ever typed by hand. The handlers installed
by `install_problem_handlers` turn problems, FastAPI's validation errors and
Starlette's HTTP errors into `application/problem+json` carrying the request id.
Validation errors never echo the submitted values (they may be passwords).

The OpenAPI document lists the slugs each problem response may carry
(`x-problem-types`): the generic ones per status (`GENERIC_SLUGS`) and the route's own,
given with `documented_problems`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}
"""RFC 9110 reason phrases where Python 3.11's `HTTPStatus` still has the RFC 7231 ones."""


def status_title(status: int) -> str:
    """The title of a problem with this status: RFC 9110's reason phrase."""
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(Exception):
    """An error answered as problem+json; `slug` becomes the `type` URI.

    Raise the named subclasses (`NotFound`, `Conflict`, ...); this base is for the rare
    status without one."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        slug: str,
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


class _NamedProblem(Problem):
    status_code: int = 500

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(
            self.status_code,
            status_title(self.status_code),
            detail,
            slug=slug,
            headers=headers,
            **extensions,
        )


class BadRequest(_NamedProblem):
    """400: the request cannot be acted on as sent."""

    status_code = 400


class Unauthorized(_NamedProblem):
    """401: no valid credentials; always carries the bearer challenge."""

    status_code = 401

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(
            slug, detail, headers={**BEARER_CHALLENGE, **(headers or {})}, **extensions
        )


class PaymentRequired(_NamedProblem):
    """402: prepaid credits exhausted."""

    status_code = 402


class Forbidden(_NamedProblem):
    """403: authenticated, but not allowed."""

    status_code = 403


class NotFound(_NamedProblem):
    """404: no such object, or not visible to the caller."""

    status_code = 404


class Conflict(_NamedProblem):
    """409: conflicts with the current state."""

    status_code = 409


class Gone(_NamedProblem):
    """410: existed once, not any more."""

    status_code = 410


class ContentTooLarge(_NamedProblem):
    """413: the request body is over the cap."""

    status_code = 413


class Unprocessable(_NamedProblem):
    """422: well-formed, but not valid."""

    status_code = 422


class TooManyRequests(_NamedProblem):
    """429: throttled; give `Retry-After` in `headers` when known."""

    status_code = 429


class ServiceUnavailable(_NamedProblem):
    """503: not available right now (not ready, or configuration missing)."""

    status_code = 503


BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tollgate"'}
"""The RFC 6750 challenge every 401 of a JWT-protected service carries."""

GENERIC_SLUGS: dict[int, tuple[str, ...]] = {
    400: ("too-deep", "bad-request"),
    401: ("unauthorized",),
    402: ("payment-required",),
    403: ("forbidden",),
    404: ("not-found",),
    405: ("method-not-allowed",),
    409: ("conflict",),
    410: ("gone",),
    413: ("too-large",),
    415: ("unsupported-media-type",),
    422: ("validation",),
    429: ("too-many-requests",),
    500: ("internal",),
    503: ("not-ready", "unavailable"),
}
"""Slugs any route may answer with per status (the kit's own answers, and the slug of
a bare HTTP error Starlette raises: an unmatched path is `not-found`)."""


def default_slug(status: int) -> str:
    """The slug of an HTTP error raised without one (routing, Starlette)."""
    slugs = GENERIC_SLUGS.get(status)
    return slugs[-1] if slugs else "error"


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


PROBLEM_TYPES_KEY = "x-problem-types"
"""OpenAPI extension on a problem response: the slugs it may carry."""


def _documented(
    description: str, status: int | None = None, slugs: Sequence[str] = ()
) -> dict[str, Any]:
    generic = GENERIC_SLUGS.get(status, ()) if status is not None else ()
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_SCHEMA}},
        PROBLEM_TYPES_KEY: sorted({*slugs, *generic}),
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: _documented(text, status)
    for status, text in {
        400: "Bad request",
        401: "Not authenticated",
        403: "Not allowed",
        404: "Not found (or not visible to the caller)",
        409: "Conflict with the current state",
        413: "Request body too large",
        422: "Invalid request",
        429: "Too many requests; see Retry-After",
        503: "Not available right now (not ready, or configuration missing)",
    }.items()
}
"""The problem+json answers every route of every service may give, documented once
for the whole OpenAPI document (`create_app` applies them), so schema-driven clients
and the schema fuzz tests check error bodies too."""


def documented_problems(
    descriptions: Mapping[int, str | tuple[str, Sequence[str]]],
) -> dict[int | str, dict[str, Any]]:
    """Route-specific wording for problem answers (`responses=` of a route), each either
    a description or `(description, [slugs the route answers with])`; the body stays
    documented as problem+json and the generic slugs of the status are listed too."""
    out: dict[int | str, dict[str, Any]] = {}
    for status, given in descriptions.items():
        text, slugs = (given, ()) if isinstance(given, str) else given
        out[status] = _documented(text, status, slugs)
    return out


def document_problem_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Make sure every problem response of an OpenAPI document lists its slugs (the
    generic ones of its status at least); returns `schema`, changed in place."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for code, response in operation.get("responses", {}).items():
                if PROBLEM_CONTENT_TYPE not in response.get("content", {}):
                    continue
                status = int(code) if str(code).isdigit() else None
                generic = GENERIC_SLUGS.get(status, ()) if status is not None else ()
                declared = response.get(PROBLEM_TYPES_KEY, [])
                response[PROBLEM_TYPES_KEY] = sorted({*declared, *generic}) or ["error"]
    return schema


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
    """Serialise a problem document; without a slug, the status's generic one."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or default_slug(status)),
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
    if exc.status_code == 401:
        headers = {**BEARER_CHALLENGE, **headers}
    title = status_title(exc.status_code)
    return problem_response(
        exc.status_code,
        title,
        detail if detail not in (title, HTTPStatus(exc.status_code).phrase) else None,
        slug=default_slug(exc.status_code),
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
    return problem_response(500, status_title(500), slug="internal", instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` a problem+json response."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unhandled)
