"""The demo-data generator: determinism, keys, label timing, signal in the text, bad rows."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import numpy as np
import polars as pl
import pytest
from scipy.stats import f_oneway, spearmanr
from sklearn.metrics import cohen_kappa_score

from huleedu_pipelines.demo_data import (
    BAD_ROW_KINDS,
    DemoWarehouse,
    generate_demo_warehouse,
    oracle_grade_qwk,
    write_latent_truth,
)
from huleedu_pipelines.demo_data import wordbanks as wb
from huleedu_pipelines.demo_data.generator import DEMO_SCHOOLS
from huleedu_pipelines.domain import (
    SKILLS,
    SWEDISH_GRADES,
    InvalidBandError,
    InvalidRatingError,
    check_band,
    check_rating,
    is_swedish_grade,
    parse_band,
)
from huleedu_pipelines.warehouse import tables

AS_OF = dt.date(2025, 6, 1)
CUTOFF = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
TABLES = (
    "prompts",
    "essays",
    "teacher_grades",
    "ielts_scores",
    "skill_ratings",
    "cj_processed_essays",
    "cj_comparison_pairs",
    "essay_attributes",
    "second_ratings",
)
PRIMARY_KEYS = {
    "prompts": ("prompt_id",),
    "essays": ("essay_id",),
    "teacher_grades": ("essay_id", "teacher_id"),
    "ielts_scores": ("essay_id",),
    "skill_ratings": ("essay_id", "skill", "rater_id"),
    "cj_processed_essays": ("batch_id", "essay_id"),
    "cj_comparison_pairs": ("comparison_id",),
    "essay_attributes": ("essay_id", "name"),
    "second_ratings": ("essay_id", "label"),
}
TIMESTAMPS = {
    "essays": ("submitted_at", "updated_at"),
    "teacher_grades": ("graded_at",),
    "ielts_scores": ("scored_at",),
    "skill_ratings": ("rated_at",),
    "cj_comparison_pairs": ("created_at",),
    "second_ratings": ("rated_at",),
}


@pytest.fixture(scope="module")
def big() -> DemoWarehouse:
    """2,000 essays: the size the oracle QWK is specified for (~2 s)."""
    return generate_demo_warehouse(2000, seed=0, as_of=AS_OF)


@pytest.fixture(scope="module")
def small() -> DemoWarehouse:
    return generate_demo_warehouse(400, seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def with_bad_rows() -> DemoWarehouse:
    return generate_demo_warehouse(400, seed=7, as_of=AS_OF, bad_rows=20)


def _keys(rows: list[dict], columns: tuple[str, ...]) -> list[tuple]:
    return [tuple(row[c] for c in columns) for row in rows]


def test_same_arguments_give_identical_output() -> None:
    first = generate_demo_warehouse(250, seed=3, as_of=AS_OF, bad_rows=11)
    second = generate_demo_warehouse(250, seed=3, as_of=AS_OF, bad_rows=11)
    assert first == second


def test_another_seed_gives_other_essays(small: DemoWarehouse) -> None:
    other = generate_demo_warehouse(400, seed=8, as_of=AS_OF)
    texts = [e["text"] for e in small.essays]
    other_texts = [e["text"] for e in other.essays]
    assert sum(a != b for a, b in zip(texts, other_texts, strict=True)) > 390
    assert small.latent_truth != other.latent_truth


def test_rows_have_exactly_the_warehouse_columns(with_bad_rows: DemoWarehouse) -> None:
    for name in TABLES:
        columns = set(getattr(tables, name).c.keys())
        rows = getattr(with_bad_rows, name)
        assert rows, name
        assert all(set(row) == columns for row in rows), name


@pytest.mark.parametrize("name", TABLES)
def test_primary_keys_are_unique(small: DemoWarehouse, name: str) -> None:
    keys = _keys(getattr(small, name), PRIMARY_KEYS[name])
    assert len(keys) == len(set(keys))


def test_ids_are_readable_and_sizes_are_as_specified(big: DemoWarehouse) -> None:
    assert 6 <= len(big.prompts) <= 10
    assert all(re.fullmatch(r"prompt-\d\d", p["prompt_id"]) for p in big.prompts)
    assert all(re.fullmatch(r"demo-e\d{6}", e["essay_id"]) for e in big.essays)
    assert all(re.fullmatch(r"demo-s\d{4}", e["student_id"]) for e in big.essays)
    students = Counter(e["student_id"] for e in big.essays)
    assert 350 <= len(students) <= 450
    school_share = sum(e["source"] == "school" for e in big.essays) / len(big.essays)
    assert 0.6 <= school_share <= 0.8
    words = [len(e["text"].split()) for e in big.essays]
    assert min(words) >= 120 and max(words) <= 600
    assert {e["language"] for e in big.essays} == {"en"}
    assert len(big.latent_truth) == len(big.essays)
    assert set(big.latent_truth[0]) == {
        "essay_id",
        "student_id",
        "prompt_id",
        "source",
        "ability",
        *(f"skill_{s}" for s in SKILLS),
        "true_grade_ordinal",
        "true_band",
    }


def test_school_essays_have_a_school_drawn_independently_of_ability(big: DemoWarehouse) -> None:
    school = {row["essay_id"]: row["value"] for row in big.essay_attributes}
    assert {row["name"] for row in big.essay_attributes} == {"school"}
    assert set(school) == {e["essay_id"] for e in big.essays if e["source"] == "school"}
    assert set(school.values()) == set(DEMO_SCHOOLS)
    student = {e["essay_id"]: e["student_id"] for e in big.essays}
    ability = {row["essay_id"]: row["ability"] for row in big.latent_truth}
    by_student: dict[str, tuple[str, list[float]]] = {}
    for essay_id, name in school.items():
        named, abilities = by_student.setdefault(student[essay_id], (name, []))
        assert named == name  # a student's essays share the school
        abilities.append(ability[essay_id])
    groups = [
        [np.mean(abilities) for name, abilities in by_student.values() if name == school_name]
        for school_name in DEMO_SCHOOLS
    ]
    # Schools are drawn per student, so chance is judged over students (about 65 a school).
    assert f_oneway(*groups).pvalue > 0.05


def test_labels_are_on_their_scales_and_by_source(big: DemoWarehouse) -> None:
    source = {e["essay_id"]: e["source"] for e in big.essays}
    assert all(is_swedish_grade(g["grade"]) for g in big.teacher_grades)
    assert {source[g["essay_id"]] for g in big.teacher_grades} == {"school"}
    assert {source[s["essay_id"]] for s in big.ielts_scores} == {"ielts"}
    assert {source[r["essay_id"]] for r in big.skill_ratings} == {"school"}
    assert all(check_band(s["band"]) == s["band"] for s in big.ielts_scores)
    bands = [s["band"] for s in big.ielts_scores]
    assert min(bands) >= 4.0 and np.percentile(bands, 50) in (5.5, 6.0, 6.5)
    assert all(check_rating(r["rating"]) == r["rating"] for r in big.skill_ratings)
    # Every grade is used; about 60% of graded school essays also carry all seven ratings.
    assert {g["grade"] for g in big.teacher_grades} == set(SWEDISH_GRADES)
    rated = Counter(r["essay_id"] for r in big.skill_ratings)
    assert set(rated.values()) == {len(SKILLS)}
    assert 0.5 <= len(rated) / len(big.teacher_grades) <= 0.7


def test_a_share_of_graded_essays_has_a_second_teachers_grade(big: DemoWarehouse) -> None:
    first = {g["essay_id"]: g for g in big.teacher_grades}
    second = {r["essay_id"]: r for r in big.second_ratings}
    assert {r["label"] for r in big.second_ratings} == {"grade"}
    assert set(second) <= set(first)
    assert 0.25 <= len(second) / len(first) <= 0.35  # SECOND_GRADE_SHARE
    for essay_id, row in second.items():
        assert dt.timedelta(days=1) <= row["rated_at"] - first[essay_id]["graded_at"]
        assert row["rated_at"] - first[essay_id]["graded_at"] <= dt.timedelta(days=7)
    ordinal = {grade: i for i, grade in enumerate(SWEDISH_GRADES)}
    a = [ordinal[first[e]["grade"]] for e in second]
    b = [ordinal[second[e]["value"]] for e in second]
    truth = {row["essay_id"]: row["true_grade_ordinal"] for row in big.latent_truth}
    t = [truth[e] for e in second]
    # Two teachers read the same latent ability with their own noise: they agree less with
    # each other than each does with the truth, and about as well as each does with it.
    human_human = cohen_kappa_score(a, b, weights="quadratic")
    assert 0.75 <= human_human <= 0.85
    assert human_human < cohen_kappa_score(a, t, weights="quadratic")
    assert human_human < cohen_kappa_score(b, t, weights="quadratic")
    assert abs(np.mean(b) - np.mean(a)) < 0.2  # no rater is systematically harsher


def test_oracle_qwk_is_about_085(big: DemoWarehouse) -> None:
    assert 0.80 <= oracle_grade_qwk(big) <= 0.90


def test_labels_arrive_after_the_essay_and_before_as_of(big: DemoWarehouse) -> None:
    submitted = {e["essay_id"]: e["submitted_at"] for e in big.essays}
    for name, columns in TIMESTAMPS.items():
        for row in getattr(big, name):
            for column in columns:
                when = row[column]
                assert when.tzinfo is not None and when.utcoffset() == dt.timedelta(0)
                assert CUTOFF - dt.timedelta(days=90) <= when < CUTOFF
    labels = [(g["essay_id"], g["graded_at"]) for g in big.teacher_grades]
    labels += [(s["essay_id"], s["scored_at"]) for s in big.ielts_scores]
    labels += [(r["essay_id"], r["rated_at"]) for r in big.skill_ratings]
    for essay_id, when in labels:
        assert dt.timedelta(days=1) <= when - submitted[essay_id] <= dt.timedelta(days=15)
    for pair in big.cj_comparison_pairs:
        assert pair["created_at"] > submitted[pair["essay_a_id"]]
        assert pair["created_at"] > submitted[pair["essay_b_id"]]
    # Recent essays are unlabelled: nothing submitted in the last day has a label yet.
    labelled = {essay_id for essay_id, _ in labels}
    recent = [e for e in big.essays if e["submitted_at"] >= CUTOFF - dt.timedelta(days=1)]
    assert recent and not labelled & {e["essay_id"] for e in recent}


def test_as_of_defaults_to_today_utc() -> None:
    before = dt.datetime.now(dt.UTC).date()
    warehouse = generate_demo_warehouse(20, seed=1)
    after = dt.datetime.now(dt.UTC).date()
    latest = max(e["submitted_at"] for e in warehouse.essays)
    assert latest < dt.datetime.combine(after, dt.time(0), tzinfo=dt.UTC)
    assert latest >= dt.datetime.combine(before, dt.time(0), tzinfo=dt.UTC) - dt.timedelta(90)


def test_cj_batches_and_bradley_terry_winners(big: DemoWarehouse) -> None:
    truth = {t["essay_id"]: t for t in big.latent_truth}
    essays = {e["essay_id"]: e for e in big.essays}
    batches: dict[str, list[dict]] = {}
    for row in big.cj_processed_essays:
        batches.setdefault(row["batch_id"], []).append(row)
    assert len(batches) >= 5
    school = sum(e["source"] == "school" for e in big.essays)
    assert 0.3 <= len(big.cj_processed_essays) / school <= 0.5
    for rows in batches.values():
        assert 20 <= len(rows) <= 40
        assert len({essays[r["essay_id"]]["prompt_id"] for r in rows}) == 1
        assert {essays[r["essay_id"]]["source"] for r in rows} == {"school"}
        assert sorted(r["rank"] for r in rows) == list(range(1, len(rows) + 1))
        assert all(r["bt_se"] > 0 for r in rows)

    appearances = Counter()
    higher_wins = []
    for pair in big.cj_comparison_pairs:
        a, b = pair["essay_a_id"], pair["essay_b_id"]
        assert a != b and pair["winner_essay_id"] in (a, b)
        assert pair["batch_id"] in batches
        appearances.update([a, b])
        higher = a if truth[a]["ability"] > truth[b]["ability"] else b
        higher_wins.append(pair["winner_essay_id"] == higher)
    assert 12 <= np.mean(list(appearances.values())) <= 16
    assert max(appearances.values()) <= 16
    assert np.mean(higher_wins) > 0.7

    score = [r["current_bt_score"] for r in big.cj_processed_essays]
    ability = [truth[r["essay_id"]]["ability"] for r in big.cj_processed_essays]
    assert spearmanr(score, ability)[0] > 0.8


def _text_properties(text: str, spell: object) -> dict[str, float]:
    from wordfreq import zipf_frequency

    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    words = re.findall(r"[A-Za-z']+", text)
    lower = [w.lower() for w in words]
    unknown = spell.unknown(lower)  # type: ignore[attr-defined]
    known = [w for w in lower if w not in unknown]
    return {
        "word_count": len(words),
        "paragraphs": len([p for p in text.split("\n\n") if p.strip()]),
        "mean_sentence_length": len(words) / len(sentences),
        "rare_word_share": sum(zipf_frequency(w, "en") < 4.0 for w in known) / len(known),
        "spelling_error_rate": sum(w in unknown for w in lower) / len(lower),
        "grammar_error_rate": sum(
            len(re.findall(p, text, flags=re.IGNORECASE)) for p in wb.GRAMMAR_ERROR_PATTERNS
        )
        / len(sentences),
        "lowercase_start_share": sum(s[0].islower() for s in sentences) / len(sentences),
        "advanced_connective_share": sum(s.startswith(wb.ADVANCED_CONNECTIVES) for s in sentences)
        / len(sentences),
        "repeated_sentence_share": 1 - len(set(sentences)) / len(sentences),
    }


# (property, its skill, minimum Spearman with the skill, minimum with the ability, sign).
# Measured on these 600 essays (seed 0), skill / ability: word count .99/.83, paragraphs
# .98/.79, advanced connectives .82/.78, mean sentence length .95/.86, rare words .88/.73,
# spelling errors -.97/-.78, lowercase starts -.96/-.75, grammar errors -.86/-.60, repeated
# sentences -.90/-.75; seeds 1 and 2 are within 0.07 of these.
TEXT_SIGNAL = (
    ("word_count", "task_response", 0.95, 0.75, +1),
    ("paragraphs", "coherence_cohesion", 0.93, 0.7, +1),
    ("advanced_connective_share", "coherence_cohesion", 0.75, 0.7, +1),
    ("mean_sentence_length", "syntax", 0.9, 0.75, +1),
    ("rare_word_share", "vocabulary", 0.85, 0.65, +1),
    ("spelling_error_rate", "conventions", 0.9, 0.7, -1),
    ("lowercase_start_share", "conventions", 0.9, 0.65, -1),
    ("grammar_error_rate", "grammar", 0.8, 0.5, -1),
    ("repeated_sentence_share", "phraseology", 0.85, 0.65, -1),
)


@pytest.fixture(scope="module")
def text_properties(big: DemoWarehouse) -> pl.DataFrame:
    from spellchecker import SpellChecker

    spell = SpellChecker()
    truth = big.latent_truth[:600]
    rows = [
        {**_text_properties(e["text"], spell), **t}
        for e, t in zip(big.essays[:600], truth, strict=True)
    ]
    return pl.DataFrame(rows)


@pytest.mark.parametrize(("name", "skill", "min_skill", "min_ability", "sign"), TEXT_SIGNAL)
def test_text_properties_follow_the_latents(
    text_properties: pl.DataFrame,
    name: str,
    skill: str,
    min_skill: float,
    min_ability: float,
    sign: int,
) -> None:
    values = text_properties[name].to_numpy()
    assert sign * spearmanr(values, text_properties[f"skill_{skill}"].to_numpy())[0] >= min_skill
    assert sign * spearmanr(values, text_properties["ability"].to_numpy())[0] >= min_ability


def test_text_properties_together_recover_the_ability(text_properties: pl.DataFrame) -> None:
    names = [name for name, *_ in TEXT_SIGNAL]
    features = np.column_stack(
        [np.ones(len(text_properties))] + [text_properties[n].rank().to_numpy() for n in names]
    )
    ability = text_properties["ability"].to_numpy()
    coefficients, *_ = np.linalg.lstsq(features, ability, rcond=None)
    assert np.corrcoef(features @ coefficients, ability)[0, 1] >= 0.95


def test_word_banks_spell_correctly_and_misspellings_are_flagged() -> None:
    from spellchecker import SpellChecker

    spell = SpellChecker()
    templates = [
        *wb.BODY_TEMPLATES,
        *wb.IDIOM_TEMPLATES,
        *wb.SUBORDINATE_CLAUSES,
        *wb.FILLER_SENTENCES,
        *wb.INTRO_PLAIN,
        *wb.INTRO_ADVANCED,
        *wb.CONCLUSION_PLAIN,
        *wb.CONCLUSION_ADVANCED,
        *wb.PLAIN_CONNECTIVES,
        *wb.ADVANCED_CONNECTIVES,
        *wb.PLAIN_SUBORDINATORS,
        *wb.ADVANCED_SUBORDINATORS,
    ]
    for bank in wb.PROMPTS:
        templates += [bank.text, bank.question, *bank.sentences, *bank.topic, *bank.group]
        templates += [*bank.pro, *bank.con, *bank.act, *bank.alt, *bank.place]
    for tiers in wb.VOCABULARY.values():
        templates += [word for tier in tiers for word in tier]
    for tiers in wb.VERBS.values():
        templates += [" ".join(forms) for tier in tiers for forms in tier]
    words = {
        w.lower()
        for t in templates
        for w in re.findall(r"[A-Za-z']+", re.sub(r"\{\w+\}", " ", t.replace("|", " ")))
    }
    assert spell.unknown(sorted(words)) == set()
    assert all(spell.unknown([wrong]) for wrong in wb.MISSPELLINGS.values())


def test_bad_rows_cover_every_kind_with_the_described_defect(
    with_bad_rows: DemoWarehouse,
) -> None:
    w = with_bad_rows
    assert len(w.bad_rows) == 20
    assert {b.kind for b in w.bad_rows} == set(BAD_ROW_KINDS)
    assert len(BAD_ROW_KINDS) >= 11
    good_ids = {t["essay_id"] for t in w.latent_truth}
    essays_by_id: dict[str, list[dict]] = {}
    for e in w.essays:
        essays_by_id.setdefault(e["essay_id"], []).append(e)
    for bad in w.bad_rows:
        rows = [
            row
            for row in getattr(w, bad.table)
            if "|".join(str(row[c]) for c in PRIMARY_KEYS[bad.table]) == bad.source_key
        ]
        assert rows, bad
        row = rows[-1]
        if bad.kind == "empty_text":
            assert row["text"].strip() == "" and bad.source_key not in good_ids
        elif bad.kind == "control_characters":
            assert re.search(r"[\x01-\x08\x0b\x0c\x0e-\x1f]", row["text"])
            assert "\x00" not in row["text"]
        elif bad.kind == "invalid_utf8":
            assert isinstance(row["text"], bytes)
            with pytest.raises(UnicodeDecodeError):
                row["text"].decode("utf-8")
        elif bad.kind == "duplicate_essay_id":
            original, duplicate = essays_by_id[bad.source_key]
            assert bad.source_key in good_ids and original["text"] != duplicate["text"]
        elif bad.kind in ("band_above_max", "band_below_min"):
            with pytest.raises(InvalidBandError):
                check_band(row["band"])
        elif bad.kind == "band_not_a_number":
            assert row["band"] == "abc"
            with pytest.raises(InvalidBandError):
                parse_band(row["band"])
        elif bad.kind == "unknown_grade":
            assert row["grade"] == "G" and not is_swedish_grade(row["grade"])
        elif bad.kind == "rating_out_of_range":
            with pytest.raises(InvalidRatingError):
                check_rating(row["rating"])
        elif bad.kind == "unknown_essay_in_comparison":
            assert row["essay_b_id"] not in essays_by_id
        else:
            assert bad.kind == "self_comparison"
            assert row["essay_a_id"] == row["essay_b_id"]
        if bad.table != "essays" or bad.kind == "duplicate_essay_id":
            assert row["essay_id" if "essay_id" in row else "essay_a_id"] in good_ids
        for column in TIMESTAMPS.get(bad.table, ()):
            assert row[column] < CUTOFF


def test_bad_rows_leave_good_rows_unchanged_and_add_no_key_collisions(
    small: DemoWarehouse, with_bad_rows: DemoWarehouse
) -> None:
    assert with_bad_rows.latent_truth == small.latent_truth
    added: Counter[str] = Counter()
    for name in TABLES:
        good, all_rows = getattr(small, name), getattr(with_bad_rows, name)
        assert all_rows[: len(good)] == good, name
        added[name] = len(all_rows) - len(good)
        keys = _keys(all_rows, PRIMARY_KEYS[name])
        duplicates = [k for k, count in Counter(keys).items() if count > 1]
        expected = [
            (b.source_key,) for b in with_bad_rows.bad_rows if b.kind == "duplicate_essay_id"
        ]
        assert sorted(duplicates) == (sorted(expected) if name == "essays" else []), name
    assert added == Counter(b.table for b in with_bad_rows.bad_rows)


def test_too_many_bad_rows_for_the_essays_is_an_error() -> None:
    with pytest.raises(ValueError, match="raise n_essays"):
        generate_demo_warehouse(10, seed=0, as_of=AS_OF, bad_rows=200)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_latent_truth(small: DemoWarehouse, tmp_path, suffix: str) -> None:
    path = tmp_path / "truth" / f"latent_truth{suffix}"
    write_latent_truth(small, path)
    frame = pl.read_parquet(path) if suffix == ".parquet" else pl.read_csv(path)
    assert frame.height == len(small.latent_truth)
    assert frame["essay_id"].to_list() == [t["essay_id"] for t in small.latent_truth]
    assert frame["true_grade_ordinal"].to_list() == [
        t["true_grade_ordinal"] for t in small.latent_truth
    ]


def test_write_latent_truth_rejects_unknown_formats(small: DemoWarehouse, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        write_latent_truth(small, tmp_path / "truth.json")
