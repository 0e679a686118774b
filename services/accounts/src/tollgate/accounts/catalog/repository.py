"""The catalog's own reads of the registry: the listed APIs' ids and versions, so the
catalog only loads (and rebuilds) an API whose `version` it has not built yet. Every change
of an API (its routes included) bumps that version (`apis.service`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Api


async def listed_versions(
    session: AsyncSession, statuses: Sequence[str]
) -> list[tuple[uuid.UUID, int]]:
    """(id, version) of every API in `statuses`, by name: no document is read."""
    stmt = (
        select(Api.id, Api.version).where(Api.status.in_(list(statuses))).order_by(Api.name, Api.id)
    )
    return [(row.id, row.version) for row in await session.execute(stmt)]


async def version_by_slug(session: AsyncSession, slug: str) -> tuple[uuid.UUID, int, str] | None:
    """(id, version, status) of the API at `slug`, without its document."""
    stmt = select(Api.id, Api.version, Api.status).where(Api.slug == slug)
    row = (await session.execute(stmt)).first()
    return (row.id, row.version, row.status) if row is not None else None


async def apis_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Api]:
    """The full rows of `ids` (documents included), in no particular order."""
    if not ids:
        return []
    return list((await session.scalars(select(Api).where(Api.id.in_(list(ids))))).all())
