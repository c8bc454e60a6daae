"""A deterministic synthetic warehouse: essays, labels and CJ comparisons with a known truth.

The generative model (all constants below; `seed` feeds `numpy.random.default_rng` only):

- About ``n_essays / 5`` students, each with an ability ~ N(0, 1) and a source: "school"
  with probability `SCHOOL_SHARE`, else "ielts". Each student writes 1 or more essays
  (5 on average) on distinct prompts where possible, submitted uniformly over the
  `WINDOW_DAYS` days before ``as_of``.
- Seven skills per essay: skill = student ability + essay form N(0, `ESSAY_NOISE_SD`²)
  + the skill's own deviation N(0, `SKILL_SPREAD_SD`²). The essay ability is the mean of
  its seven skills, i.e. student ability + a small essay noise (SD ~0.36; ability SD
  `ABILITY_SD` ~1.06). `latent_truth` stores the skills standardised to N(0, 1); each
  correlates ~0.82 with the essay ability and ~0.62 with each other.
- The essay text is written from the seven skills (`huleedu_pipelines.demo_data.text`), so
  the ability, being their mean, is what a grader reads from the text: only the marker
  noise below separates a perfect text model from the true grade.
- The true grade is the essay ability cut at fixed quantiles of its distribution
  (`GRADE_SHARES`: F 2%, E 8%, D 15%, D+ 25%, C 25%, C+ 15%, B 8%, A 2%: peaked in the
  middle, as real grade distributions are).
- Teacher grades (school essays): the same cuts applied to ability + teacher severity
  N(0, `TEACHER_SEVERITY_SD`²) + marking noise N(0, `MARKER_NOISE_SD`²). The total marker
  noise SD of about 0.47 on an ability SD of 1.06 gives an oracle QWK (teacher grade vs
  true grade, `oracle_grade_qwk`) of about 0.86 (0.868 for seed 7 at 2,000 essays) and an
  oracle adjacent agreement of about 0.95. Both matter: with the flatter shares used before,
  a QWK of 0.85 came with an oracle adjacent agreement of 0.84, so no model could have met
  the 0.90 adjacent-agreement gate (HULEEDU_GATE_MIN_ADJACENT_AGREEMENT).
- Skill ratings: for `SKILL_RATED_SHARE` of school essays, one rater (the teacher) rates all
  seven skills 1..5 in half steps: 3 + 0.9 * skill + N(0, `RATING_NOISE_SD`²), rounded.
- IELTS bands (ielts essays): 6 + ability + N(0, `BAND_NOISE_SD`²), rounded to half bands
  and clipped to 4..9. The noise-free band is `true_band` in the latent truth.
- Second grades: `SECOND_GRADE_SHARE` of the teacher-graded school essays are graded again by
  another teacher (the teachers' roster permitting): the same cuts applied to ability + that
  teacher's severity + fresh marking noise, arriving 1..7 days after the first grade. They
  go to `second_ratings` (label `grade`), not `teacher_grades`, so the grade labels are
  unchanged; validation reports show human–human beside human–machine agreement on them
  (two teachers agree at a QWK of about 0.8).
- Subgroups: every school student attends one of `DEMO_SCHOOLS`, drawn uniformly and
  independently of ability, so each school essay has a `school` attribute
  (`essay_attributes`) whose groups differ in nothing but chance.
- Labels arrive 1..14 days after the essay; a label that would arrive at or after ``as_of``
  is not emitted, so recent essays are unlabelled.
- CJ: `CJ_SHARE` of school essays submitted at least `CJ_MIN_AGE_DAYS` before ``as_of``
  are batched by prompt (20..40 essays per batch, in submission order). Each batch runs
  12..16 rounds of random pairings (each essay is compared 12..16 times); the first essay
  wins with probability sigmoid(`BT_SCALE` * (ability_a - ability_b)). The service-side
  estimate is the log-odds of the smoothed win rate, with its standard error and rank.

Ids: essays "demo-e000123" (in submission order), students "demo-s0042", teachers
"demo-t001", prompts "prompt-03", CJ batches "demo-b0001", comparisons "demo-c000001".
``as_of`` is the snapshot instant: midnight UTC at the start of that date. Every timestamp
is timezone-aware UTC and strictly before it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from huleedu_pipelines.demo_data import text as essay_text
from huleedu_pipelines.demo_data.wordbanks import PROMPTS
from huleedu_pipelines.domain import SKILLS, SWEDISH_GRADES

SCHOOL_SHARE = 0.7
WINDOW_DAYS = 90
ESSAYS_PER_STUDENT = 5
ESSAY_NOISE_SD = 0.2
SKILL_SPREAD_SD = 0.8
GRADE_SHARES = (0.02, 0.08, 0.15, 0.25, 0.25, 0.15, 0.08, 0.02)
TEACHER_STUDENTS = 25
TEACHER_SEVERITY_SD = 0.15
MARKER_NOISE_SD = 0.45
SKILL_RATED_SHARE = 0.6
RATING_NOISE_SD = 0.35
BAND_NOISE_SD = 0.35
LABEL_DELAY_DAYS = (1.0, 14.0)
CJ_SHARE = 0.45
CJ_MIN_AGE_DAYS = 10
CJ_BATCH_SIZE = (20, 40)
CJ_ROUNDS = (12, 16)
BT_SCALE = 1.5
DEMO_SCHOOLS = ("Aspskolan", "Björkskolan", "Ekskolan", "Lindskolan")
SECOND_GRADE_SHARE = 0.3
SECOND_GRADE_DELAY_DAYS = (1.0, 7.0)

SKILL_SD = math.sqrt(1.0 + ESSAY_NOISE_SD**2 + SKILL_SPREAD_SD**2)
ABILITY_SD = math.sqrt(1.0 + ESSAY_NOISE_SD**2 + SKILL_SPREAD_SD**2 / len(SKILLS))
GRADE_CUTS = tuple(
    ABILITY_SD * NormalDist().inv_cdf(float(share)) for share in np.cumsum(GRADE_SHARES)[:-1]
)
"""Ability thresholds between consecutive grades (7 cuts for 8 grades)."""

BAD_ROW_KINDS: tuple[str, ...] = (
    "empty_text",
    "control_characters",
    "invalid_utf8",
    "duplicate_essay_id",
    "band_above_max",
    "band_below_min",
    "band_not_a_number",
    "unknown_grade",
    "rating_out_of_range",
    "unknown_essay_in_comparison",
    "self_comparison",
)
"""Malformed rows injected by ``bad_rows=K``, in the order they cycle."""

# Independent random streams, so that e.g. adding bad rows never changes a good row.
_POPULATION, _TEXT, _LABELS, _CJ, _BAD, _ATTRIBUTES, _SECOND = 1, 2, 3, 4, 5, 6, 7


@dataclass(frozen=True)
class BadRow:
    table: str
    source_key: str
    kind: str
    description: str


@dataclass(frozen=True)
class DemoWarehouse:
    prompts: list[dict]
    essays: list[dict]
    teacher_grades: list[dict]
    ielts_scores: list[dict]
    skill_ratings: list[dict]
    cj_processed_essays: list[dict]
    cj_comparison_pairs: list[dict]
    essay_attributes: list[dict]
    second_ratings: list[dict]
    latent_truth: list[dict]
    bad_rows: list[BadRow]


def _stream(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _seconds(days: np.ndarray | float) -> np.ndarray:
    return np.floor(np.asarray(days) * 86400.0).astype(np.int64)


def _at(origin: dt.datetime, seconds: int) -> dt.datetime:
    return origin + dt.timedelta(seconds=int(seconds))


def _half_steps(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip(np.round(values * 2.0) / 2.0, low, high)


def grade_ordinal(score: np.ndarray) -> np.ndarray:
    """Ordinal grade 0..7 (F..A) of scores on the essay-ability scale."""
    return np.searchsorted(np.asarray(GRADE_CUTS), score, side="right")


def true_band(ability: np.ndarray) -> np.ndarray:
    return _half_steps(6.0 + ability, 4.0, 9.0)


@dataclass
class _Population:
    student: np.ndarray  # student index per essay
    school: np.ndarray  # bool per essay
    ability: np.ndarray
    skills: np.ndarray  # (n_essays, 7)
    prompt: np.ndarray  # prompt index per essay
    submitted_s: np.ndarray  # seconds after the window start
    teacher: np.ndarray  # teacher index per essay (school essays only meaningful)
    n_teachers: int


def _population(n_essays: int, seed: int) -> _Population:
    rng = _stream(seed, _POPULATION)
    n_students = max(1, round(n_essays / ESSAYS_PER_STUDENT))
    student_ability = rng.standard_normal(n_students)
    student_school = rng.random(n_students) < SCHOOL_SHARE
    counts = 1 + rng.multinomial(n_essays - n_students, np.full(n_students, 1.0 / n_students))
    student = np.repeat(np.arange(n_students), counts)

    prompt = np.empty(n_essays, dtype=np.int64)
    start = 0
    for count in counts:
        if count <= len(PROMPTS):
            prompt[start : start + count] = rng.permutation(len(PROMPTS))[:count]
        else:
            prompt[start : start + count] = rng.integers(len(PROMPTS), size=count)
        start += count

    form = student_ability[student] + ESSAY_NOISE_SD * rng.standard_normal(n_essays)
    raw_skills = form[:, None] + SKILL_SPREAD_SD * rng.standard_normal((n_essays, len(SKILLS)))
    ability = raw_skills.mean(axis=1)
    skills = raw_skills / SKILL_SD
    submitted_s = _seconds(rng.uniform(0.0, WINDOW_DAYS, n_essays))

    n_school_students = int(student_school.sum())
    n_teachers = max(1, math.ceil(n_school_students / TEACHER_STUDENTS))
    student_teacher = rng.integers(n_teachers, size=n_students)

    # Essay ids follow submission order; ties keep generation order.
    order = np.argsort(submitted_s, kind="stable")
    return _Population(
        student=student[order],
        school=student_school[student][order],
        ability=ability[order],
        skills=skills[order],
        prompt=prompt[order],
        submitted_s=submitted_s[order],
        teacher=student_teacher[student][order],
        n_teachers=n_teachers,
    )


def _essay_id(index: int) -> str:
    return f"demo-e{index:06d}"


def _student_id(index: int) -> str:
    return f"demo-s{index:04d}"


def _teacher_id(index: int) -> str:
    return f"demo-t{index + 1:03d}"


def _write(seed: int, stream: int, index: int, prompt: int, skills: np.ndarray) -> str:
    rng = _stream(seed, stream, index)
    profile = essay_text.writing_profile(dict(zip(SKILLS, skills, strict=True)), rng)
    return essay_text.compose_essay(PROMPTS[prompt], profile, rng)


def generate_demo_warehouse(
    n_essays: int = 2000,
    seed: int = 0,
    as_of: dt.date | None = None,
    bad_rows: int = 0,
) -> DemoWarehouse:
    """Generate the demo warehouse (see the module docstring for the model).

    The same arguments always give the same rows. ``bad_rows=K`` appends K malformed rows
    cycling through `BAD_ROW_KINDS`; the good rows are the same for every K.
    """
    if n_essays < 1:
        raise ValueError(f"n_essays must be at least 1, got {n_essays}")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, got {seed}")
    if bad_rows < 0:
        raise ValueError(f"bad_rows must be 0 or more, got {bad_rows}")
    if as_of is None:
        as_of = dt.datetime.now(dt.UTC).date()
    cutoff = dt.datetime.combine(as_of, dt.time(0), tzinfo=dt.UTC)
    window_start = cutoff - dt.timedelta(days=WINDOW_DAYS)
    cutoff_s = WINDOW_DAYS * 86400

    pop = _population(n_essays, seed)
    essay_ids = [_essay_id(i) for i in range(n_essays)]
    submitted = [_at(window_start, s) for s in pop.submitted_s]
    sources = ["school" if s else "ielts" for s in pop.school]

    essays = [
        {
            "essay_id": essay_ids[i],
            "student_id": _student_id(int(pop.student[i])),
            "prompt_id": PROMPTS[int(pop.prompt[i])].prompt_id,
            "source": sources[i],
            "text": _write(seed, _TEXT, i, int(pop.prompt[i]), pop.skills[i]),
            "language": "en",
            "submitted_at": submitted[i],
            "updated_at": submitted[i],
        }
        for i in range(n_essays)
    ]

    teacher_grades, ielts_scores, skill_ratings = _labels(
        pop, seed, essay_ids, window_start, cutoff_s
    )
    cj_processed, cj_pairs = _comparisons(pop, seed, essay_ids, window_start, cutoff_s)

    truth_grade = grade_ordinal(pop.ability)
    truth_band = true_band(pop.ability)
    latent_truth = [
        {
            "essay_id": essay_ids[i],
            "student_id": essays[i]["student_id"],
            "prompt_id": essays[i]["prompt_id"],
            "source": sources[i],
            "ability": float(pop.ability[i]),
            **{f"skill_{skill}": float(pop.skills[i, k]) for k, skill in enumerate(SKILLS)},
            "true_grade_ordinal": int(truth_grade[i]),
            "true_band": float(truth_band[i]),
        }
        for i in range(n_essays)
    ]

    warehouse = DemoWarehouse(
        prompts=[
            {"prompt_id": bank.prompt_id, "title": bank.title, "text": bank.text}
            for bank in PROMPTS
        ],
        essays=essays,
        teacher_grades=teacher_grades,
        ielts_scores=ielts_scores,
        skill_ratings=skill_ratings,
        cj_processed_essays=cj_processed,
        cj_comparison_pairs=cj_pairs,
        essay_attributes=_school_attributes(pop, seed, essay_ids),
        second_ratings=_second_grades(pop, seed, essay_ids, teacher_grades, window_start, cutoff_s),
        latent_truth=latent_truth,
        bad_rows=[],
    )
    if bad_rows:
        _add_bad_rows(warehouse, pop, seed, bad_rows, cutoff)
    return warehouse


def _school_attributes(pop: _Population, seed: int, essay_ids: list[str]) -> list[dict]:
    """One `school` attribute per school essay: its student's school, drawn from its own
    stream, so it is independent of ability and changes no other row."""
    rng = _stream(seed, _ATTRIBUTES)
    school_of_student = rng.integers(len(DEMO_SCHOOLS), size=int(pop.student.max()) + 1)
    return [
        {
            "essay_id": essay_ids[i],
            "name": "school",
            "value": DEMO_SCHOOLS[int(school_of_student[pop.student[i]])],
        }
        for i in range(len(essay_ids))
        if pop.school[i]
    ]


def _second_grades(
    pop: _Population,
    seed: int,
    essay_ids: list[str],
    teacher_grades: list[dict],
    window_start: dt.datetime,
    cutoff_s: int,
) -> list[dict]:
    """A second teacher's grade for `SECOND_GRADE_SHARE` of the graded essays, from its own
    stream (so no other row changes), drawn from the same latent ability as the first."""
    # The teachers' severities are the first draw of the labels stream (see `_labels`).
    severity = TEACHER_SEVERITY_SD * _stream(seed, _LABELS).standard_normal(pop.n_teachers)
    rng = _stream(seed, _SECOND)
    n = len(essay_ids)
    chosen = rng.random(n) < SECOND_GRADE_SHARE
    other = (pop.teacher + rng.integers(1, max(pop.n_teachers, 2), n)) % pop.n_teachers
    marked = pop.ability + severity[other] + MARKER_NOISE_SD * rng.standard_normal(n)
    grades = grade_ordinal(marked)
    delay = _seconds(rng.uniform(*SECOND_GRADE_DELAY_DAYS, n))
    position = {essay_id: i for i, essay_id in enumerate(essay_ids)}
    rows = []
    for first in teacher_grades:
        i = position[first["essay_id"]]
        rated_at = first["graded_at"] + dt.timedelta(seconds=int(delay[i]))
        if chosen[i] and rated_at < window_start + dt.timedelta(seconds=cutoff_s):
            rows.append(
                {
                    "essay_id": essay_ids[i],
                    "label": "grade",
                    "value": SWEDISH_GRADES[int(grades[i])],
                    "rated_at": rated_at,
                }
            )
    return rows


def _labels(
    pop: _Population,
    seed: int,
    essay_ids: list[str],
    window_start: dt.datetime,
    cutoff_s: int,
) -> tuple[list[dict], list[dict], list[dict]]:
    # Every draw is made for every essay, so one essay's labels never shift another's.
    rng = _stream(seed, _LABELS)
    n = len(essay_ids)
    severity = TEACHER_SEVERITY_SD * rng.standard_normal(pop.n_teachers)
    marked = pop.ability + severity[pop.teacher] + MARKER_NOISE_SD * rng.standard_normal(n)
    grades = grade_ordinal(marked)
    label_at = pop.submitted_s + _seconds(rng.uniform(*LABEL_DELAY_DAYS, n))
    rated = rng.random(n) < SKILL_RATED_SHARE
    ratings = _half_steps(
        3.0 + 0.9 * pop.skills + RATING_NOISE_SD * rng.standard_normal(pop.skills.shape),
        1.0,
        5.0,
    )
    rated_at = label_at + rng.integers(60, 3600, n)
    bands = _half_steps(6.0 + pop.ability + BAND_NOISE_SD * rng.standard_normal(n), 4.0, 9.0)

    teacher_grades: list[dict] = []
    ielts_scores: list[dict] = []
    skill_ratings: list[dict] = []
    for i in range(n):
        if pop.school[i]:
            teacher = _teacher_id(int(pop.teacher[i]))
            if label_at[i] < cutoff_s:
                teacher_grades.append(
                    {
                        "essay_id": essay_ids[i],
                        "grade": SWEDISH_GRADES[int(grades[i])],
                        "teacher_id": teacher,
                        "graded_at": _at(window_start, label_at[i]),
                    }
                )
            if rated[i] and rated_at[i] < cutoff_s:
                when = _at(window_start, rated_at[i])
                skill_ratings.extend(
                    {
                        "essay_id": essay_ids[i],
                        "skill": skill,
                        "rating": float(ratings[i, k]),
                        "rater_id": teacher,
                        "rated_at": when,
                    }
                    for k, skill in enumerate(SKILLS)
                )
        elif label_at[i] < cutoff_s:
            ielts_scores.append(
                {
                    "essay_id": essay_ids[i],
                    "band": float(bands[i]),
                    "scored_at": _at(window_start, label_at[i]),
                }
            )
    return teacher_grades, ielts_scores, skill_ratings


def _comparisons(
    pop: _Population,
    seed: int,
    essay_ids: list[str],
    window_start: dt.datetime,
    cutoff_s: int,
) -> tuple[list[dict], list[dict]]:
    rng = _stream(seed, _CJ)
    n = len(essay_ids)
    chosen = rng.random(n) < CJ_SHARE
    eligible = pop.school & chosen & (pop.submitted_s <= cutoff_s - CJ_MIN_AGE_DAYS * 86400)

    batches: list[np.ndarray] = []
    for prompt in range(len(PROMPTS)):
        members = np.flatnonzero(eligible & (pop.prompt == prompt))  # in submission order
        if len(members) < CJ_BATCH_SIZE[0]:
            continue
        batches.extend(np.array_split(members, math.ceil(len(members) / CJ_BATCH_SIZE[1])))
    starts = [
        int(pop.submitted_s[batch].max()) + int(_seconds(rng.uniform(1.0, 7.0)))
        for batch in batches
    ]

    processed: list[dict] = []
    pairs: list[dict] = []
    for number, b in enumerate(np.argsort(starts, kind="stable"), start=1):
        batch, start = batches[b], starts[b]
        batch_id = f"demo-b{number:04d}"
        rounds = int(rng.integers(CJ_ROUNDS[0], CJ_ROUNDS[1] + 1))
        games: list[tuple[int, int]] = []
        for _ in range(rounds):
            order = batch[rng.permutation(len(batch))]
            games.extend(zip(order[0:-1:2].tolist(), order[1::2].tolist(), strict=True))
        a = np.array([g[0] for g in games])
        b_ = np.array([g[1] for g in games])
        p_a = 1.0 / (1.0 + np.exp(-BT_SCALE * (pop.ability[a] - pop.ability[b_])))
        a_wins = rng.random(len(games)) < p_a
        created = start + np.sort(rng.integers(0, 6 * 3600, len(games)))
        if created.max() >= cutoff_s:
            continue
        for k in range(len(games)):
            winner = a[k] if a_wins[k] else b_[k]
            pairs.append(
                {
                    "comparison_id": f"demo-c{len(pairs) + 1:06d}",
                    "batch_id": batch_id,
                    "essay_a_id": essay_ids[a[k]],
                    "essay_b_id": essay_ids[b_[k]],
                    "winner_essay_id": essay_ids[winner],
                    "created_at": _at(window_start, created[k]),
                }
            )
        wins = {int(e): 0 for e in batch}
        losses = {int(e): 0 for e in batch}
        for k in range(len(games)):
            winner, loser = (a[k], b_[k]) if a_wins[k] else (b_[k], a[k])
            wins[int(winner)] += 1
            losses[int(loser)] += 1
        scores = {e: math.log((wins[e] + 0.5) / (losses[e] + 0.5)) for e in wins}
        ranked = sorted(wins, key=lambda e: (-scores[e], essay_ids[e]))
        for rank, e in enumerate(ranked, start=1):
            processed.append(
                {
                    "batch_id": batch_id,
                    "essay_id": essay_ids[e],
                    "current_bt_score": scores[e],
                    "bt_se": math.sqrt(1.0 / (wins[e] + 0.5) + 1.0 / (losses[e] + 0.5)),
                    "rank": rank,
                }
            )
    return processed, pairs


def _add_bad_rows(
    warehouse: DemoWarehouse,
    pop: _Population,
    seed: int,
    count: int,
    cutoff: dt.datetime,
) -> None:
    """Append `count` malformed rows, cycling through `BAD_ROW_KINDS`, from their own stream.

    Bad essays are extra rows with new ids ("demo-bad-e0001"), except the duplicate id.
    Bad labels attach to good essays under keys no good row uses: teacher "bad-t001",
    rater "bad-r001", bands on school essays (which have none), comparison "demo-c-bad0001".
    """
    rng = _stream(seed, _BAD)
    good_essays = list(warehouse.essays)
    n = len(good_essays)
    school = np.flatnonzero(pop.school).tolist()
    if not school:
        raise ValueError("bad rows need school essays; raise n_essays")
    unbanded_school = iter(rng.permutation(school).tolist())
    duplicated = iter(rng.permutation(n).tolist())
    members: dict[str, list[str]] = {}
    for row in warehouse.cj_processed_essays:
        members.setdefault(row["batch_id"], []).append(row["essay_id"])
    batch_ids = list(members)
    last_moment = cutoff - dt.timedelta(seconds=1)

    def later(when: dt.datetime, hours: float) -> dt.datetime:
        return min(when + dt.timedelta(hours=hours), last_moment)

    def any_school_essay() -> dict:
        return good_essays[school[int(rng.integers(len(school)))]]

    def unbanded_school_essay(kind: str) -> dict:
        index = next(unbanded_school, None)
        if index is None:
            raise ValueError(
                f"bad_rows={count} needs more school essays than n_essays={n} gives for "
                f"{kind!r} rows; raise n_essays or lower bad_rows"
            )
        return good_essays[index]

    def random_text(k: int) -> str:
        skills = rng.standard_normal(len(SKILLS))
        return _write(seed, _BAD, k, int(rng.integers(len(PROMPTS))), skills)

    def extra_essay(k: int, text: str | bytes) -> dict:
        submitted = later(cutoff - dt.timedelta(days=float(rng.uniform(1, WINDOW_DAYS))), 0)
        return {
            "essay_id": f"demo-bad-e{k + 1:04d}",
            "student_id": _student_id(int(pop.student[int(rng.integers(n))])),
            "prompt_id": PROMPTS[int(rng.integers(len(PROMPTS)))].prompt_id,
            "source": "school",
            "text": text,
            "language": "en",
            "submitted_at": submitted,
            "updated_at": submitted,
        }

    def comparison(k: int, essay_b_id: str | None) -> dict:
        if batch_ids:
            batch_id = batch_ids[int(rng.integers(len(batch_ids)))]
            essay_a_id = members[batch_id][int(rng.integers(len(members[batch_id])))]
        else:
            batch_id, essay_a_id = "demo-b-bad", any_school_essay()["essay_id"]
        submitted = good_essays[int(essay_a_id.removeprefix("demo-e"))]["submitted_at"]
        return {
            "comparison_id": f"demo-c-bad{k + 1:04d}",
            "batch_id": batch_id,
            "essay_a_id": essay_a_id,
            "essay_b_id": essay_b_id or essay_a_id,
            "winner_essay_id": essay_a_id,
            "created_at": later(submitted, 24 * 8),
        }

    def add(table: str, row: dict, key: str, kind: str, description: str) -> None:
        getattr(warehouse, table).append(row)
        warehouse.bad_rows.append(BadRow(table, key, kind, description))

    for k in range(count):
        kind = BAD_ROW_KINDS[k % len(BAD_ROW_KINDS)]
        occurrence = k // len(BAD_ROW_KINDS)
        if kind == "empty_text":
            row = extra_essay(k, "" if occurrence % 2 == 0 else "  \n\t  \n")
            add("essays", row, row["essay_id"], kind, "essay text is empty or whitespace only")
        elif kind == "control_characters":
            words = random_text(k).split(" ")
            words.insert(len(words) // 3, "\x07")
            words.insert(2 * len(words) // 3, "\x1b[31m")
            row = extra_essay(k, " ".join(words))
            add("essays", row, row["essay_id"], kind, "essay text holds control characters")
        elif kind == "invalid_utf8":
            raw = f"Essay {k + 1} ".encode() + b"\xff\xfe broken. " + random_text(k).encode()
            row = extra_essay(k, raw)
            add("essays", row, row["essay_id"], kind, "essay text is not valid UTF-8")
        elif kind == "duplicate_essay_id":
            original = good_essays[next(duplicated)]
            when = later(original["submitted_at"], 1)
            row = {**original, "text": random_text(k), "submitted_at": when, "updated_at": when}
            description = "a second essay row reuses an existing essay_id with different text"
            add("essays", row, row["essay_id"], kind, description)
        elif kind in ("band_above_max", "band_below_min", "band_not_a_number"):
            essay = unbanded_school_essay(kind)
            band: float | str = {"band_above_max": 9.5, "band_below_min": -1.0}.get(kind, "abc")
            row = {
                "essay_id": essay["essay_id"],
                "band": band,
                "scored_at": later(essay["submitted_at"], 24),
            }
            add("ielts_scores", row, row["essay_id"], kind, f"band {band!r} is not on 0..9")
        elif kind == "unknown_grade":
            essay = any_school_essay()
            row = {
                "essay_id": essay["essay_id"],
                "grade": "G",
                "teacher_id": f"bad-t{k + 1:03d}",
                "graded_at": later(essay["submitted_at"], 24),
            }
            key = f"{row['essay_id']}|{row['teacher_id']}"
            add("teacher_grades", row, key, kind, "grade 'G' is not on the Swedish F..A scale")
        elif kind == "rating_out_of_range":
            essay = any_school_essay()
            row = {
                "essay_id": essay["essay_id"],
                "skill": SKILLS[occurrence % len(SKILLS)],
                "rating": 7.0,
                "rater_id": f"bad-r{k + 1:03d}",
                "rated_at": later(essay["submitted_at"], 24),
            }
            key = f"{row['essay_id']}|{row['skill']}|{row['rater_id']}"
            add("skill_ratings", row, key, kind, "rating 7.0 is outside 1..5")
        elif kind == "unknown_essay_in_comparison":
            row = comparison(k, f"demo-missing-e{k + 1:04d}")
            description = f"essay_b_id {row['essay_b_id']!r} is not a known essay"
            add("cj_comparison_pairs", row, row["comparison_id"], kind, description)
        else:  # self_comparison
            row = comparison(k, None)
            description = "an essay is compared with itself"
            add("cj_comparison_pairs", row, row["comparison_id"], kind, description)


def write_latent_truth(warehouse: DemoWarehouse, path: Path) -> None:
    """Write the latent truth (one row per good essay) as Parquet (``.parquet``) or CSV
    (``.csv``), creating the parent folder. It is a side file for evaluating models against
    the truth; it never goes into the warehouse."""
    import polars as pl

    path = Path(path)
    frame = pl.DataFrame(warehouse.latent_truth)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    elif path.suffix == ".csv":
        frame.write_csv(path)
    else:
        raise ValueError(f"latent truth path {path} must end in .parquet or .csv")


def oracle_grade_qwk(warehouse: DemoWarehouse) -> float:
    """QWK of the teacher grades against the noise-free true grades: the ceiling for any
    model that predicts teacher grades. Bad grade rows (not on the scale) are ignored."""
    from sklearn.metrics import cohen_kappa_score

    truth = {row["essay_id"]: row["true_grade_ordinal"] for row in warehouse.latent_truth}
    ordinal = {grade: i for i, grade in enumerate(SWEDISH_GRADES)}
    pairs = [
        (ordinal[row["grade"]], truth[row["essay_id"]])
        for row in warehouse.teacher_grades
        if row["grade"] in ordinal and row["essay_id"] in truth
    ]
    if not pairs:
        raise ValueError("the warehouse has no teacher grades; generate more or older essays")
    teacher, true = zip(*pairs, strict=True)
    return float(cohen_kappa_score(teacher, true, weights="quadratic"))
