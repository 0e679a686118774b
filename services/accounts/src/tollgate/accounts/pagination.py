"""Cursor pagination shared by every list route: capped page sizes, opaque cursors.

A cursor is the base64url of the last item's sort key; a tampered or foreign cursor
is a 422 problem, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from tollgate.kit.problems import Problem

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50

T = TypeVar("T")

PageSize = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"items per page (max {MAX_PAGE_SIZE})")
]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back to get the next one (null = last)."""

    items: list[T]
    next_cursor: str | None = Field(None, description="cursor of the next page; null at the end")


def encode_cursor(value: str | int | uuid.UUID) -> str:
    """An opaque cursor for a sort key."""
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise invalid_cursor() from exc


def invalid_cursor() -> Problem:
    return Problem(422, "Unprocessable Content", "Invalid cursor.", slug="invalid-cursor")


def uuid_cursor(cursor: str | None) -> uuid.UUID | None:
    """The UUID sort key inside `cursor` (None for the first page)."""
    if cursor is None:
        return None
    try:
        return uuid.UUID(_decode(cursor))
    except ValueError as exc:
        raise invalid_cursor() from exc


def int_cursor(cursor: str | None) -> int | None:
    """The integer sort key inside `cursor` (None for the first page)."""
    if cursor is None:
        return None
    text = _decode(cursor)
    if not text.isdigit() or len(text) > 19:
        raise invalid_cursor()
    return int(text)


def next_cursor_of(rows: list[T], limit: int, key: str) -> tuple[list[T], str | None]:
    """Split a `limit + 1` fetch into the page and the cursor of the next one."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(getattr(page[-1], key))
