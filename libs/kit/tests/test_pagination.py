"""One cursor format and one page shape: round trips, refusals, and the shared list
contract run against a small in-memory list."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from tollgate.kit.pagination import (
    Cursor,
    Page,
    PageSize,
    decode_cursor,
    encode_cursor,
    next_cursor_of,
    page_after,
    uuid_cursor,
)
from tollgate.kit.problems import Problem
from tollgate.kit.service import create_app
from tollgate.kit.testing.pages import check_list_contract, tampered_cursors


def test_a_cursor_round_trips_its_key() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.uuid4()
    cursor = encode_cursor(moment, ident, 7)
    assert decode_cursor(cursor, datetime, uuid.UUID, int) == (moment, ident, 7)
    assert "=" not in cursor


@pytest.mark.parametrize("bad", tampered_cursors(encode_cursor(uuid.UUID(int=7))))
def test_a_cursor_that_is_not_ours_is_422_invalid_cursor(bad: str) -> None:
    with pytest.raises(Problem) as refused:
        uuid_cursor(bad)
    assert (refused.value.status, refused.value.slug) == (422, "invalid-cursor")


def test_a_cursor_of_another_shape_is_refused() -> None:
    with pytest.raises(Problem):
        decode_cursor(encode_cursor("x"), int)
    with pytest.raises(Problem):
        decode_cursor(encode_cursor(1, 2), int)
    with pytest.raises(Problem):
        decode_cursor(encode_cursor("2026-01-01T00:00:00"), datetime)  # naive


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_a_cursor_time_with_no_utc_equivalent_is_422_not_a_server_error(moment: str) -> None:
    # Before: the cursor was taken, and the database driver's conversion to UTC
    # raised OverflowError inside the query: a 500 for a tampered cursor.
    with pytest.raises(Problem) as refused:
        decode_cursor(encode_cursor(moment, str(uuid.UUID(int=1))), datetime, uuid.UUID)
    assert (refused.value.status, refused.value.slug) == (422, "invalid-cursor")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


def _numbers_app(count: int) -> FastAPI:
    app = create_app(
        service="t", title="t", description="d", lifespan=_lifespan, max_body_bytes=2048
    )
    rows = [{"id": n} for n in range(count, 0, -1)]  # newest first

    @app.get("/numbers", response_model=Page[dict[str, int]])
    async def numbers(cursor: Cursor = None, limit: PageSize = 50) -> Page[dict[str, int]]:
        before = decode_cursor(cursor, int)[0] if cursor else None
        fetched = [r for r in rows if before is None or r["id"] < before][: limit + 1]
        page, nxt = next_cursor_of([_Row(r["id"]) for r in fetched], limit, "id")
        return Page[dict[str, int]](items=[{"id": r.id} for r in page], next_cursor=nxt)

    return app


class _Row:
    def __init__(self, ident: int) -> None:
        self.id = ident


@pytest.mark.parametrize("count", [0, 1, 2, 5])
async def test_the_list_contract_holds_for_a_keyset_list(count: int) -> None:
    transport = httpx.ASGITransport(app=_numbers_app(count))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        items = await check_list_contract(
            client, "/numbers", headers={}, expected=set(range(1, count + 1))
        )
    assert [i["id"] for i in items] == list(range(count, 0, -1))


async def test_the_list_contract_holds_for_a_list_cut_in_memory() -> None:
    app = create_app(
        service="t", title="t", description="d", lifespan=_lifespan, max_body_bytes=2048
    )
    rows = [{"name": name, "rank": rank} for rank, name in reversed(list(enumerate("abcde")))]

    @app.get("/letters", response_model=Page[dict[str, str | int]])
    async def letters(cursor: Cursor = None, limit: PageSize = 50) -> Page[dict[str, str | int]]:
        page, nxt = page_after(rows, cursor, limit, lambda r: (r["rank"], r["name"]), (int, str))
        return Page[dict[str, str | int]](items=page, next_cursor=nxt)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        items = await check_list_contract(
            client, "/letters", headers={}, expected=set("abcde"), key=lambda i: i["name"]
        )
    assert [i["name"] for i in items] == list("abcde")
