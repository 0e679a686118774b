"""Request bodies say in their document what they refuse: NUL in any text, values that
are not JSON integers or booleans where those are asked for, times that are not RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import Field, ValidationError

from tollgate.kit.requests import (
    NUL_FREE,
    DateTimeText,
    RequestModel,
    StrictCredits,
    StrictFlag,
)


class Body(RequestModel):
    name: str = Field(min_length=1, pattern=r"\S")
    note: str = ""
    tags: list[str] = Field(default_factory=list)
    amount: StrictCredits = 0
    on: StrictFlag = False
    since: DateTimeText | None = None


def test_every_text_field_is_documented_nul_free() -> None:
    properties = Body.model_json_schema()["properties"]
    assert properties["note"]["pattern"] == NUL_FREE
    assert properties["tags"]["items"]["pattern"] == NUL_FREE
    assert properties["name"]["pattern"] == r"\S"  # its own pattern stays, NUL_FREE beside it
    assert {"pattern": NUL_FREE} in properties["name"]["allOf"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "10"),
        ("amount", True),
        ("amount", 1.5),
        ("amount", float("inf")),
        ("on", 1),
        ("on", "true"),
        ("since", "1700000000"),
        ("since", 1700000000),
        ("since", "3.8e-175"),
        ("note", "a\x00b"),
        ("since", "0001-01-01T00:00:00+01:00"),  # year 0 in UTC: was a 500 in the database
        ("since", "9999-12-31T23:59:59-14:00"),  # year 10000 in UTC
    ],
)
def test_lax_spellings_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        Body.model_validate({"name": "n", field: value})


def test_integral_numbers_and_rfc3339_times_are_read() -> None:
    body = Body.model_validate({"name": "n", "amount": 10.0, "since": "2026-11-29T10:00:00+01:00"})
    assert body.amount == 10
    assert isinstance(body.amount, int)
    assert body.since is not None
    assert body.since == datetime(2026, 11, 29, 9, tzinfo=UTC)
    assert body.since.tzinfo is UTC
