"""Layers 3/4: nightly scoring and monitoring through the real `nightly_inference_job`, with
models trained and promoted by the real training job in a real MLflow store.

The tests of this module share one trained home and warehouse and run in file order: each
one builds on the rows the previous ones wrote (as nights do).
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from huleedu_pipelines.assets.partitions import nightly_partition_keys
from huleedu_pipelines.cli import app
from huleedu_pipelines.demo_data.seed import seed_demo_warehouse
from huleedu_pipelines.features.build import MODEL_FEATURE_COLUMNS, feature_matrix
from huleedu_pipelines.modeling import coherence
from huleedu_pipelines.modeling.names import (
    CHALLENGER,
    CHAMPION,
    GRADE_MODEL,
    SKILL_MODELS,
)
from huleedu_pipelines.modeling.stacking import STACKED_COLUMN_NAMES
from huleedu_pipelines.registry import MlflowRegistry, build_registry, load_registered_bundle
from huleedu_pipelines.settings import get_settings
from huleedu_pipelines.warehouse.engine import make_engine
from huleedu_pipelines.warehouse.tables import (
    cj_comparison_pairs,
    essay_grade_predictions,
    essays,
    quarantine,
    serving_models,
    skill_assessments,
    skill_ratings,
)

EXPLAINED_INPUTS = (*MODEL_FEATURE_COLUMNS, *STACKED_COLUMN_NAMES)
"""What `top_features` may name: feature columns, or a stacked model's ridge predictions."""

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 11, 1)
BACKFILL_DAY = "2026-10-31"
N_ESSAYS = 420


class Night:
    """The trained home: its warehouse, Dagster instance and a way to run a scoring night."""

    def __init__(self, root: Path, url: str, instance) -> None:
        self.root, self.url, self.instance = root, url, instance
        self.engine = make_engine(url)

    def registry(self) -> MlflowRegistry:
        return build_registry(get_settings())

    def score(self, day: str, backfill: bool = False) -> "NightRuns":
        """Every shard of `day`, one run each, as the schedule launches them."""
        from huleedu_pipelines.definitions import build_definitions

        job = build_definitions(get_settings()).resolve_job_def("nightly_inference_job")
        return NightRuns(
            [
                job.execute_in_process(
                    instance=self.instance,
                    partition_key=str(key),
                    run_config={"ops": {"inference_features": {"config": {"backfill": backfill}}}},
                    raise_on_error=False,
                )
                for key in nightly_partition_keys(day)
            ]
        )


class NightRuns:
    """The runs of every shard of one night, read together."""

    def __init__(self, results: list) -> None:
        self.results = results

    @property
    def success(self) -> bool:
        return all(result.success for result in self.results)

    def get_asset_materialization_events(self) -> list:
        return [e for r in self.results for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list:
        return [c for r in self.results for c in r.get_asset_check_evaluations()]

    def output_for_node(self, name: str) -> pl.DataFrame:
        """The shards' outputs stacked (a shard's monitoring rows measure its own essays)."""
        # An empty shard's frame may type an all-null column differently.
        return pl.concat(
            [result.output_for_node(name) for result in self.results], how="vertical_relaxed"
        )


def day_features(day: str) -> pl.DataFrame:
    """`inference_features` of every shard of `day` (one Parquet file per partition)."""
    folder = get_settings().storage_dir / "inference_features"
    return pl.concat(
        [pl.read_parquet(path) for path in sorted(folder.glob(f"{day}|*.parquet"))],
        how="vertical_relaxed",
    )


@pytest.fixture(scope="module")
def night(tmp_path_factory, shared_feature_cache):
    import dagster as dg
    from support import TRAINING_GROUPS, run_groups, seed_small_trainable_home

    root = tmp_path_factory.mktemp("inference")
    with pytest.MonkeyPatch.context() as patch:
        url = seed_small_trainable_home(patch, root, shared_feature_cache, n_essays=N_ESSAYS)
        instance = dg.DagsterInstance.ephemeral()
        trained = run_groups(instance, url, *TRAINING_GROUPS)
        assert trained.success
        yield Night(root, url, instance)


def _rows(engine: sa.Engine, table: sa.Table, *where) -> list[dict]:
    with engine.connect() as connection:
        result = connection.execute(sa.select(table).where(*where)).mappings().all()
    return [dict(row) for row in result]


def _snapshot(engine: sa.Engine, *, content_only: bool = False) -> dict[str, list[tuple]]:
    skip = {"run_id", "scored_at"} if content_only else set()
    snapshot = {}
    for table in (skill_assessments, essay_grade_predictions):
        rows = _rows(engine, table)
        snapshot[table.name] = sorted(
            tuple(
                json.dumps(row[c], sort_keys=True, default=str)
                for c in sorted(row)
                if c not in skip
            )
            for row in rows
        )
    return snapshot


def _metadata(result, asset: str) -> dict:
    """The asset's metadata over every shard's run: counts (and counts by key) are summed,
    anything else is the first shard's."""
    merged: dict = {}
    found = False
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key.to_user_string() != asset:
            continue
        found = True
        for key, entry in event.materialization.metadata.items():
            value, seen = entry.value, merged.get(key)
            if key not in merged:
                merged[key] = dict(value) if isinstance(value, dict) else value
            elif isinstance(value, int) and not isinstance(value, bool):
                merged[key] = seen + value
            elif isinstance(value, dict) and all(isinstance(v, int) for v in value.values()):
                merged[key] = {k: seen.get(k, 0) + value.get(k, 0) for k in seen | value}
    if not found:
        raise AssertionError(f"{asset} was not materialized")
    return merged


def _checks(result) -> dict:
    """Per check, a failed evaluation if any shard's failed, else one that passed."""
    checks: dict = {}
    for check in result.get_asset_check_evaluations():
        kept = checks.get(check.check_name)
        if kept is None or (kept.passed and not check.passed):
            checks[check.check_name] = check
    return checks


def _champions(night: Night) -> dict[str, str]:
    registry = night.registry()
    return {
        name: registry.get_version(name, CHAMPION).version
        for name in (GRADE_MODEL, *SKILL_MODELS.values(), "huleedu-cefr", "huleedu-ielts-band")
    }


def test_backfill_scores_every_essay_with_every_champion(night: Night) -> None:
    result = night.score(BACKFILL_DAY, backfill=True)
    assert result.success
    champions = _champions(night)
    scored = _metadata(result, "essay_grade_predictions")
    assert scored["essays_scored"] == N_ESSAYS and scored["essays_skipped_unchanged"] == 0
    assert set(scored["seconds_by_model"]) == {f"{name}@champion" for name in champions}

    skills = pl.DataFrame(_rows(night.engine, skill_assessments))
    grades = pl.DataFrame(_rows(night.engine, essay_grade_predictions))
    assert skills.height == N_ESSAYS * 7 and grades.height == N_ESSAYS
    per_essay = skills.group_by("essay_id").agg(pl.col("skill").n_unique())
    assert per_essay.height == N_ESSAYS and set(per_essay["skill"]) == {7}
    for row in skills.select("model_name", "model_version", "model_alias").unique().iter_rows():
        assert row[1] == champions[row[0]] and row[2] == CHAMPION
    assert set(grades["grade_model_version"]) == {champions[GRADE_MODEL]}
    assert set(grades["ielts_band_model_version"]) == {champions["huleedu-ielts-band"]}
    sums = [sum(p.values()) for p in grades["grade_probabilities"]]
    assert np.allclose(sums, 1.0, atol=1e-4)
    # The grade champion's own threshold (derived at training so that about 15% of the
    # validation split fall below it) decides low confidence; every flag carries its reasons.
    grade_bundle = load_registered_bundle(night.registry(), GRADE_MODEL, champions[GRADE_MODEL])
    threshold = coherence.stored_review_threshold(grade_bundle.info)
    assert threshold is not None and threshold != get_settings().review_confidence_threshold
    assert grades["needs_review"].to_list() == grades["review_reasons"].is_not_null().to_list()
    low = (grades["confidence"] < threshold).to_list()
    reasons = grades["review_reasons"].fill_null("").to_list()
    assert low == ["grade confidence" in text for text in reasons]
    assert 0.03 < np.mean(low) < 0.35
    assert 0 < grades["needs_review"].sum() < N_ESSAYS

    # Explanations exactly on essays that need review (the default scope), five features each.
    review = set(grades.filter(pl.col("needs_review"))["essay_id"])
    explained = skills.filter(pl.col("top_features").is_not_null())
    assert set(explained["essay_id"]) == review
    assert explained.height == len(review) * 7
    for top in explained["top_features"].head(20):
        # At most five: the small models here use few features, and zero contributions are
        # left out.
        assert 1 <= len(top) <= 5
        assert all(entry["feature"] in EXPLAINED_INPUTS for entry in top)
        magnitudes = [abs(entry["contribution"]) for entry in top]
        assert magnitudes == sorted(magnitudes, reverse=True) and min(magnitudes) > 0

    # The stored scores are what the registered champion's ONNX graph says for these features.
    features = day_features(BACKFILL_DAY).sort("essay_id")
    grammar = load_registered_bundle(
        night.registry(), SKILL_MODELS["grammar"], champions[SKILL_MODELS["grammar"]]
    )
    expected = grammar.predict(feature_matrix(features.head(25))).score
    stored = dict(skills.filter(pl.col("skill") == "grammar").select("essay_id", "score").rows())
    assert [stored[e] for e in features.head(25)["essay_id"]] == pytest.approx(expected, abs=1e-9)

    checks = _checks(result)
    assert checks["check_skill_assessments_current"].passed
    assert checks["check_grade_predictions_current"].passed


def test_scoring_the_same_day_again_changes_nothing(night: Night) -> None:
    before = _snapshot(night.engine)
    result = night.score(BACKFILL_DAY, backfill=True)
    assert result.success
    assert _metadata(result, "skill_assessments")["rows_written"] == 0
    assert _metadata(result, "essay_grade_predictions")["essays_skipped_unchanged"] == N_ESSAYS
    assert _snapshot(night.engine) == before

    quiet_day = night.score("2026-01-05")  # before the generated essays: nothing to score
    assert quiet_day.success
    assert _metadata(quiet_day, "inference_features")["dagster/row_count"] == 0
    assert _checks(quiet_day)["check_grade_predictions_current"].passed

    cli = CliRunner().invoke(app, ["score", "--date", BACKFILL_DAY])
    assert cli.exit_code == 0, cli.output
    assert "essays_scored 0" in cli.output
    assert _snapshot(night.engine) == before


@pytest.mark.integration
def test_a_killed_run_and_its_rerun_leave_the_tables_of_one_clean_run(
    night: Night, postgres_url: str, tmp_path: Path
) -> None:
    engine = make_engine(postgres_url)
    seed_demo_warehouse(
        engine,
        n_essays=N_ESSAYS,
        seed=5,
        as_of=AS_OF,
        bad_rows=0,
        latent_truth_path=tmp_path / "latent_truth.parquet",
    )
    # This warehouse serves the trained home's champions: record them here, as promotion
    # would have (a warehouse serves only the champions it recorded).
    with night.engine.connect() as connection:
        recorded = connection.execute(sa.select(serving_models)).mappings().all()
    with engine.begin() as connection:
        connection.execute(sa.insert(serving_models), [dict(row) for row in recorded])
    env = dict(
        os.environ,
        HULEEDU_WAREHOUSE_URL=postgres_url,
        DAGSTER_HOME=str(tmp_path / "dagster"),
        HULEEDU_SCORING_CHUNK_SIZE="10",
        HULEEDU_EXPLAIN_SCOPE="all",
    )
    command = [
        str(Path(sys.executable).parent / "huleedu-pipelines"),
        "score",
        "--date",
        BACKFILL_DAY,
        "--backfill",
    ]

    def counts() -> tuple[int, int]:
        with engine.connect() as connection:
            return tuple(
                connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (skill_assessments, essay_grade_predictions)
            )

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while counts()[0] == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    output = process.communicate()[0].decode(errors="replace")
    skills_at_kill, grades_at_kill = counts()
    assert 0 < skills_at_kill < N_ESSAYS * 7, output[-3000:]
    assert skills_at_kill % 70 == 0 and grades_at_kill % 10 == 0  # whole chunks only

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert counts() == (N_ESSAYS * 7, N_ESSAYS)
    after_kill = _snapshot(engine, content_only=True)

    with engine.begin() as connection:
        connection.execute(sa.delete(skill_assessments))
        connection.execute(sa.delete(essay_grade_predictions))
    clean = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    assert _snapshot(engine, content_only=True) == after_kill
    engine.dispose()


def _essays_of_day(engine: sa.Engine, day: dt.date) -> list[str]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with engine.connect() as connection:
        return (
            connection.execute(
                sa.select(essays.c.essay_id).where(
                    essays.c.submitted_at >= start,
                    essays.c.submitted_at < start + dt.timedelta(days=1),
                )
            )
            .scalars()
            .all()
        )


DAY = dt.date(2026, 10, 20)


def test_a_day_scores_its_new_updated_and_changed_essays_and_quarantines_bad_ones(
    night: Night,
) -> None:
    on_day = _essays_of_day(night.engine, DAY)
    assert on_day
    others = [e["essay_id"] for e in _rows(night.engine, essays) if e["essay_id"] not in on_day]
    edited, compared_a, compared_b = others[:3]
    noon = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)
    before = {r["essay_id"]: r for r in _rows(night.engine, essay_grade_predictions)}
    with night.engine.begin() as connection:
        connection.execute(
            sa.update(essays)
            .where(essays.c.essay_id == edited)
            .values(text=essays.c.text + " I have added a closing sentence.", updated_at=noon)
        )
        connection.execute(
            sa.insert(essays),
            [
                {
                    "essay_id": "late-essay",
                    "student_id": "late-student",
                    "prompt_id": None,
                    "source": "test",
                    "text": "Schools should teach cooking because it helps students live well.",
                    "language": "en",
                    "submitted_at": noon,
                    "updated_at": None,
                },
                {
                    "essay_id": "empty-essay",
                    "student_id": "late-student",
                    "prompt_id": None,
                    "source": "test",
                    "text": "   ",
                    "language": "en",
                    "submitted_at": noon,
                    "updated_at": None,
                },
            ],
        )
        connection.execute(
            sa.insert(cj_comparison_pairs),
            [
                {
                    "comparison_id": "late-cj-1",
                    "batch_id": "late-batch",
                    "essay_a_id": compared_a,
                    "essay_b_id": compared_b,
                    "winner_essay_id": compared_a,
                    "created_at": noon,
                }
            ],
        )
    result = night.score(DAY.isoformat())
    assert result.success
    features = _metadata(result, "inference_features")
    assert features["selected_because"] == {
        "features_changed": 2,
        "new_or_updated": len(on_day) + 2,
    }
    assert features["quarantined_essays"] == 1
    scored = _metadata(result, "essay_grade_predictions")
    assert scored["essays_scored"] == 4
    assert scored["essays_skipped_unchanged"] == len(on_day)

    after = {r["essay_id"]: r for r in _rows(night.engine, essay_grade_predictions)}
    assert "late-essay" in after and "empty-essay" not in after
    for essay_id in (edited, compared_a, compared_b):
        assert after[essay_id]["feature_hash"] != before[essay_id]["feature_hash"]
    untouched = [e for e in before if e not in {edited, compared_a, compared_b}]
    assert all(after[e] == before[e] for e in untouched)
    reasons = [
        r["reason"]
        for r in _rows(night.engine, quarantine, quarantine.c.source_key == "empty-essay")
    ]
    assert len(reasons) == 1 and reasons[0].startswith("empty_text")


def _register_copy_as_challenger(night: Night, model_name: str) -> str:
    """A new version of `model_name` carrying the champion's bundle (so its scores must agree
    exactly with the champion's), registered with alias `challenger`."""
    import tempfile

    from fakes import register_in_mlflow

    registry = night.registry()
    champion = registry.get_version(model_name, CHAMPION)
    bundle = load_registered_bundle(registry, model_name, champion.version)
    with tempfile.TemporaryDirectory() as folder:
        version = register_in_mlflow(registry, model_name, bundle, Path(folder))
    assert version != champion.version
    return version


def test_a_differing_challenger_is_shadow_scored_beside_the_champion(night: Night) -> None:
    grammar = SKILL_MODELS["grammar"]
    grade_version = _register_copy_as_challenger(night, GRADE_MODEL)
    grammar_version = _register_copy_as_challenger(night, grammar)
    result = night.score(DAY.isoformat())
    assert result.success
    day_ids = set(day_features(DAY.isoformat())["essay_id"])
    shadow = pl.DataFrame(
        _rows(night.engine, skill_assessments, skill_assessments.c.model_alias == CHALLENGER)
    )
    assert set(shadow["essay_id"]) == day_ids
    assert set(shadow["model_name"]) == {grammar} and set(shadow["model_version"]) == {
        grammar_version
    }
    champion_scores = dict(
        pl.DataFrame(
            _rows(
                night.engine,
                skill_assessments,
                skill_assessments.c.model_name == grammar,
                skill_assessments.c.model_alias == CHAMPION,
            )
        )
        .select("essay_id", "score")
        .rows()
    )
    # The same bundle: equal scores, up to the last bits a different batch size can move
    # (the champion rows came from the backfill's chunk, the shadow rows from this night's).
    for essay_id, score in shadow.select("essay_id", "score").rows():
        assert score == pytest.approx(champion_scores[essay_id], rel=0, abs=1e-12)
    shadow_grades = _rows(
        night.engine, essay_grade_predictions, essay_grade_predictions.c.model_alias == CHALLENGER
    )
    assert {r["essay_id"] for r in shadow_grades} == day_ids
    assert {r["grade_model_version"] for r in shadow_grades} == {grade_version}
    monitoring = result.output_for_node("prediction_monitoring")
    agreement = monitoring.filter(
        (pl.col("metric") == "shadow_exact_agreement") & (pl.col("subject") == "grade")
    )
    assert agreement["n"].sum() == len(day_ids)
    assert set(agreement["value"].drop_nulls()) == {1.0}

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HULEEDU_SHADOW_SCORING", "false")
        other_day = dt.date(2026, 10, 21)
        quiet = night.score(other_day.isoformat(), backfill=False)
    assert quiet.success
    assert _metadata(quiet, "essay_grade_predictions")["challenger_versions"] == {}
    other_ids = set(_essays_of_day(night.engine, other_day))
    assert not other_ids & {
        r["essay_id"]
        for r in _rows(
            night.engine,
            essay_grade_predictions,
            essay_grade_predictions.c.model_alias == CHALLENGER,
        )
    }


def test_a_model_without_champion_fails_its_check_and_the_others_still_score(
    night: Night,
) -> None:
    vocabulary = SKILL_MODELS["vocabulary"]
    registry = night.registry()
    version = registry.get_version(vocabulary, CHAMPION).version
    registry.delete_alias(vocabulary, CHAMPION)
    try:
        with night.engine.begin() as connection:
            connection.execute(
                sa.update(essays)
                .where(essays.c.essay_id == "late-essay")
                .values(text="A rewritten essay about cooking in schools, longer this time.")
            )
        result = night.score(DAY.isoformat())
    finally:
        registry.set_alias(vocabulary, CHAMPION, version)
    assert result.success  # the step succeeds: every other model scored
    scored = _metadata(result, "skill_assessments")
    assert vocabulary in scored["models_not_served"]
    rows = _rows(night.engine, skill_assessments, skill_assessments.c.essay_id == "late-essay")
    current = {
        r["feature_hash"] for r in rows if r["model_alias"] == CHAMPION and r["skill"] == "grammar"
    }
    by_skill = {r["skill"]: r["feature_hash"] for r in rows if r["model_alias"] == CHAMPION}
    assert by_skill["vocabulary"] not in current  # not rescored
    assert all(by_skill[s] in current for s in SKILL_MODELS if s != "vocabulary")
    check = _checks(result)["check_skill_assessments_current"]
    assert not check.passed and vocabulary in check.description


def test_monitoring_measures_agreement_with_ratings_that_arrived_after_scoring(
    night: Night,
) -> None:
    scores = pl.DataFrame(
        _rows(
            night.engine,
            skill_assessments,
            skill_assessments.c.model_alias == CHAMPION,
            skill_assessments.c.skill.in_(["grammar", "coherence_cohesion"]),
        )
    ).sort("essay_id")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    ratings = []
    for skill, sign in (("grammar", 1), ("coherence_cohesion", -1)):
        part = scores.filter(pl.col("skill") == skill).head(40)
        for essay_id, score in part.select("essay_id", "score").rows():
            value = 3.0 + sign * (4.0 * score - 2.0)
            ratings.append(
                {
                    "essay_id": essay_id,
                    "skill": skill,
                    "rating": round(value * 2) / 2,
                    "rater_id": "late-rater",
                    "rated_at": later,
                }
            )
    with night.engine.begin() as connection:
        connection.execute(sa.insert(skill_ratings), ratings)
    result = night.score(DAY.isoformat())
    assert result.success
    monitoring = result.output_for_node("prediction_monitoring")
    agreement = {
        row["subject"]: row
        for row in monitoring.filter(pl.col("metric") == "pearson_r_teacher_later").iter_rows(
            named=True
        )
    }
    assert agreement["grammar"]["n"] == 40 and agreement["grammar"]["value"] > 0.9
    assert agreement["grammar"]["status"] == "ok"
    assert agreement["coherence_cohesion"]["value"] < -0.9
    assert agreement["coherence_cohesion"]["status"] == "fail"
    assert agreement["vocabulary"]["status"] == "insufficient_data"
    check = _checks(result)["check_skill_agreement_with_teachers"]
    assert not check.passed and "coherence_cohesion" in check.description
    drift = monitoring.filter(pl.col("metric") == "psi")
    # Per shard: predicted grades + the 10 most important features.
    assert drift.height == 11 * len(result.results)
    assert drift.filter(pl.col("subject") == "predicted_grade")["n"].sum() > 0


@pytest.mark.integration
def test_the_inference_benchmark_scores_writes_and_reruns_on_postgresql(
    night: Night, postgres_url: str
) -> None:
    """Figures are printed, not judged; what is checked is that the benchmark measured real
    work: every row written, nothing on the unchanged rerun, the champions it used."""
    from benchmarks.figures import bench_inference

    figures = bench_inference(300, postgres_url, naive_essays=5)
    assert figures["skill_rows"] == 300 * 7 and figures["grade_rows"] == 300
    assert figures["rerun_rows_written"] == 0
    assert figures["model_versions"] == dict(sorted(_champions(night).items()))
    for key in ("raw_onnx_essays_per_s", "end_to_end_essays_per_s", "naive_essays_per_s"):
        assert figures[key] > 0
