"""Every SQL statement on the API registry."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Api, ApiRoute


async def existing_api_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    if not ids:
        return set()
    return set((await session.scalars(select(Api.id).where(Api.id.in_(list(ids))))).all())


async def insert_api(session: AsyncSession, **values: Any) -> Api:
    api = Api(**values)
    session.add(api)
    await session.flush()
    return api


async def get_api(session: AsyncSession, api_id: uuid.UUID) -> Api | None:
    return await session.get(Api, api_id)


async def get_api_by_slug(session: AsyncSession, slug: str) -> Api | None:
    return (await session.scalars(select(Api).where(Api.slug == slug))).one_or_none()


async def lock_api(session: AsyncSession, api_id: uuid.UUID) -> Api | None:
    stmt = select(Api).where(Api.id == api_id).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def delete_api(session: AsyncSession, api_id: uuid.UUID) -> None:
    await session.execute(delete(Api).where(Api.id == api_id))


async def list_apis(session: AsyncSession, *, after: uuid.UUID | None, limit: int) -> list[Api]:
    stmt = select(Api).order_by(Api.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Api.id > after)
    return list((await session.scalars(stmt)).all())


async def list_by_status(session: AsyncSession, statuses: Sequence[str]) -> list[Api]:
    stmt = select(Api).where(Api.status.in_(list(statuses))).order_by(Api.name, Api.id)
    return list((await session.scalars(stmt)).all())


async def list_all_api_ids(session: AsyncSession) -> list[uuid.UUID]:
    return list((await session.scalars(select(Api.id).order_by(Api.id))).all())


async def routes_of(
    session: AsyncSession, api_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ApiRoute]]:
    if not api_ids:
        return {}
    rows = await session.scalars(
        select(ApiRoute).where(ApiRoute.api_id.in_(list(api_ids))).order_by(ApiRoute.id)
    )
    found: dict[uuid.UUID, list[ApiRoute]] = {}
    for row in rows:
        found.setdefault(row.api_id, []).append(row)
    return found


async def insert_route(session: AsyncSession, **values: Any) -> ApiRoute:
    route = ApiRoute(**values)
    session.add(route)
    await session.flush()
    return route


async def get_route(
    session: AsyncSession, api_id: uuid.UUID, route_id: uuid.UUID
) -> ApiRoute | None:
    stmt = select(ApiRoute).where(ApiRoute.id == route_id, ApiRoute.api_id == api_id)
    return (await session.scalars(stmt)).one_or_none()


async def find_route(
    session: AsyncSession, api_id: uuid.UUID, method: str, path_template: str
) -> ApiRoute | None:
    stmt = select(ApiRoute).where(
        ApiRoute.api_id == api_id,
        ApiRoute.method == method,
        ApiRoute.path_template == path_template,
    )
    return (await session.scalars(stmt)).one_or_none()


async def delete_routes(session: AsyncSession, route_ids: Sequence[uuid.UUID]) -> None:
    if route_ids:
        await session.execute(delete(ApiRoute).where(ApiRoute.id.in_(list(route_ids))))
