"""Dates on pages: the cached fast path writes exactly what Babel writes, in both
languages, whatever the value's time zone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from babel.dates import format_datetime
from babel.numbers import format_decimal

from tollgate.console.i18n import LANGUAGES, Formats, _locale


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_datetimes_read_as_babel_writes_them(language: str) -> None:
    formats = Formats(language)
    rng = random.Random(11)
    for _ in range(3000):
        zone = timezone(timedelta(minutes=rng.randint(-12 * 60, 14 * 60)))
        value = datetime(2000, 1, 1, tzinfo=zone) + timedelta(seconds=rng.randint(0, 10**9))
        babel = format_datetime(value, "medium", tzinfo=UTC, locale=_locale(LANGUAGES[language]))
        assert formats.datetime(value) == babel + " UTC"


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_whole_numbers_read_as_babel_writes_them(language: str) -> None:
    formats = Formats(language)
    for value in (0, 7, -7, 999, 1000, -1234567, 10**12, 812):
        assert formats.number(value) == format_decimal(value, locale=_locale(LANGUAGES[language]))
    assert formats.number(1234.5) == format_decimal(1234.5, locale=_locale(LANGUAGES[language]))


def test_missing_values_are_a_dash() -> None:
    assert Formats("en").datetime(None) == "—"
    assert Formats("zh-Hans").number(None) == "—"
