"""Path normalisation, by property: every spelling of `.`, `/`, `\\` and `%`.

A logical path (segments of names, `.` and `..`) is written out with each character
in any of its spellings: literal, `%2e`/`%2E`, and for the refused forms encoded
slashes, backslashes and double encoding (`%252e`, `%25%32%65`...). Whatever the
spelling, the normalised path is the one of the logical path; the URL the gateway
forwards, parsed by the upstream client's own URL parser, stays under the API's
base; and through a real gate, route, scope and price are those of that path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyreqwest.http import Url

from tollgate.gateway.proxy.paths import AmbiguousPath, normalise
from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

NAMES = ["public", "admin", "x", "page", "...", ".x", "a.b", "caf\u00e9", "sp ace", "q?", "h#"]
LOGICAL = st.lists(st.sampled_from([*NAMES, ".", ".."]), max_size=7)


def _spell_char(draw: st.DrawFn, char: str) -> str:
    """One spelling of `char` that any RFC 3986 reader decodes back to `char`."""
    data = char.encode()
    if (char.isalnum() and char.isascii()) or char in "-_~":
        if draw(st.booleans()):
            return char
    elif char == "." and draw(st.booleans()):
        return char
    hexes = [f"%{b:02X}" for b in data]
    return "".join(h if draw(st.booleans()) else h.lower() for h in hexes)


@st.composite
def spelled(draw: st.DrawFn) -> tuple[list[str], str]:
    """A logical segment list and one spelling of it as a raw target under `/api`."""
    logical = draw(LOGICAL)
    segments = ["".join(_spell_char(draw, c) for c in segment) for segment in logical]
    return logical, "/api/" + "/".join(segments)


def remove_dot_segments(logical: list[str]) -> list[str] | None:
    """RFC 3986 §5.2.4 with the API as the floor; None when `..` would climb above it."""
    out: list[str] = []
    trailing = False
    for segment in logical:
        if segment in (".", ".."):
            if segment == "..":
                if not out:
                    return None
                out.pop()
            trailing = True
        else:
            out.append(segment)
            trailing = False
    return [*out, ""] if trailing else out


BASE = "http://upstream.test:8080/base/v1"


def forwarded_segments(forward: str) -> list[str]:
    path = Url(BASE + forward).path
    assert path == "/base/v1" or path.startswith("/base/v1/"), path
    return [unquote(s) for s in path[len("/base/v1/") :].split("/")] if forward != "/" else [""]


@given(spelled())
@example((["..", "admin"], "/api/%2e%2e/admin"))
@example((["public", "..", "admin", "x"], "/api/public/%2E./admin/x"))
def test_every_spelling_normalises_to_the_logical_path(case: tuple[list[str], str]) -> None:
    logical, raw = case
    expected = remove_dot_segments(logical)
    if expected is None:
        with pytest.raises(AmbiguousPath):
            normalise(raw)
        return
    target = normalise(raw)
    assert target.slug == "api"
    assert target.path == "/" + "/".join(expected)
    # What the upstream's URL parser makes of the forwarded URL: the same segments,
    # under the base.
    assert forwarded_segments(target.forward) == (expected or [""])


BAD = st.sampled_from(
    [
        "%2f", "%2F", "%5c", "%5C", "\\", "%252e", "%252E", "%25%32%65", "%252f", "%255c",
        "%00", "%0a", "%7f", "%", "%g0", "%2", "%c0%ae", "%e0%80%ae", "%ff", "#",
    ]
)  # fmt: skip


@given(spelled(), BAD, st.integers(min_value=0, max_value=50))
def test_ambiguous_spellings_are_refused(case: tuple[list[str], str], bad: str, at: int) -> None:
    _logical, raw = case
    # At the start of a segment, so the bad piece is never completed by what follows it
    # into something harmless (`%2` + `b` would be `%2b`).
    starts = [i + 1 for i, c in enumerate(raw) if c == "/" and i >= len("/api")]
    position = starts[at % len(starts)]
    raw = raw[:position] + bad + "/" + raw[position:]
    with pytest.raises(AmbiguousPath):
        normalise(raw)


def test_plain_paths_take_the_fast_path_unchanged() -> None:
    target = normalise("/shop/items/42")
    assert (target.slug, target.path, target.forward) == ("shop", "/items/42", "/items/42")
    assert normalise("/shop").path == "/"


# ---------------------------------------------------------------- through a real gate

PUBLIC, ADMIN = uuid.uuid4(), uuid.uuid4()
KEY = apikeys.generate().raw


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    def apis(upstream: str) -> list[object]:
        return [
            api_event(
                "api",
                upstream + "/base/v1",
                price=7,
                routes=[
                    {
                        "route_id": PUBLIC,
                        "method": "GET",
                        "path_template": "/public/{p}",
                        "price": 1,
                    },
                    {
                        "route_id": ADMIN,
                        "method": "GET",
                        "path_template": "/admin/{x}",
                        "price": 100,
                        "required_scopes": ["admin"],
                    },
                ],
            )
        ]

    gateway = InProcessGateway(apis, [key_event(KEY)])  # type: ignore[arg-type]
    try:
        yield gateway
    finally:
        gateway.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spelled())
@example((["public", "..", "admin", "x"], "/api/public/../admin/x"))
@example((["public", "..", "admin", "x"], "/api/public/%2e%2e/admin/x"))
def test_the_gate_routes_prices_and_forwards_the_normalised_path(
    gw: InProcessGateway, case: tuple[list[str], str]
) -> None:
    logical, raw = case
    expected = remove_dot_segments(logical)
    before_seen, before_events = len(gw.seen), len(gw.publisher.events)
    reply = gw.request("GET", raw, {"X-API-Key": KEY})
    if expected is None:
        assert reply.status == 400
        assert len(gw.seen) == before_seen
        return
    path = "/" + "/".join(expected)
    # Templates match with or without one trailing slash.
    core = expected[:-1] if len(expected) > 1 and expected[-1] == "" else expected
    if len(core) == 2 and core[0] == "public" and core[1]:
        route, status = PUBLIC, 200
    elif len(core) == 2 and core[0] == "admin" and core[1]:
        route, status = ADMIN, 403  # the key has no `admin` scope
    else:
        route, status = None, 403  # no route matches
    assert reply.status == status, (raw, reply.body)
    _type, event = gw.publisher.events[-1]
    assert len(gw.publisher.events) == before_events + 1
    assert event["path"] == path
    assert event["route_id"] == (str(route) if route else None)
    if status == 200:
        assert event["cost"] == 1
        assert len(gw.seen) == before_seen + 1
        seen = gw.seen[-1].raw_path
        assert seen.startswith("/base/v1/")
        assert [unquote(s) for s in seen[len("/base/v1/") :].split("/")] == expected
    else:
        assert len(gw.seen) == before_seen
