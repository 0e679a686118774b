"""SMS encodings and segment counts (3GPP TS 23.038 / 23.040). Pure functions.

A text that fits the GSM 03.38 default alphabet (plus its extension table, whose
characters take two septets: an escape and the character) is sent as GSM-7: 160
septets in one SMS, 153 per segment once it needs several (the concatenation header
takes 7). Anything else is UCS-2 (UTF-16 code units): 70 in one SMS, 67 per segment;
a character outside the BMP (most emoji) takes two units. A segment never splits an
escape pair or a surrogate pair, so packing is greedy per character, which is what
handsets and providers count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True)
class Segmentation:
    """How a text goes out: its encoding, segment count and length in units."""

    encoding: Encoding
    segments: int
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 alphabet or its extension table."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _units(text: str, gsm: bool) -> list[int]:
    if gsm:
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def segment(text: str) -> Segmentation:
    """The encoding and number of SMS segments of `text` (an empty text is one SMS)."""
    gsm = is_gsm7(text)
    single, multi = (160, 153) if gsm else (70, 67)
    units = _units(text, gsm)
    total = sum(units)
    if total <= single:
        return Segmentation("gsm7" if gsm else "ucs2", 1, total)
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return Segmentation("gsm7" if gsm else "ucs2", segments, total)
