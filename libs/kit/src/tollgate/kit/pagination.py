"""Cursor pagination: one page shape and one cursor format for every list of every service.

A page is `{"items": [...], "next_cursor": "..." | null}`; a client passes `next_cursor`
back as `?cursor=` until it is null. A cursor is opaque to clients: the base64url
(unpadded) of a small JSON document `{"v": 1, "k": [...]}` holding the keyset position
(the sort key of the last item served). The version lets the format change without
misreading old cursors; a cursor that is not one of ours (bad base64, bad JSON, another
version, the wrong number or kinds of key parts) is a 422 `invalid-cursor` problem,
never a 500 and never a silent first page.

Keyset, not offset: pages stay stable while rows are added, and each page is one index
range scan. Routes fetch `limit + 1` rows and hand them to `page_of`. A short list that
is bounded by nature (an org's 20 contacts, the static event types, an API's routes) is
loaded whole and cut by the same keyset in memory (`page_after`): the same shape and
cursor for clients, no query per page to maintain.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field

from tollgate.kit.db import BIGINT_MAX
from tollgate.kit.problems import Unprocessable
from tollgate.kit.requests import in_utc

CURSOR_VERSION = 1
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
MAX_CURSOR_LENGTH = 512

T = TypeVar("T")
KeyPart = str | int | uuid.UUID | datetime

PageSize = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"items per page (max {MAX_PAGE_SIZE})")
]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page"),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T] = Field(description="this page's items, in the list's order")
    next_cursor: str | None = Field(
        None, description="cursor of the next page; null on the last page"
    )


def invalid_cursor() -> Unprocessable:
    """The problem every list answers for a cursor that is not one of ours."""
    return Unprocessable("invalid-cursor", "Invalid cursor.")


def _plain(part: KeyPart) -> str | int:
    if isinstance(part, bool):
        raise TypeError("booleans are not sort keys")
    if isinstance(part, int | str):
        return part
    if isinstance(part, datetime):
        return part.isoformat()
    return str(part)


def encode_cursor(*key: KeyPart) -> str:
    """An opaque cursor for the keyset position `key` (the last item's sort key)."""
    document = orjson.dumps({"v": CURSOR_VERSION, "k": [_plain(part) for part in key]})
    return base64.urlsafe_b64encode(document).decode().rstrip("=")


def _typed(value: object, kind: type[Any]) -> Any:
    if kind is int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not -BIGINT_MAX <= value <= BIGINT_MAX
        ):
            raise ValueError(value)
        return value
    if not isinstance(value, str):
        raise ValueError(value)
    if kind is str:
        return value
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is datetime:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return in_utc(moment)
    raise TypeError(f"unsupported cursor part {kind!r}")


def decode_cursor(cursor: str, *kinds: type[Any]) -> tuple[Any, ...]:
    """The keyset position inside `cursor`, one value per kind (`int`, `str`,
    `uuid.UUID`, aware `datetime`); 422 `invalid-cursor` when it is not one of ours."""
    try:
        document = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(document, dict) or document.get("v") != CURSOR_VERSION:
            raise ValueError("not a cursor of this version")
        parts = document.get("k")
        if not isinstance(parts, list) or len(parts) != len(kinds):
            raise ValueError("wrong number of key parts")
        return tuple(_typed(part, kind) for part, kind in zip(parts, kinds, strict=True))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise invalid_cursor() from exc


def uuid_cursor(cursor: str | None) -> uuid.UUID | None:
    """The UUID sort key inside `cursor` (None for the first page)."""
    if cursor is None:
        return None
    (value,) = decode_cursor(cursor, uuid.UUID)
    return value  # type: ignore[no-any-return]


def int_cursor(cursor: str | None) -> int | None:
    """The integer sort key inside `cursor` (None for the first page)."""
    if cursor is None:
        return None
    (value,) = decode_cursor(cursor, int)
    return value  # type: ignore[no-any-return]


def page_of(
    rows: Sequence[T], limit: int, key: Callable[[T], tuple[KeyPart, ...]]
) -> tuple[list[T], str | None]:
    """Split a `limit + 1` fetch into the page and the cursor of the next one."""
    if len(rows) <= limit:
        return list(rows), None
    page = list(rows[:limit])
    return page, encode_cursor(*key(page[-1]))


def next_cursor_of(rows: Sequence[T], limit: int, attribute: str) -> tuple[list[T], str | None]:
    """`page_of` keyed on one attribute of the row (`"id"`)."""
    return page_of(rows, limit, lambda row: (getattr(row, attribute),))


def page_after(
    rows: Sequence[T],
    cursor: str | None,
    limit: int,
    key: Callable[[T], tuple[Any, ...]],
    kinds: Sequence[type[Any]],
) -> tuple[list[T], str | None]:
    """`page_of` for a short list loaded whole, in ascending `key` order (whose parts have
    the cursor `kinds`): the rows after the cursor's position, and the next cursor. The
    rows are sorted here, so the database's collation cannot disagree with the cursor."""
    ordered = sorted(rows, key=key)
    if cursor is not None:
        after = decode_cursor(cursor, *kinds)
        ordered = [row for row in ordered if key(row) > after]
    return page_of(ordered[: limit + 1], limit, key)
