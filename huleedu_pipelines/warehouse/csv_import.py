"""Import essays and labels from a CSV file (e.g. the public IELTS Task 2 layout).

Required column: `essay`. Optional: `essay_id`, `student_id`, `prompt` (prompt text),
`band`, `grade`, and one rating column per skill (named after the skill). Other columns,
such as the IELTS layout's `evaluation`, are ignored. Missing essay ids are derived from a
hash of the text, so importing the same file twice adds nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from huleedu_pipelines.domain.skills import SKILLS
from huleedu_pipelines.domain.validation import (
    Problem,
    band_problem,
    essay_text_problem,
    grade_problem,
    rating_problem,
)
from huleedu_pipelines.warehouse.engine import migrate
from huleedu_pipelines.warehouse.loading import load_tables
from huleedu_pipelines.warehouse.writes import QuarantineEntry, write_quarantine


class CsvLayoutError(ValueError):
    """The file cannot be imported at all (e.g. no `essay` column)."""


@dataclass
class ImportSummary:
    rows_read: int = 0
    essays_imported: int = 0
    labels_imported: int = 0
    duplicates_skipped: int = 0
    quarantined: list[QuarantineEntry] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.rows_read} rows read: {self.essays_imported} essays and "
            f"{self.labels_imported} labels imported, {self.duplicates_skipped} rows skipped as "
            f"duplicates, {len(self.quarantined)} values quarantined"
        )


def _content_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha256(text.strip().encode('utf-8')).hexdigest()[:16]}"


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _read_csv(path: Path) -> list[dict[str, Any]]:
    import polars as pl

    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.NoDataError as error:
        raise CsvLayoutError(f"{path} is empty") from error
    frame = frame.rename({name: name.strip().lower() for name in frame.columns})
    if "essay" not in frame.columns:
        raise CsvLayoutError(
            f"{path} has no 'essay' column (columns: {', '.join(frame.columns)}); the essay text "
            "column is required"
        )
    return frame.to_dicts()


def import_csv(
    engine: sa.Engine, path: Path, source: str, now: dt.datetime | None = None
) -> ImportSummary:
    """Import `path` in one transaction; bad values go to quarantine, good ones are stored."""
    imported_at = now or dt.datetime.now(dt.UTC)
    rows = _read_csv(path)
    summary = ImportSummary(rows_read=len(rows))
    tables: dict[str, list[dict[str, Any]]] = {
        name: []
        for name in ("prompts", "essays", "teacher_grades", "ielts_scores", "skill_ratings")
    }
    rater = f"import:{source}"

    def reject(table: str, key: str, problem: Problem, row: dict[str, Any]) -> None:
        summary.quarantined.append(QuarantineEntry(table, key, problem.rule, problem.detail, row))

    for number, row in enumerate(rows, start=1):
        text = row.get("essay")
        essay_id = _clean(row.get("essay_id"))
        problem = essay_text_problem(text)
        if problem is not None:
            reject("essays", essay_id or f"{path.name}:row{number}", problem, row)
            continue
        essay_id = essay_id.strip() if essay_id else _content_id(source, text)
        prompt_text = _clean(row.get("prompt"))
        prompt_id = _content_id("prompt", prompt_text) if prompt_text else None
        if prompt_id:
            tables["prompts"].append(
                {"prompt_id": prompt_id, "title": prompt_text.strip()[:80], "text": prompt_text}
            )
        tables["essays"].append(
            {
                "essay_id": essay_id,
                "student_id": _clean(row.get("student_id")),
                "prompt_id": prompt_id,
                "source": source,
                "text": text,
                "language": "en",
                "submitted_at": imported_at,
                "updated_at": imported_at,
            }
        )
        band = _clean(row.get("band"))
        if band is not None:
            if (problem := band_problem(band)) is None:
                tables["ielts_scores"].append(
                    {"essay_id": essay_id, "band": band, "scored_at": imported_at}
                )
            else:
                reject("ielts_scores", essay_id, problem, row)
        grade = _clean(row.get("grade"))
        if grade is not None:
            grade = grade.strip()
            if (problem := grade_problem(grade)) is None:
                tables["teacher_grades"].append(
                    {
                        "essay_id": essay_id,
                        "grade": grade,
                        "teacher_id": rater,
                        "graded_at": imported_at,
                    }
                )
            else:
                reject("teacher_grades", f"{essay_id}|{rater}", problem, row)
        for skill in SKILLS:
            rating = _clean(row.get(skill))
            if rating is None:
                continue
            if (problem := rating_problem(skill, rating.strip())) is None:
                tables["skill_ratings"].append(
                    {
                        "essay_id": essay_id,
                        "skill": skill,
                        "rating": float(rating),
                        "rater_id": rater,
                        "rated_at": imported_at,
                    }
                )
            else:
                reject("skill_ratings", f"{essay_id}|{skill}|{rater}", problem, row)

    migrate(engine)
    with engine.begin() as connection:
        results = load_tables(connection, tables, run_id=None, detected_at=imported_at)
        write_quarantine(connection, summary.quarantined, run_id=None, detected_at=imported_at)
    for name, result in results.items():
        summary.quarantined.extend(result.quarantined)
        if name == "essays":
            summary.essays_imported = result.inserted
            summary.duplicates_skipped = result.duplicates
        elif name != "prompts":
            summary.labels_imported += result.inserted
    return summary
