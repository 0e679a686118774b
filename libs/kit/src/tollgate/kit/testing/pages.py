"""The list contract every list route of every service passes (tests only).

`check_list_contract(client, path, ...)` walks a seeded list one small page at a time
and checks what a client relies on: the page shape (`items`, `next_cursor`, nothing
else), that following `next_cursor` visits every item exactly once (none duplicated,
none missing), and that a tampered, truncated, foreign-version or garbage cursor is a
422 `invalid-cursor` problem.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Mapping
from typing import Any

import httpx
import orjson

from tollgate.kit.problems import PROBLEM_BASE


def _id(item: dict[str, Any]) -> Any:
    return item["id"]


def tampered_cursors(cursor: str | None) -> list[str]:
    """Cursors no list may accept: garbage, another version, a cut or altered real one."""
    bad = [
        "nope",
        "%%%",
        base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("="),
        base64.urlsafe_b64encode(orjson.dumps({"v": 999, "k": [1]})).decode().rstrip("="),
        base64.urlsafe_b64encode(orjson.dumps({"v": 1, "k": []})).decode().rstrip("="),
    ]
    if cursor:
        bad.append(cursor[: len(cursor) // 2])
        flipped = "A" if cursor[3] != "A" else "B"
        bad.append(cursor[:3] + flipped + cursor[4:])
    return bad


async def check_list_contract(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: Mapping[str, str],
    expected: Collection[Any],
    params: Mapping[str, str | int] | None = None,
    key: Callable[[dict[str, Any]], Any] = _id,
    page_size: int = 2,
) -> list[dict[str, Any]]:
    """Walk `path` `page_size` items at a time; assert the page shape, that the keys
    seen are exactly `expected` with none twice, and 422 on tampered cursors. Seed more
    than `page_size` items so that at least one cursor is followed. Returns the items."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    first_cursor: str | None = None
    for _ in range(len(expected) // page_size + 2):
        query: dict[str, str | int] = {**(params or {}), "limit": page_size}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(path, params=query, headers=dict(headers))
        assert response.status_code == 200, (path, response.text)
        page = response.json()
        assert set(page) == {"items", "next_cursor"}, (path, sorted(page))
        assert isinstance(page["items"], list)
        assert len(page["items"]) <= page_size
        items += page["items"]
        cursor = page["next_cursor"]
        assert cursor is None or isinstance(cursor, str)
        first_cursor = first_cursor or cursor
        if cursor is None:
            break
    else:
        raise AssertionError(f"{path}: the cursor never ran out")
    keys = [key(item) for item in items]
    assert len(keys) == len(set(keys)), f"{path}: items served twice"
    assert set(keys) == set(expected), f"{path}: missing {set(expected) - set(keys)}"
    if len(expected) > page_size:
        assert first_cursor is not None, f"{path}: no next_cursor on a full page"

    for bad in tampered_cursors(first_cursor):
        query = {**(params or {}), "limit": page_size, "cursor": bad}
        refused = await client.get(path, params=query, headers=dict(headers))
        assert refused.status_code == 422, (path, bad, refused.status_code)
        assert refused.json()["type"] == PROBLEM_BASE + "invalid-cursor", (path, bad)
    return items
