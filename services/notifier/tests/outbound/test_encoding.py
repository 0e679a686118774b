"""Encoding and segment counts, as providers bill them."""

from __future__ import annotations

import pytest

from tollgate.notifier.outbound.encoding import segment


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("", "gsm7", 1, 0),
        ("Hello", "gsm7", 1, 5),
        ("a" * 160, "gsm7", 1, 160),
        ("a" * 161, "gsm7", 2, 161),
        ("a" * 306, "gsm7", 2, 306),
        ("a" * 307, "gsm7", 3, 307),
        ("a" * 459, "gsm7", 3, 459),
        ("a" * 612, "gsm7", 4, 612),
        ("Prix: 5€ [promo] {x} ~ | ^ \\", "gsm7", 1, 37),  # extension chars take 2 septets
        ("€" * 80, "gsm7", 1, 160),
        ("€" * 81, "gsm7", 2, 162),
        # 152 septets, then an escape pair that would straddle 153: it moves whole.
        ("a" * 152 + "€" + "a" * 6, "gsm7", 1, 160),
        ("a" * 152 + "€" + "a" * 152, "gsm7", 3, 306),
        ("a" * 152 + "€" * 77, "gsm7", 3, 306),
        ("Grüße aus Zürich, Ça va? Ñandù", "gsm7", 1, 30),
        ("Grüße aus Zürich, ça va?", "ucs2", 1, 24),  # ç is not GSM-7 (only Ç is)
        ("Ä" * 161, "gsm7", 2, 161),
        ("你好", "ucs2", 1, 2),
        ("ç" + "a" * 69, "ucs2", 1, 70),  # ç is not GSM-7 (only Ç is)
        ("Hi 👋", "ucs2", 1, 5),  # an emoji is two UTF-16 units
        ("👋" * 35, "ucs2", 1, 70),
        ("👋" * 36, "ucs2", 2, 72),
        ("a" * 71, "gsm7", 1, 71),
        ("a" * 70 + "你", "ucs2", 2, 71),
        ("你" * 134, "ucs2", 2, 134),
        ("你" * 135, "ucs2", 3, 135),
        # 66 units, then a surrogate pair that would straddle 67: it moves whole.
        ("x" * 66 + "😀" + "x" * 66, "ucs2", 3, 134),
        ("你" * 268, "ucs2", 4, 268),
        ("\f", "gsm7", 1, 2),
    ],
)
def test_segments(text: str, encoding: str, segments: int, units: int) -> None:
    result = segment(text)
    assert (result.encoding, result.segments, result.units) == (encoding, segments, units)
