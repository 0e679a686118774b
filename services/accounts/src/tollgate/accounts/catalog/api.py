"""HTTP transport of the public catalog: `/v1/catalog`. Every `active` and `deprecated`
API with what a customer needs to choose and call it (name, description, tags, version,
status, Sunset, prices) and its consumer OpenAPI document (`consumer_openapi`).

Nothing else leaves: no upstream URL, no credential or credential header name, no sandbox
URL, no route the consumer document removes. With `public_catalog` on (the default) these
routes need no token; off, they answer org members and admins only, like `/v1/apis`.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from tollgate.accounts.apis import repository as repo
from tollgate.accounts.apis.api import _may_read
from tollgate.accounts.apis.service import not_found
from tollgate.accounts.caller import _caller
from tollgate.accounts.catalog.consumer_openapi import ApiFacts, RouteFacts, consumer_document
from tollgate.accounts.config import CurrentSettings
from tollgate.accounts.models import Api, ApiRoute
from tollgate.kit.auth import bearer_token
from tollgate.kit.db import DbSession
from tollgate.kit.problems import documented_problems

router = APIRouter(prefix="/catalog", tags=["catalog"])

LISTED = ("active", "deprecated")
_SPACES = re.compile(r"\s+")
_ERRORS = documented_problems({404: ("No such API in the catalog.", ["api-not-found"])})


class CatalogApi(BaseModel):
    """An API as the catalog shows it to anyone."""

    id: uuid.UUID
    slug: str
    name: str
    description: str
    api_version: str
    status: str
    sunset_at: datetime | None
    price: int
    price_low: int
    price_high: int
    limits: dict[str, int]
    tags: list[str]


class Catalog(BaseModel):
    items: list[CatalogApi]


async def _admitted(request: Request, settings: CurrentSettings) -> None:
    if settings.public_catalog:
        return
    _may_read(await _caller(request, bearer_token(request)))


def _summary(doc: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The imported document's description (first paragraph) and its tags."""
    if not doc:
        return "", []
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    description = info.get("description") if isinstance(info, dict) else None
    text = description.strip().split("\n\n")[0][:300] if isinstance(description, str) else ""
    tags: list[str] = []
    for tag in doc.get("tags") or []:
        if isinstance(tag, dict) and isinstance(tag.get("name"), str):
            tags.append(_SPACES.sub(" ", tag["name"]))
    for item in (doc.get("paths") or {}).values():
        if isinstance(item, dict):
            for operation in item.values():
                if isinstance(operation, dict):
                    tags.extend(t for t in operation.get("tags") or [] if isinstance(t, str))
    return text, sorted(set(tags))[:20]


def _entry(api: Api, routes: list[ApiRoute]) -> CatalogApi:
    description, tags = _summary(api.openapi_document)
    prices = [api.price if r.price is None else r.price for r in routes] or [api.price]
    return CatalogApi(
        id=api.id,
        slug=api.slug,
        name=api.name,
        description=description,
        api_version=api.api_version,
        status=api.status,
        sunset_at=api.sunset_at,
        price=api.price,
        price_low=min(prices),
        price_high=max(prices),
        limits=dict(api.limits),
        tags=tags,
    )


def _facts(api: Api, routes: list[ApiRoute]) -> ApiFacts:
    return ApiFacts(
        slug=api.slug,
        name=api.name,
        api_version=api.api_version,
        status=api.status,
        price=api.price,
        upstream_url=api.upstream_url,
        sunset_at=api.sunset_at,
        limits=dict(api.limits),
        upstream_header_names=list(api.upstream_header_names),
        routes=[
            RouteFacts(
                method=r.method,
                path_template=r.path_template,
                price=r.price,
                limits=dict(r.limits),
                required_scopes=list(r.required_scopes),
                operation_id=r.operation_id,
                deprecated=r.deprecated,
                sunset_at=r.sunset_at,
            )
            for r in routes
        ],
    )


async def _listed(db: DbSession, slug: str) -> tuple[Api, list[ApiRoute]]:
    api = await repo.get_api_by_slug(db, slug)
    if api is None or api.status not in LISTED:
        raise not_found()
    return api, (await repo.routes_of(db, [api.id])).get(api.id, [])


@router.get("", response_model=Catalog)
async def catalog(request: Request, settings: CurrentSettings, db: DbSession) -> Catalog:
    """Every active and deprecated API, by name."""
    await _admitted(request, settings)
    async with db.begin():
        apis = await repo.list_by_status(db, LISTED)
        routes = await repo.routes_of(db, [a.id for a in apis])
    return Catalog(items=[_entry(a, routes.get(a.id, [])) for a in apis])


@router.get("/{slug}", response_model=CatalogApi, responses=_ERRORS)
async def catalog_api(
    slug: str, request: Request, settings: CurrentSettings, db: DbSession
) -> CatalogApi:
    """One API of the catalog."""
    await _admitted(request, settings)
    async with db.begin():
        api, routes = await _listed(db, slug)
    return _entry(api, routes)


@router.get("/{slug}/openapi", response_model=dict[str, Any], responses=_ERRORS)
async def catalog_openapi(
    slug: str, request: Request, settings: CurrentSettings, db: DbSession
) -> dict[str, Any]:
    """The API's consumer OpenAPI 3.1 document: the gateway as its only server, the key
    schemes, prices and limits per operation; no upstream host or credential."""
    await _admitted(request, settings)
    async with db.begin():
        api, routes = await _listed(db, slug)
    return consumer_document(_facts(api, routes), api.openapi_document, settings.gateway_url)
