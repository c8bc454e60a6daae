"""Rules that decide whether an input row is usable. Each returns None for a good value or a
`Problem` (rule code + sentence) for a bad one; ingest and import both call these, so a row
is judged the same way wherever it enters."""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from dataclasses import dataclass

from huleedu_pipelines.domain.grades import SWEDISH_GRADES, is_swedish_grade
from huleedu_pipelines.domain.ielts import InvalidBandError, check_band, parse_band
from huleedu_pipelines.domain.skills import InvalidRatingError, check_rating, check_skill
from huleedu_pipelines.domain.subgroups import (
    ATTRIBUTE_NAME_PATTERN,
    BUILT_IN_GROUPS,
    MAX_ATTRIBUTE_NAME_CHARS,
    MAX_ATTRIBUTE_VALUE_CHARS,
)


@dataclass(frozen=True)
class Problem:
    rule: str
    detail: str


# C0 controls except tab, newline and carriage return; DEL; C1 controls.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Every control character, tab and line breaks included: none belongs in a one-line label.
_ANY_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def decode_text(value: object) -> tuple[str | None, Problem | None]:
    """Text as a str: bytes must be valid UTF-8 (they come from CSVs and dumps)."""
    if value is None or isinstance(value, str):
        return value, None
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8"), None
        except UnicodeDecodeError as error:
            return None, Problem(
                "invalid_utf8",
                f"text is not valid UTF-8 (byte {bytes(value)[error.start]:#04x} at offset "
                f"{error.start}); re-export the source as UTF-8",
            )
    return None, Problem("text_not_string", f"text is a {type(value).__name__}, not a string")


def essay_text_problem(text: object, max_chars: int | None = None) -> Problem | None:
    """Why `text` cannot be graded: empty, control characters, longer than `max_chars` (a
    multi-megabyte essay costs minutes of embedding in every run), or no letter at all
    (punctuation, digits, emoji or zero-width spaces only)."""
    decoded, problem = decode_text(text)
    if problem is not None:
        return problem
    if decoded is None or not decoded.strip():
        return Problem("empty_text", "essay text is empty or only whitespace")
    match = _CONTROL_CHARS.search(decoded)
    if match is not None:
        return Problem(
            "control_characters",
            f"essay text contains control character {match.group()!r} at offset {match.start()}",
        )
    if max_chars is not None and len(decoded) > max_chars:
        return Problem(
            "text_too_long",
            f"essay text has {len(decoded):,} characters, more than the limit of {max_chars:,} "
            "(HULEEDU_MAX_ESSAY_CHARS); split or shorten it, or raise the limit",
        )
    if not any(unicodedata.category(char).startswith("L") for char in decoded):
        return Problem(
            "no_letters",
            "essay text has no letters (only punctuation, digits, symbols or invisible "
            "characters), so there is nothing to grade",
        )
    return None


def normalise_student_id(value: object) -> str | None:
    """The id students are grouped by: trimmed and case-folded, so ``S0032``, ``s0032 `` and
    ``s0032`` are one student (and cannot land on both sides of a train/test split).
    Blank ids are None: such essays are grouped on their own."""
    if value is None:
        return None
    text = str(value).strip().casefold()
    return text or None


def future_timestamp_problem(
    column: str, value: dt.datetime | None, now: dt.datetime, tolerance: dt.timedelta
) -> Problem | None:
    """A timestamp later than `now` + `tolerance` is a broken clock or a typo (a label dated
    2099 would otherwise become the newest label for ever)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    if value <= now + tolerance:
        return None
    return Problem(
        "timestamp_in_future",
        f"{column} {value.isoformat()} is later than now ({now.isoformat(timespec='seconds')}) "
        f"by more than the tolerance of {tolerance} (HULEEDU_MAX_FUTURE_SKEW_SECONDS); fix the "
        "clock or the date at the source",
    )


def grade_problem(grade: object) -> Problem | None:
    if is_swedish_grade(grade):
        return None
    return Problem(
        "unknown_grade", f"grade {grade!r} is not on the scale {', '.join(SWEDISH_GRADES)}"
    )


def band_problem(band: object) -> Problem | None:
    try:
        value = parse_band(band)
    except InvalidBandError as error:
        return Problem("band_not_a_number", str(error))
    if math.isnan(value):
        return Problem("band_missing", "band is missing")
    try:
        check_band(value)
    except InvalidBandError as error:
        return Problem("band_out_of_range", str(error))
    return None


def rating_problem(skill: object, rating: object) -> Problem | None:
    try:
        check_skill(skill)
    except InvalidRatingError as error:
        return Problem("unknown_skill", str(error))
    try:
        value = float(rating)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return Problem("rating_not_a_number", f"rating {rating!r} is not a number")
    try:
        check_rating(value)
    except InvalidRatingError as error:
        return Problem("rating_out_of_range", str(error))
    return None


def comparison_problem(
    essay_a_id: str, essay_b_id: str, winner_essay_id: str | None, known_essay_ids: set[str]
) -> Problem | None:
    if essay_a_id == essay_b_id:
        return Problem("self_comparison", f"essay {essay_a_id!r} is compared with itself")
    unknown = [e for e in (essay_a_id, essay_b_id) if e not in known_essay_ids]
    if unknown:
        return Problem(
            "unknown_essay_reference",
            f"comparison names essay(s) {', '.join(map(repr, unknown))} that are not valid essays",
        )
    if winner_essay_id not in (essay_a_id, essay_b_id):
        return Problem(
            "winner_not_in_pair",
            f"winner {winner_essay_id!r} is neither {essay_a_id!r} nor {essay_b_id!r}",
        )
    return None


def unknown_essay_problem(essay_id: str, known_essay_ids: set[str]) -> Problem | None:
    if essay_id in known_essay_ids:
        return None
    return Problem(
        "unknown_essay_reference",
        f"label refers to essay {essay_id!r}, which is unknown or was quarantined",
    )


def attribute_name_problem(name: object) -> Problem | None:
    """An essay attribute's name must be a short snake_case word that is not a built-in group
    (a report could not tell an imported `source` from the essay's own)."""
    if not isinstance(name, str) or not ATTRIBUTE_NAME_PATTERN.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")
        hint = f" (e.g. {suggestion!r})" if suggestion else ""
        return Problem(
            "bad_attribute_name",
            f"attribute name {name!r} must be lowercase letters, digits and underscores{hint}",
        )
    if len(name) > MAX_ATTRIBUTE_NAME_CHARS:
        return Problem(
            "bad_attribute_name",
            f"attribute name {name!r} has {len(name)} characters; at most "
            f"{MAX_ATTRIBUTE_NAME_CHARS} are allowed",
        )
    if name in BUILT_IN_GROUPS:
        return Problem(
            "bad_attribute_name",
            f"attribute name {name!r} is a built-in group ({', '.join(BUILT_IN_GROUPS)}) taken "
            "from the essay itself; rename the attribute",
        )
    return None


def attribute_value_problem(value: object) -> Problem | None:
    """An attribute value is a short label (a school, an economic status), not free text."""
    if not isinstance(value, str) or not value.strip():
        return Problem("attribute_value_empty", "attribute value is empty")
    match = _ANY_CONTROL_CHAR.search(value)
    if match is not None:
        return Problem(
            "attribute_value_control_characters",
            f"attribute value contains control character {match.group()!r} at offset "
            f"{match.start()}",
        )
    if len(value) > MAX_ATTRIBUTE_VALUE_CHARS:
        return Problem(
            "attribute_value_too_long",
            f"attribute value has {len(value)} characters; at most {MAX_ATTRIBUTE_VALUE_CHARS} "
            "are allowed (a group label, not free text)",
        )
    return None
