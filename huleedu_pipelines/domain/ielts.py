"""IELTS bands and the CEFR levels derived from them."""

from __future__ import annotations

import math
import re

CEFR_LEVELS: tuple[str, ...] = ("A1", "A2", "B1", "B2", "C1", "C2")
"""CEFR levels from lowest to highest; the position is the ordinal label 0..5."""

# Lower band bound of each level, highest first. A band belongs to the first level whose
# bound it reaches: 8.5 -> C2, 8.49 -> C1, 3.99 -> A1.
_CEFR_LOWER_BOUNDS: tuple[tuple[float, str], ...] = (
    (8.5, "C2"),
    (7.0, "C1"),
    (6.0, "B2"),
    (5.0, "B1"),
    (4.0, "A2"),
)

BAND_MIN = 0.0
BAND_MAX = 9.0

BELOW_FOUR_BAND = 3.5
"""The public IELTS Task 2 data writes "<4" for essays under band 4; we store it as 3.5,
the highest half band below 4, so that it maps to A1 and stays below every real 4.0."""


class InvalidBandError(ValueError):
    """A band that is not a number, or not on the IELTS 0..9 half-band scale."""


def cefr_from_band(band: float) -> str:
    """CEFR level for an IELTS band: >=8.5 C2, >=7.0 C1, >=6.0 B2, >=5.0 B1, >=4.0 A2, else A1."""
    value = float(band)
    if math.isnan(value):
        raise InvalidBandError("band is NaN; a CEFR level needs a band")
    for lower_bound, level in _CEFR_LOWER_BOUNDS:
        if value >= lower_bound:
            return level
    return "A1"


def cefr_to_ordinal(level: str) -> int:
    return CEFR_LEVELS.index(level)


def check_band(band: float) -> float:
    """Return the band if it is within 0..9 on a half-band step, else raise InvalidBandError."""
    value = float(band)
    if math.isnan(value) or not BAND_MIN <= value <= BAND_MAX:
        raise InvalidBandError(f"band {band!r} is outside {BAND_MIN:g}..{BAND_MAX:g}")
    if not (value * 2).is_integer():
        raise InvalidBandError(f"band {band!r} is not on the half-band step (e.g. 6.0 or 6.5)")
    return value


_BAND_TEXT = re.compile(r"^\s*(<)?\s*([0-9]+(?:\.[0-9]+)?)\s*$")


def parse_band(text: object) -> float:
    """Parse a band as it comes in CSV files: "6.5", " 7\\n", "<4" (-> 3.5), or a number.

    Only parses; range and half-step are checked by `check_band`.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        raise InvalidBandError(f"band {text!r} is not a number")
    match = _BAND_TEXT.match(text)
    if match is None:
        raise InvalidBandError(f"band {text.strip()!r} is not a number (expected e.g. 6.5 or <4)")
    below, number = match.groups()
    if below:
        if float(number) != 4.0:
            raise InvalidBandError(f"band {text.strip()!r}: only '<4' is a known band bucket")
        return BELOW_FOUR_BAND
    return float(number)
