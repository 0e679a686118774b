"""HTTP transport of the API registry: `/v1/apis`. Admins manage APIs; org members
may list and read them (never the credentials)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from tollgate.accounts.apis import service
from tollgate.accounts.apis.openapi_fetch import MAX_URL_LENGTH, fetch_document
from tollgate.accounts.apis.openapi_import import OpenApiInvalid, parse_document
from tollgate.accounts.apis.schemas import (
    ApiCreateIn,
    ApiOut,
    ApiPatch,
    ChangelogEntryOut,
    ImportOut,
    RouteIn,
    RouteOut,
    RoutePatch,
)
from tollgate.accounts.caller import Actor, CurrentActor, CurrentCaller
from tollgate.accounts.config import CurrentSettings, Settings
from tollgate.kit.auth import Principal, require_admin
from tollgate.kit.db import DbSession
from tollgate.kit.netpolicy import NetworkPolicy
from tollgate.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    next_cursor_of,
    page_after,
    uuid_cursor,
)
from tollgate.kit.problems import ContentTooLarge, Forbidden, Unprocessable, documented_problems
from tollgate.kit.requests import RequestModel

router = APIRouter(prefix="/apis", tags=["apis"])

_OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "an OpenAPI 3.x document, JSON or YAML",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def _may_read(caller: Principal) -> None:
    if not caller.is_admin and not caller.org_roles:
        raise Forbidden("forbidden", "Org members and admins only.")


def _admin(actor_principal: Principal | None) -> None:
    assert actor_principal is not None
    require_admin(actor_principal)


_API_ERRORS = documented_problems({404: ("No such API.", ["api-not-found"])})
_ROUTE_ERRORS = documented_problems(
    {404: ("No such API or route.", ["api-not-found", "route-not-found"])}
)
_FETCH_ERRORS = documented_problems(
    {
        404: ("No such API.", ["api-not-found"]),
        413: ("The document is larger than `max_openapi_bytes`.", ["too-large"]),
        422: (
            "The URL or an address it leads to is refused, the document could not be "
            "fetched, or it is not an OpenAPI 3.x document.",
            ["openapi-url-refused", "openapi-unreachable", "invalid-openapi"],
        ),
    }
)
_DOCUMENT_ERRORS = documented_problems(
    {404: ("No such API, or it has no OpenAPI document.", ["api-not-found", "openapi-not-found"])}
)


@router.post("", status_code=201, response_model=ApiOut)
async def create_api(
    settings: CurrentSettings,
    body: ApiCreateIn,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> ApiOut:
    """Register an API (admins). `upstream_headers` are sealed and never shown again."""
    _admin(actor.principal)
    async with db.begin():
        return await service.create_api(db, settings, actor, body)


@router.get("", response_model=Page[ApiOut])
async def list_apis(
    caller: CurrentCaller, db: DbSession, cursor: Cursor = None, limit: PageSize = DEFAULT_PAGE_SIZE
) -> Page[ApiOut]:
    _may_read(caller)
    async with db.begin():
        rows = await service.list_apis(
            db, after=uuid_cursor(cursor), limit=limit + 1, admin=caller.is_admin
        )
    page, nxt = next_cursor_of(rows, limit, "id")
    return Page[ApiOut](items=page, next_cursor=nxt)


@router.get("/{api_id}", response_model=ApiOut, responses=_API_ERRORS)
async def get_api(api_id: uuid.UUID, caller: CurrentCaller, db: DbSession) -> ApiOut:
    _may_read(caller)
    async with db.begin():
        return await service.get_api(db, api_id, admin=caller.is_admin)


@router.patch("/{api_id}", response_model=ApiOut, responses=_API_ERRORS)
async def update_api(
    settings: CurrentSettings,
    api_id: uuid.UUID,
    body: ApiPatch,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> ApiOut:
    """Change an API (admins); unknown or read-only fields are refused (422)."""
    _admin(actor.principal)
    async with db.begin():
        return await service.update_api(db, settings, actor, api_id, body)


@router.delete("/{api_id}", status_code=204, responses=_API_ERRORS)
async def delete_api(
    settings: CurrentSettings,
    api_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> Response:
    """Delete an API (admins); gateways forget it (tombstone). Prefer `status: retired`."""
    _admin(actor.principal)
    async with db.begin():
        await service.delete_api(db, settings, actor, api_id)
    return Response(status_code=204)


@router.get("/{api_id}/routes", response_model=Page[RouteOut], responses=_API_ERRORS)
async def list_routes(
    api_id: uuid.UUID,
    caller: CurrentCaller,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = MAX_PAGE_SIZE,
) -> Page[RouteOut]:
    """The API's routes, one page at a time (members: not those of operations its
    OpenAPI document marks `x-internal`)."""
    _may_read(caller)
    async with db.begin():
        routes = await service.list_routes(db, api_id, admin=caller.is_admin)
    page, next_cursor = page_after(routes, cursor, limit, lambda r: (r.id,), (uuid.UUID,))
    return Page[RouteOut](items=page, next_cursor=next_cursor)


@router.post("/{api_id}/routes", status_code=201, response_model=RouteOut, responses=_API_ERRORS)
async def add_route(
    settings: CurrentSettings,
    api_id: uuid.UUID,
    body: RouteIn,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> RouteOut:
    _admin(actor.principal)
    async with db.begin():
        return await service.add_route(db, settings, actor, api_id, body)


@router.patch("/{api_id}/routes/{route_id}", response_model=RouteOut, responses=_ROUTE_ERRORS)
async def update_route(
    settings: CurrentSettings,
    api_id: uuid.UUID,
    route_id: uuid.UUID,
    body: RoutePatch,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> RouteOut:
    _admin(actor.principal)
    async with db.begin():
        return await service.update_route(db, settings, actor, api_id, route_id, body)


@router.delete("/{api_id}/routes/{route_id}", status_code=204, responses=_ROUTE_ERRORS)
async def delete_route(
    settings: CurrentSettings,
    api_id: uuid.UUID,
    route_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> Response:
    _admin(actor.principal)
    async with db.begin():
        await service.delete_route(db, settings, actor, api_id, route_id)
    return Response(status_code=204)


class OpenApiUrlIn(RequestModel):
    """Where accounts fetches an OpenAPI document from."""

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="http or https URL of an OpenAPI 3.x document (JSON or YAML); fetched "
        "by accounts under the upstream SSRF rules, redirects re-checked",
    )


async def _import_document(
    db: DbSession,
    settings: Settings,
    actor: Actor,
    api_id: uuid.UUID,
    raw: bytes,
    *,
    replace: bool,
) -> ImportOut:
    try:
        doc = parse_document(raw)
    except (OpenApiInvalid, UnicodeDecodeError) as exc:
        raise Unprocessable("invalid-openapi", f"Invalid OpenAPI document: {exc}") from exc
    async with db.begin():
        try:
            return await service.import_openapi(db, settings, actor, api_id, doc, replace=replace)
        except OpenApiInvalid as exc:
            raise Unprocessable("invalid-openapi", f"Invalid OpenAPI document: {exc}") from exc


@router.post(
    "/{api_id}/openapi",
    response_model=ImportOut,
    openapi_extra=_OPENAPI_BODY,
    responses=_API_ERRORS,
)
async def import_openapi(
    settings: CurrentSettings,
    api_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
    replace: Annotated[bool, Query(description="remove routes the document lacks")] = False,
) -> ImportOut:
    """Import an OpenAPI 3.x document (JSON or YAML body): one route per operation;
    the document is kept for the developer portal."""
    _admin(actor.principal)
    raw = await request.body()
    if len(raw) > settings.max_openapi_bytes:
        raise ContentTooLarge("too-large", "The document is too large.")
    return await _import_document(db, settings, actor, api_id, raw, replace=replace)


@router.post("/{api_id}/openapi/from-url", response_model=ImportOut, responses=_FETCH_ERRORS)
async def import_openapi_from_url(
    settings: CurrentSettings,
    api_id: uuid.UUID,
    body: OpenApiUrlIn,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
    replace: Annotated[bool, Query(description="remove routes the document lacks")] = False,
) -> ImportOut:
    """Import the OpenAPI 3.x document at `url`, fetched by accounts (http or https;
    loopback and private addresses only with `allow_private_upstreams`, link-local and
    metadata never; at most 3 redirects, each checked; `max_openapi_bytes`; 10 s).
    Otherwise as `POST /v1/apis/{id}/openapi`."""
    _admin(actor.principal)
    async with db.begin():
        await service.get_api(db, api_id, admin=True)  # 404 before any outbound request
    policy = NetworkPolicy(allow_private=settings.allow_private_upstreams)
    raw = await fetch_document(body.url, policy=policy, max_bytes=settings.max_openapi_bytes)
    return await _import_document(db, settings, actor, api_id, raw, replace=replace)


@router.get("/{api_id}/openapi", response_model=dict[str, Any], responses=_DOCUMENT_ERRORS)
async def get_openapi(api_id: uuid.UUID, caller: CurrentCaller, db: DbSession) -> dict[str, Any]:
    """The imported OpenAPI document as imported (admins; members and the developer
    portal read the catalog's, without what it marks internal)."""
    require_admin(caller)
    async with db.begin():
        return await service.openapi_document(db, api_id)


@router.get("/{api_id}/changelog", response_model=Page[ChangelogEntryOut], responses=_API_ERRORS)
async def get_changelog(
    api_id: uuid.UUID,
    caller: CurrentCaller,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[ChangelogEntryOut]:
    """What each OpenAPI import changed in the API's operations, newest first;
    breaking changes carry their `rule` (admins; members and the developer portal read
    the catalog's, with only the public changes)."""
    require_admin(caller)
    async with db.begin():
        rows = await service.changelog(db, api_id, before=uuid_cursor(cursor), limit=limit + 1)
    page, nxt = next_cursor_of(rows, limit, "id")
    return Page[ChangelogEntryOut](items=page, next_cursor=nxt)
