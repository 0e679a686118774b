"""Languages of the console: the Babel catalogs, choosing a language per request, and
locale-aware formatting of dates and numbers.

Catalogs are `.po` files committed under `locale/<lang>/LC_MESSAGES/messages.po`
(English is the source language and needs none). They are compiled in memory when the
app starts, so there is no build step and no binary `.mo` in the repository. After
changing a string in a template, re-extract and update the catalog (see the README);
`tests/test_catalogs.py` fails while any message lacks a translation.
"""

from __future__ import annotations

import functools
import gettext
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime, format_time, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import (
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
)
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGE_COOKIE = "tg_lang"
# Language tag (as in URLs, cookies and <html lang>) -> Babel locale identifier.
LANGUAGES: dict[str, str] = {"en": "en", "zh-Hans": "zh_Hans"}
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "zh-Hans": "简体中文"}
DEFAULT_LANGUAGE = "en"


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is rendered."""
    return message


def load_catalogs() -> dict[str, gettext.NullTranslations]:
    """Every language's translations, compiled from the committed `.po` files."""
    catalogs: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
    for tag, ident in LANGUAGES.items():
        po = LOCALE_DIR / ident / "LC_MESSAGES" / "messages.po"
        if not po.exists():
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=ident)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogs[tag] = Translations(compiled)
    return catalogs


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language to answer in: the remembered choice, else the best match of the
    browser's Accept-Language (any Chinese goes to Simplified), else English."""
    if cookie in LANGUAGES:
        return cookie
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        weighted.append((-q, index, tag.strip().lower()))
    for _q, _i, tag in sorted(weighted):
        if tag.startswith("zh"):
            return "zh-Hans"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


@functools.cache
def _locale(tag: str) -> Locale:
    return Locale.parse(tag)


@functools.cache
def _medium_glue(tag: str) -> str | None:
    """How the locale joins a medium date ({1}) and time ({0}); None when it quotes text
    (then every value is formatted by Babel)."""
    glue = str(get_datetime_format("medium", locale=_locale(tag)))
    return None if "'" in glue else glue


@functools.cache
def _medium_hour(tag: str, hour: int) -> str | None:
    """The locale's medium time of `hour`:00:00, with minutes and seconds as the only
    `:00:00` in it; None when the pattern is not of that shape."""
    pattern = _locale(tag).time_formats["medium"].pattern
    text = format_time(time(hour, 0, 0), "medium", locale=_locale(tag))
    if pattern.count("mm:ss") != 1 or text.count(":00:00") != 1:
        return None
    return str(text)


@functools.cache
def _integer_grouping(tag: str) -> str | None:
    """The group separator when the locale writes whole numbers in groups of three with
    an ASCII minus (as Python's `,` format does); None: format with Babel."""
    locale = _locale(tag)
    symbols = locale.number_symbols["latn"]
    if locale.decimal_formats[None].pattern != "#,##0.###" or symbols["minusSign"] != "-":
        return None
    return str(symbols["group"])


@functools.lru_cache(maxsize=4096)
def _medium_date(tag: str, day: date) -> str:
    return str(format_date(day, "medium", locale=_locale(tag)))


@dataclass(frozen=True)
class Formats:
    """Locale-aware formatting of the values pages show."""

    language: str

    @property
    def locale(self) -> Locale:
        # Parsed once per language, not once per value a page formats.
        return _locale(LANGUAGES[self.language])

    def number(self, value: int | float | None) -> str:
        if value is None:
            return "—"
        group = _integer_grouping(LANGUAGES[self.language])
        if type(value) is int and group is not None:  # most numbers on a page: counts
            return f"{value:,}".replace(",", group)
        return str(format_decimal(value, locale=self.locale))

    def money(self, minor_units: int, currency: str) -> str:
        """An amount in minor currency units (cents) as the locale writes it: $10.00."""
        code = currency.upper()
        digits = get_currency_precision(code)
        return str(format_currency(Decimal(minor_units).scaleb(-digits), code, locale=self.locale))

    def percent(self, value: float | None) -> str:
        return "—" if value is None else format_percent(value, "#,##0.##%", locale=self.locale)

    def ms(self, value: float | None) -> str:
        if value is None:
            return "—"
        return format_decimal(round(value, 1), locale=self.locale) + " ms"

    def datetime(self, value: datetime | None) -> str:
        if value is None:
            return "—"
        tag = LANGUAGES[self.language]
        utc = value.astimezone(UTC)
        glue, hour = _medium_glue(tag), _medium_hour(tag, utc.hour)
        if glue is None or hour is None:
            return format_datetime(value, "medium", tzinfo=UTC, locale=self.locale) + " UTC"
        # Babel's formatter costs ~0.1 ms a value, most of a long list's page: the date
        # is cached per day and the time per hour, minutes and seconds filled in here.
        clock = hour.replace(":00:00", f":{utc.minute:02d}:{utc.second:02d}")
        return glue.replace("{1}", _medium_date(tag, utc.date())).replace("{0}", clock) + " UTC"
