"""API registry rules: create, change, retire, delete APIs and their routes, import
OpenAPI documents.

Every change bumps the API's `version` and writes its complete state, routes
included, to the APIs topic through the outbox (`ApiUpserted`). Upstream credential
headers are sealed once, at write time; the same sealed text rests in the table and
travels in the event, so plaintext exists only in the request that set it and in
the gateway's memory. Upstream URLs pass the SSRF check on every write.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.apis import changelog_repository
from tollgate.accounts.apis import repository as repo
from tollgate.accounts.apis.changelog import Published, changes_between, public_changes
from tollgate.accounts.apis.credentials import credential_header_names
from tollgate.accounts.apis.openapi_import import routes_of
from tollgate.accounts.apis.schemas import (
    HOP_BY_HOP,
    ApiCreateIn,
    ApiOut,
    ApiPatch,
    ChangelogEntryOut,
    ImportOut,
    RouteIn,
    RouteOut,
    RoutePatch,
)
from tollgate.accounts.apis.upstreams import validate_upstream
from tollgate.accounts.apis.visibility import visible_routes
from tollgate.accounts.audit.service import record
from tollgate.accounts.caller import Actor
from tollgate.accounts.config import Settings
from tollgate.accounts.limits import as_contract
from tollgate.accounts.models import Api, ApiChangelogEntry, ApiRoute
from tollgate.accounts.sealed import sealer
from tollgate.contracts import topics
from tollgate.contracts.events.accounts import (
    ApiChange,
    ApiChanged,
    ApiStatus,
    ApiUpserted,
    RouteSpec,
    SandboxSettings,
)
from tollgate.contracts.ids import uuid7
from tollgate.kit.audit import changed_fields
from tollgate.kit.outbox import emit, emit_tombstone
from tollgate.kit.problems import Conflict, NotFound, Problem, Unprocessable


def not_found(what: str = "API", slug: str = "api-not-found") -> Problem:
    """404 with the object's own slug (`api-not-found`, `route-not-found`, ...)."""
    return NotFound(slug, f"No such {what}.")


def api_out(api: Api, routes: list[ApiRoute], *, admin: bool) -> ApiOut:
    return ApiOut(
        id=api.id,
        slug=api.slug,
        name=api.name,
        api_version=api.api_version,
        upstream_url=api.upstream_url if admin else None,
        status=api.status,
        deprecated_at=api.deprecated_at,
        sunset_at=api.sunset_at,
        timeout_ms=api.timeout_ms,
        price=api.price,
        charge_failed_calls=api.charge_failed_calls,
        limits=dict(api.limits),
        has_upstream_credentials=api.upstream_headers_sealed is not None,
        upstream_header_names=list(api.upstream_header_names) if admin else [],
        has_openapi_document=api.openapi_document is not None,
        sandbox_url=api.sandbox_url if admin else None,
        sandbox=dict(api.sandbox or {}),
        routes=[
            RouteOut.model_validate(r)
            for r in visible_routes(api.openapi_document, routes, admin=admin)
        ],
        version=api.version,
        created_at=api.created_at,
        updated_at=api.updated_at,
    )


async def _upstream(settings: Settings, url: str) -> str:
    return await validate_upstream(
        url,
        allow_private=settings.allow_private_upstreams,
        resolve=settings.resolve_upstream_hosts,
    )


def _seal_headers(settings: Settings, headers: dict[str, str]) -> str:
    refused = sorted(name for name in headers if name.lower() in HOP_BY_HOP)
    if refused:
        raise Unprocessable(
            "header-not-allowed",
            f"Header names the gateway sets itself cannot be injected: {', '.join(refused)}.",
        )
    return sealer(settings).seal(json.dumps(headers, separators=(",", ":")))


async def publish_state(session: AsyncSession, settings: Settings, api: Api) -> list[ApiRoute]:
    """Bump nothing; write the API's full current state to the APIs topic."""
    routes = (await repo.routes_of(session, [api.id])).get(api.id, [])
    await emit(
        session,
        ApiUpserted(
            api_id=api.id,
            slug=api.slug,
            name=api.name,
            api_version=api.api_version,
            upstream_url=api.upstream_url,
            status=ApiStatus(api.status),
            deprecated_at=api.deprecated_at,
            sunset_at=api.sunset_at,
            timeout_ms=api.timeout_ms,
            price=api.price,
            charge_failed_calls=api.charge_failed_calls,
            limits=as_contract(api.limits),
            routes=[
                RouteSpec(
                    route_id=r.id,
                    method=r.method,
                    path_template=r.path_template,
                    price=r.price,
                    limits=as_contract(r.limits),
                    required_scopes=list(r.required_scopes),
                    sandbox=SandboxSettings(**r.sandbox) if r.sandbox is not None else None,
                    deprecated=r.deprecated,
                    deprecated_at=r.deprecated_at,
                    sunset_at=r.sunset_at,
                )
                for r in routes
            ],
            upstream_headers_sealed=api.upstream_headers_sealed,
            sandbox_url=api.sandbox_url,
            sandbox=SandboxSettings(**(api.sandbox or {})),
            openapi_document=published_document(settings, api.openapi_document),
            version=api.version,
            updated_at=api.updated_at,
        ),
        subject=str(api.id),
    )
    return routes


def published_document(
    settings: Settings, document: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The OpenAPI document as gateways get it in `ApiUpserted` (the mock and validation
    are built from it), or None when it is larger than `max_published_openapi_bytes`
    (compact JSON): one compacted record per API must stay under the broker's limit."""
    if document is None:
        return None
    size = len(json.dumps(document, separators=(",", ":")).encode())
    return document if size <= settings.max_published_openapi_bytes else None


async def _changed(session: AsyncSession, settings: Settings, api: Api) -> list[ApiRoute]:
    api.version += 1
    api.updated_at = datetime.now(UTC)
    await session.flush()
    return await publish_state(session, settings, api)


def _route_values(route: RouteIn, now: datetime) -> dict[str, Any]:
    return {
        "method": route.method,
        "path_template": route.path_template,
        "price": route.price,
        "limits": route.limits.stored(),
        "required_scopes": route.required_scopes,
        "sandbox": route.sandbox.stored() if route.sandbox is not None else None,
        "deprecated": route.deprecated,
        "deprecated_at": now if route.deprecated else None,
        "sunset_at": route.sunset_at,
    }


def _check_sunset(sunset_at: datetime | None) -> None:
    """A route's Sunset lies ahead: a past one would retire the route as it is saved
    (the gateway answers 410 from then on)."""
    if sunset_at is not None and sunset_at <= datetime.now(UTC):
        raise Unprocessable("sunset-in-past", "sunset_at must be in the future.")


def _duplicate_route() -> Problem:
    return Conflict("route-exists", "A route with this method and path exists.")


async def create_api(
    session: AsyncSession, settings: Settings, actor: Actor, body: ApiCreateIn
) -> ApiOut:
    upstream = await _upstream(settings, body.upstream_url)
    sandbox_url = await _upstream(settings, body.sandbox_url) if body.sandbox_url else None
    if await repo.get_api_by_slug(session, body.slug) is not None:
        raise Conflict("slug-taken", "An API with this slug exists.")
    seen = {(r.method, r.path_template) for r in body.routes}
    if len(seen) != len(body.routes):
        raise _duplicate_route()
    for route in body.routes:
        _check_sunset(route.sunset_at)
    now = datetime.now(UTC)
    api = await repo.insert_api(
        session,
        id=uuid7(),
        slug=body.slug,
        name=body.name,
        api_version=body.api_version,
        upstream_url=upstream,
        status=body.status,
        deprecated_at=now if body.status != "active" else None,
        sunset_at=body.sunset_at,
        timeout_ms=body.timeout_ms,
        price=body.price,
        charge_failed_calls=body.charge_failed_calls,
        limits=body.limits.stored(),
        upstream_headers_sealed=(
            _seal_headers(settings, body.upstream_headers) if body.upstream_headers else None
        ),
        upstream_header_names=sorted(body.upstream_headers or {}),
        sandbox_url=sandbox_url,
        sandbox=body.sandbox.stored(),
        created_at=now,
        updated_at=now,
        version=1,
    )
    for route in body.routes:
        await repo.insert_route(session, id=uuid7(), api_id=api.id, **_route_values(route, now))
    routes = await publish_state(session, settings, api)
    await record(
        session,
        actor,
        "api.create",
        target_type="api",
        target_id=api.id,
        diff={
            "slug": api.slug,
            "upstream_url": upstream,
            "routes": len(routes),
            "credential_names": api.upstream_header_names,
        },
    )
    return api_out(api, routes, admin=True)


async def get_api(session: AsyncSession, api_id: uuid.UUID, *, admin: bool) -> ApiOut:
    api = await repo.get_api(session, api_id)
    if api is None:
        raise not_found()
    routes = (await repo.routes_of(session, [api.id])).get(api.id, [])
    return api_out(api, routes, admin=admin)


async def list_apis(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int, admin: bool
) -> list[ApiOut]:
    apis = await repo.list_apis(session, after=after, limit=limit)
    routes = await repo.routes_of(session, [a.id for a in apis])
    return [api_out(a, routes.get(a.id, []), admin=admin) for a in apis]


async def _locked(session: AsyncSession, api_id: uuid.UUID) -> Api:
    api = await repo.lock_api(session, api_id)
    if api is None:
        raise not_found()
    return api


async def update_api(
    session: AsyncSession, settings: Settings, actor: Actor, api_id: uuid.UUID, patch: ApiPatch
) -> ApiOut:
    api = await _locked(session, api_id)
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for field in patch.model_fields_set:
        value = getattr(patch, field)
        if field == "upstream_headers":
            sealed = _seal_headers(settings, value) if value else None
            api.upstream_headers_sealed = sealed
            names = sorted(value or {})
            # The header names only (values are sealed); any change of the values shows
            # as `upstream_headers` replaced.
            old["upstream_header_names"] = list(api.upstream_header_names)
            new["upstream_header_names"] = names
            old["upstream_headers"], new["upstream_headers"] = "sealed", "replaced"
            api.upstream_header_names = names
            continue
        if value is None and field not in ("sunset_at", "sandbox_url"):
            raise Unprocessable("validation", f"{field} cannot be null.")
        if field in ("upstream_url", "sandbox_url") and value is not None:
            value = await _upstream(settings, value)
        if field == "sandbox":
            value = patch.sandbox.stored() if patch.sandbox else {}
        if field == "limits":
            value = patch.limits.stored() if patch.limits else {}
        before = getattr(api, field)
        if before != value:
            old[field], new[field] = before, value
            setattr(api, field, value)
    diff = changed_fields(old, new)
    if "status" in new:
        api.deprecated_at = (
            None if api.status == "active" else (api.deprecated_at or datetime.now(UTC))
        )
    if diff:
        routes = await _changed(session, settings, api)
        await record(session, actor, "api.update", target_type="api", target_id=api.id, diff=diff)
    else:
        routes = (await repo.routes_of(session, [api.id])).get(api.id, [])
    return api_out(api, routes, admin=True)


async def delete_api(
    session: AsyncSession, settings: Settings, actor: Actor, api_id: uuid.UUID
) -> None:
    """Delete an API; one already gone is left as it is (a retried delete)."""
    api = await repo.lock_api(session, api_id)
    if api is None:
        return
    await repo.delete_api(session, api.id)
    await emit_tombstone(session, topics.ACCOUNTS_APIS, str(api.id))
    await record(
        session, actor, "api.delete", target_type="api", target_id=api.id, diff={"slug": api.slug}
    )


async def add_route(
    session: AsyncSession, settings: Settings, actor: Actor, api_id: uuid.UUID, body: RouteIn
) -> RouteOut:
    _check_sunset(body.sunset_at)
    api = await _locked(session, api_id)
    if await repo.find_route(session, api.id, body.method, body.path_template):
        raise _duplicate_route()
    route = await repo.insert_route(
        session, id=uuid7(), api_id=api.id, **_route_values(body, datetime.now(UTC))
    )
    await _changed(session, settings, api)
    await record(
        session,
        actor,
        "api.route_create",
        target_type="route",
        target_id=route.id,
        diff={
            "api_id": str(api.id),
            "method": route.method,
            "path_template": route.path_template,
            "price": route.price,
            "deprecated": route.deprecated,
            "sunset_at": route.sunset_at.isoformat() if route.sunset_at else None,
        },
    )
    return RouteOut.model_validate(route)


async def list_routes(session: AsyncSession, api_id: uuid.UUID, *, admin: bool) -> list[RouteOut]:
    """The API's routes; members do not see those its document marks `x-internal`."""
    api = await repo.get_api(session, api_id)
    if api is None:
        raise not_found()
    routes = (await repo.routes_of(session, [api_id])).get(api_id, [])
    return [
        RouteOut.model_validate(r)
        for r in visible_routes(api.openapi_document, routes, admin=admin)
    ]


async def update_route(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    api_id: uuid.UUID,
    route_id: uuid.UUID,
    patch: RoutePatch,
) -> RouteOut:
    api = await _locked(session, api_id)
    route = await repo.get_route(session, api.id, route_id)
    if route is None:
        raise not_found("route", "route-not-found")
    _check_sunset(patch.sunset_at)
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for field in patch.model_fields_set:
        value = getattr(patch, field)
        if value is None and field not in ("price", "sandbox", "sunset_at"):
            raise Unprocessable("validation", f"{field} cannot be null.")
        if field == "limits":
            value = patch.limits.stored() if patch.limits else {}
        if field == "sandbox":
            value = patch.sandbox.stored() if patch.sandbox is not None else None
        if getattr(route, field) != value:
            old[field], new[field] = getattr(route, field), value
            setattr(route, field, value)
    diff = changed_fields(old, new)
    if "deprecated" in new:
        # The `Deprecation` date: when the route was (last) marked deprecated.
        route.deprecated_at = datetime.now(UTC) if route.deprecated else None
    if "method" in new or "path_template" in new:
        clash = await repo.find_route(session, api.id, route.method, route.path_template)
        if clash is not None and clash.id != route.id:
            raise _duplicate_route()
    if diff:
        await session.flush()
        await _changed(session, settings, api)
        await record(
            session, actor, "api.route_update", target_type="route", target_id=route.id, diff=diff
        )
    return RouteOut.model_validate(route)


async def delete_route(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    api_id: uuid.UUID,
    route_id: uuid.UUID,
) -> None:
    """Delete a route; one already gone is left as it is (a retried delete)."""
    api = await repo.lock_api(session, api_id)
    route = await repo.get_route(session, api.id, route_id) if api is not None else None
    if api is None or route is None:
        return
    await repo.delete_routes(session, [route.id])
    await _changed(session, settings, api)
    await record(
        session,
        actor,
        "api.route_delete",
        target_type="route",
        target_id=route.id,
        diff={"method": route.method, "path_template": route.path_template},
    )


async def import_openapi(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    api_id: uuid.UUID,
    doc: dict[str, Any],
    *,
    replace: bool,
) -> ImportOut:
    """Create a route per operation of `doc` and keep `doc`. Existing routes with the
    same method and path keep their price and limits; with `replace`, routes the
    document no longer has are removed. Operations marked `deprecated: true` deprecate
    their route (new or existing); an import never un-deprecates one (an admin does)."""
    api = await _locked(session, api_id)
    imported = routes_of(doc)
    existing = (await repo.routes_of(session, [api.id])).get(api.id, [])
    present = {(r.method, r.path_template) for r in existing}
    by_operation = {(r.method, r.path_template): r for r in existing}
    wanted = {(r.method, r.path_template) for r in imported}
    now = datetime.now(UTC)
    created = 0
    deprecated = 0
    for route in imported:
        if (route.method, route.path_template) in present:
            current = by_operation.get((route.method, route.path_template))
            if route.deprecated and current is not None and not current.deprecated:
                current.deprecated, current.deprecated_at = True, now
                deprecated += 1
            continue
        await repo.insert_route(
            session,
            id=uuid7(),
            api_id=api.id,
            method=route.method,
            path_template=route.path_template,
            price=None,
            limits={},
            required_scopes=route.required_scopes,
            operation_id=route.operation_id,
            deprecated=route.deprecated,
            deprecated_at=now if route.deprecated else None,
        )
        present.add((route.method, route.path_template))
        created += 1
        deprecated += route.deprecated
    stale = [r.id for r in existing if (r.method, r.path_template) not in wanted]
    removed = 0
    if replace and stale:
        await repo.delete_routes(session, stale)
        removed = len(stale)
    before = Published(api.openapi_document, _route_keys(existing))
    api.openapi_document = doc
    routes = await _changed(session, settings, api)
    await _record_changes(session, api, before, Published(doc, _route_keys(routes)))
    kept = len(existing) - removed
    await record(
        session,
        actor,
        "api.openapi_import",
        target_type="api",
        target_id=api.id,
        diff={
            "created": created,
            "removed": removed,
            "deprecated": deprecated,
            "replace": replace,
            "title": str(doc.get("info", {}).get("title", ""))[:200],
        },
    )
    return ImportOut(
        created=created, kept=kept, removed=removed, api=api_out(api, routes, admin=True)
    )


MAX_EVENT_CHANGES = 1000
"""Changes carried by one `ApiChanged` event (breaking ones first); the changelog keeps
them all. A 1 MiB document can differ in more operations than fit a Kafka record."""


def _route_keys(routes: list[ApiRoute]) -> frozenset[tuple[str, str]]:
    return frozenset((r.method, r.path_template) for r in routes)


def _credential_headers(api: Api, *docs: dict[str, Any] | None) -> frozenset[str]:
    """Lower-case header names that carry credentials in any of `docs` (the consumer
    document's rule: the gateway's key headers, the upstream's injected ones, the
    documents' apiKey headers)."""
    names: set[str] = set()
    for doc in docs:
        names |= credential_header_names(api.upstream_header_names, doc)
    return frozenset(names)


async def _record_changes(
    session: AsyncSession, api: Api, before: Published, after: Published
) -> None:
    """Keep what the import changed in the API's operations, with the part customers may
    see decided now, against the documents and routes before and after the import (later
    nothing could tell whether a removed operation was internal), and announce that part
    (`ApiChanged`, delivered to every org's webhooks; nothing when it is empty); an import
    that changed no operation leaves no entry."""
    changes = changes_between(before.document, after.document or {})
    if not changes:
        return
    breaking = sum(change.breaking for change in changes)
    credentials = _credential_headers(api, before.document, after.document)
    public = public_changes(changes, before, after, credentials)
    await changelog_repository.insert_entry(
        session,
        ApiChangelogEntry(
            id=uuid7(),
            api_id=api.id,
            api_version=api.api_version,
            version=api.version,
            imported_at=api.updated_at,
            changes=[change.model_dump(mode="json") for change in changes],
            breaking=breaking,
            public_changes=[change.model_dump(mode="json") for change in public],
        ),
    )
    if not public:
        return
    await emit(
        session,
        ApiChanged(
            api_id=api.id,
            slug=api.slug,
            name=api.name,
            api_version=api.api_version,
            version=api.version,
            changes=public[:MAX_EVENT_CHANGES],
            breaking=sum(change.breaking for change in public),
            changed_at=api.updated_at,
        ),
        subject=str(api.id),
    )


async def changelog(
    session: AsyncSession, api_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[ChangelogEntryOut]:
    """An API's changelog, newest import first; 404 for an unknown API."""
    if await repo.get_api(session, api_id) is None:
        raise not_found()
    entries = await changelog_repository.entries_of(session, api_id, before=before, limit=limit)
    return [
        ChangelogEntryOut(
            id=e.id,
            api_id=e.api_id,
            api_version=e.api_version,
            version=e.version,
            imported_at=e.imported_at,
            breaking=e.breaking,
            changes=[ApiChange.model_validate(c) for c in e.changes],
        )
        for e in entries
    ]


async def openapi_document(session: AsyncSession, api_id: uuid.UUID) -> dict[str, Any]:
    api = await repo.get_api(session, api_id)
    if api is None:
        raise not_found()
    if api.openapi_document is None:
        raise not_found("OpenAPI document for this API", "openapi-not-found")
    return api.openapi_document


async def republish_all(session: AsyncSession, settings: Settings) -> int:
    """Write every API's state again with a new version (rebuilds a lost topic)."""
    count = 0
    for api_id in await repo.list_all_api_ids(session):
        api = await repo.lock_api(session, api_id)
        if api is not None:
            await _changed(session, settings, api)
            count += 1
    return count
