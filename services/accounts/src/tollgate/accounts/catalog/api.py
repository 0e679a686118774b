"""HTTP transport of the public catalog: `/v1/catalog`. Every `active` and `deprecated`
API with what a customer needs to choose and call it (name, description, tags, version,
status, Sunset, prices), its consumer OpenAPI document (`consumer_openapi`) and its
changelog as customers see it.

Nothing else leaves: no upstream URL, no credential or credential header name, no sandbox
URL, no route the consumer document removes. The public changelog shows the part of each
entry decided public when it was imported (`api_changelog.public_changes`: operations
customers could call in the document each change came from), less any change naming a
header that carries credentials now (an upstream header can be added without an import).
With `public_catalog` on (the default) these routes need no token; off, they answer org
members and admins only, like `/v1/apis`.

Anonymous calls are counted per client IP (`catalog_max_per_ip` per `catalog_window_seconds`,
in the sign-in throttle's Postgres counters, so every replica shares them; 429 with
`Retry-After` past it); a valid token is not counted. What the catalog builds from an API
(its entry, its consumer document) is kept in process, keyed by the API's registry
`version`, which every change of the API or its routes bumps: a request reads the ids and
versions of the listed APIs and loads and rebuilds only what changed.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.apis import changelog_repository
from tollgate.accounts.apis import repository as repo
from tollgate.accounts.apis.api import _may_read
from tollgate.accounts.apis.credentials import credential_header_names
from tollgate.accounts.apis.schemas import SLUG_PATTERN
from tollgate.accounts.apis.service import not_found
from tollgate.accounts.apis.visibility import visible_routes
from tollgate.accounts.caller import _caller, client_ip
from tollgate.accounts.catalog import repository as catalog_repo
from tollgate.accounts.catalog.consumer_openapi import (
    ApiFacts,
    Language,
    RouteFacts,
    consumer_document,
)
from tollgate.accounts.config import CurrentSettings, Settings
from tollgate.accounts.identity import throttle
from tollgate.accounts.models import Api, ApiChangelogEntry, ApiRoute
from tollgate.contracts.events.accounts import ApiChange
from tollgate.kit.auth import Principal, bearer_token, unauthorized
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    next_cursor_of,
    uuid_cursor,
)
from tollgate.kit.problems import TooManyRequests, Unauthorized, documented_problems

router = APIRouter(prefix="/catalog", tags=["catalog"])

LISTED = ("active", "deprecated")
CATALOG_IP = "catalog_ip"
_SPACES = re.compile(r"\s+")
_SLUG = re.compile(SLUG_PATTERN)
_THROTTLED = (
    "Too many catalog requests from this address; try again later.",
    ["catalog-throttled"],
)
_LIST_ERRORS = documented_problems({429: _THROTTLED})
_ERRORS = documented_problems(
    {404: ("No such API in the catalog.", ["api-not-found"]), 429: _THROTTLED}
)
K = TypeVar("K")
V = TypeVar("V")


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


class PublicChangelogEntry(BaseModel):
    """What one OpenAPI import changed in the operations customers can call."""

    id: uuid.UUID
    api_version: str = Field(description="The API's own version label at the import.")
    imported_at: datetime
    breaking: int = Field(description="How many of `changes` are breaking.")
    changes: list[ApiChange] = Field(description="Breaking changes first.")


class _Recent(Generic[K, V]):
    """A small least-recently-used map (one per process; asyncio, no threads)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class _Document:
    """An API's consumer document as served, and the header names the public changelog
    leaves out (lower case: those carrying credentials now)."""

    body: bytes
    credential_headers: frozenset[str]


_ENTRIES: _Recent[tuple[uuid.UUID, int], CatalogApi] = _Recent(1024)
# Consumer documents are up to a few hundred KiB each: fewer of them.
_DOCUMENTS: _Recent[tuple[uuid.UUID, int, str, str], _Document] = _Recent(128)


def _summary(doc: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The imported document's description (first paragraph) and its tags (those of
    `x-internal` operations left out, as the consumer document leaves them out)."""
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
        if isinstance(item, dict) and item.get("x-internal") is not True:
            for operation in item.values():
                if isinstance(operation, dict) and operation.get("x-internal") is not True:
                    tags.extend(t for t in operation.get("tags") or [] if isinstance(t, str))
    return text, sorted(set(tags))[:20]


def _entry(api: Api, routes: list[ApiRoute]) -> CatalogApi:
    description, tags = _summary(api.openapi_document)
    public = visible_routes(api.openapi_document, routes, admin=False)
    prices = [api.price if r.price is None else r.price for r in public] or [api.price]
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


def _document_of(
    api: Api, routes: list[ApiRoute], gateway_url: str, language: Language
) -> _Document:
    facts = _facts(api, routes)
    imported = api.openapi_document
    doc = consumer_document(facts, imported, gateway_url, language)
    source = imported if isinstance(imported, dict) else {}
    return _Document(
        body=orjson.dumps(doc),
        credential_headers=frozenset(credential_header_names(facts.upstream_header_names, source)),
    )


# ---- who may read, and how often


async def _signed_in(request: Request) -> Principal | None:
    """The caller of a valid token; None without one (a bad token counts as none)."""
    if "authorization" not in request.headers:
        return None
    try:
        return await _caller(request, bearer_token(request))
    except Unauthorized:
        return None


async def _admitted(request: Request, settings: Settings, db: AsyncSession) -> None:
    """Let the caller read the catalog: a closed catalog answers members and admins only;
    an open one anyone, callers without a valid token within their address's limit."""
    caller = await _signed_in(request)
    if not settings.public_catalog:
        if caller is None:
            raise unauthorized("Missing or invalid bearer token.")
        _may_read(caller)
        return
    if caller is not None:
        return
    ip = throttle.address_subject(client_ip(request))
    counter = throttle.Counter(CATALOG_IP, ip, settings.catalog_max_per_ip)
    # A transaction of its own: a 404 that follows must not take the count back.
    async with db.begin():
        taken = await throttle.take(db, (counter,), settings.catalog_window_seconds)
    if isinstance(taken, throttle.Throttled):
        raise TooManyRequests(
            "catalog-throttled",
            _THROTTLED[0],
            headers={"Retry-After": str(taken.retry_after)},
            retry_after=taken.retry_after,
        )


# ---- what is read, built once per API version


async def _entries(db: AsyncSession) -> list[CatalogApi]:
    listed = await catalog_repo.listed_versions(db, LISTED)
    missing = [api_id for api_id, version in listed if _ENTRIES.get((api_id, version)) is None]
    if missing:
        apis = await catalog_repo.apis_by_ids(db, missing)
        routes = await repo.routes_of(db, missing)
        for api in apis:
            _ENTRIES.put((api.id, api.version), _entry(api, routes.get(api.id, [])))
    entries = []
    for api_id, version in listed:
        entry = _ENTRIES.get((api_id, version))
        if entry is not None:  # None: changed between the two reads; next time
            entries.append(entry)
    return entries


async def _listed(db: AsyncSession, slug: str) -> tuple[uuid.UUID, int]:
    if len(slug) > 63 or not _SLUG.fullmatch(slug):  # no API has it (a NUL failed the query)
        raise not_found()
    found = await catalog_repo.version_by_slug(db, slug)
    if found is None or found[2] not in LISTED:
        raise not_found()
    return found[0], found[1]


async def _loaded(db: AsyncSession, api_id: uuid.UUID) -> tuple[Api, list[ApiRoute]]:
    api = await repo.get_api(db, api_id)
    if api is None or api.status not in LISTED:
        raise not_found()
    return api, (await repo.routes_of(db, [api.id])).get(api.id, [])


async def _one_entry(db: AsyncSession, slug: str) -> CatalogApi:
    api_id, version = await _listed(db, slug)
    entry = _ENTRIES.get((api_id, version))
    if entry is None:
        api, routes = await _loaded(db, api_id)
        entry = _entry(api, routes)
        _ENTRIES.put((api.id, api.version), entry)
    return entry


async def _document(
    db: AsyncSession, slug: str, gateway_url: str, language: Language = Language.EN
) -> tuple[uuid.UUID, _Document]:
    api_id, version = await _listed(db, slug)
    document = _DOCUMENTS.get((api_id, version, gateway_url, language))
    if document is None:
        api, routes = await _loaded(db, api_id)
        document = _document_of(api, routes, gateway_url, language)
        _DOCUMENTS.put((api.id, api.version, gateway_url, language), document)
    return api_id, document


def _public_entry(row: ApiChangelogEntry, document: _Document) -> PublicChangelogEntry | None:
    """The entry as customers see it: its public changes, less those naming a header that
    carries credentials now; None when none is left."""
    changes = [ApiChange.model_validate(c) for c in row.public_changes]
    shown = [
        c
        for c in changes
        if not (c.location == "header" and (c.name or "").lower() in document.credential_headers)
    ]
    if not shown:
        return None
    return PublicChangelogEntry(
        id=row.id,
        api_version=row.api_version,
        imported_at=row.imported_at,
        breaking=sum(c.rule is not None for c in shown),
        changes=shown,
    )


# ---- routes


@router.get("", response_model=Catalog, responses=_LIST_ERRORS)
async def catalog(request: Request, settings: CurrentSettings, db: DbSession) -> Catalog:
    """Every active and deprecated API, by name."""
    await _admitted(request, settings, db)
    async with db.begin():
        return Catalog(items=await _entries(db))


@router.get("/{slug}", response_model=CatalogApi, responses=_ERRORS)
async def catalog_api(
    slug: str, request: Request, settings: CurrentSettings, db: DbSession
) -> CatalogApi:
    """One API of the catalog."""
    await _admitted(request, settings, db)
    async with db.begin():
        return await _one_entry(db, slug)


@router.get("/{slug}/openapi", response_model=dict[str, Any], responses=_ERRORS)
async def catalog_openapi(
    slug: str,
    request: Request,
    settings: CurrentSettings,
    db: DbSession,
    lang: Annotated[
        Language, Query(description="Language of what Tollgate writes into the document.")
    ] = Language.EN,
) -> Response:
    """The API's consumer OpenAPI 3.1 document: the gateway as its only server, the key
    schemes, prices and limits per operation; no upstream host or credential. Tollgate's
    own text (key schemes, prices, limits, deprecation notes) is in `lang`; the API's own
    text stays as imported."""
    await _admitted(request, settings, db)
    async with db.begin():
        _, document = await _document(db, slug, settings.gateway_url, lang)
    return Response(document.body, media_type="application/json")


@router.get("/{slug}/changelog", response_model=Page[PublicChangelogEntry], responses=_ERRORS)
async def catalog_changelog(
    slug: str,
    request: Request,
    settings: CurrentSettings,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[PublicChangelogEntry]:
    """What each OpenAPI import changed in the operations customers could call, newest
    first; breaking changes carry their `rule`. An import that changed only internal
    operations is left out (a page holds fewer than `limit` entries only when a change
    names a header that has carried credentials since)."""
    before = uuid_cursor(cursor)
    await _admitted(request, settings, db)
    async with db.begin():
        api_id, document = await _document(db, slug, settings.gateway_url)
        rows = await changelog_repository.public_entries_of(
            db, api_id, before=before, limit=limit + 1
        )
    page, nxt = next_cursor_of(rows, limit, "id")
    items = [e for e in (_public_entry(row, document) for row in page) if e is not None]
    return Page[PublicChangelogEntry](items=items, next_cursor=nxt)
