"""Every environment variable the pipeline reads, with defaults for the embedded mode.

Nothing else in the package reads `os.environ`, and no other place declares a default for these
values: `resources.build_resources` builds every resource from settings, `registry.build_registry`
the registry, `Settings.gate_thresholds` the gates. With no variable set, everything lives under
`HULEEDU_HOME` (default `./.huleedu`): a SQLite warehouse, a SQLite MLflow store with a local
artifact folder, a persistent Dagster instance, Parquet intermediates and reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from huleedu_pipelines.features.embeddings import SentenceEmbedder
    from huleedu_pipelines.modeling.gates import GateThresholds
    from huleedu_pipelines.services.gaming import GamingCheck


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    huleedu_home: Path = Field(default=Path(".huleedu"), alias="HULEEDU_HOME")
    warehouse_url: str | None = Field(default=None, alias="HULEEDU_WAREHOUSE_URL")
    mlflow_tracking_uri: str | None = Field(default=None, alias="MLFLOW_TRACKING_URI")
    dagster_home: Path | None = Field(default=None, alias="DAGSTER_HOME")
    test_postgres_url: str | None = Field(default=None, alias="HULEEDU_TEST_POSTGRES_URL")

    seed: int = Field(default=42, alias="HULEEDU_SEED")
    n_jobs: int = Field(default=2, alias="HULEEDU_N_JOBS")
    # How a run executes its steps: "multiprocess" (Dagster's default: a process per step in
    # the run's own container or process) or "k8s_job" (every step a Kubernetes Job of its
    # own, from dagster-k8s; with deploy/helm, requests per step from the assets' tags).
    run_executor: Literal["multiprocess", "k8s_job"] = Field(
        default="multiprocess", alias="HULEEDU_RUN_EXECUTOR"
    )
    high_skill_threshold: float = Field(default=3.5, alias="HULEEDU_HIGH_SKILL_THRESHOLD")
    min_labels_to_train: int = Field(default=50, alias="HULEEDU_MIN_LABELS_TO_TRAIN")
    retrain_min_new_labels: int = Field(default=100, alias="HULEEDU_RETRAIN_MIN_NEW_LABELS")
    feature_cache: Path | None = Field(default=None, alias="HULEEDU_FEATURE_CACHE_DIR")
    embedding_runtime: Literal["torch", "onnx_int8"] = Field(
        default="torch", alias="HULEEDU_EMBEDDING_RUNTIME"
    )
    """What computes the 384-d essay embeddings (features/embeddings.py). `torch`: the exact
    sentence-transformer. `onnx_int8`: the same model exported to ONNX with int8 weights (made
    once, kept in the feature cache directory), 1.4-1.8x as fast on 2 cores, its vectors at
    cosine ~0.99 to the exact ones. The runtime is part of the feature version: its cached
    vectors and the models trained on them never mix with the exact ones, so switching means
    embedding every essay again and retraining before scoring."""
    embedding_min_cosine: float = Field(
        default=0.98, gt=0, le=1, alias="HULEEDU_EMBEDDING_MIN_COSINE"
    )
    """Before a faster runtime embeds anything, its essay vectors for fixed reference texts
    (`features.embeddings.REFERENCE_TEXTS`) are compared with the exact ones; under this
    minimum cosine it refuses to run. Why 0.98: measured on 2 cores with AVX2, `onnx_int8`
    reaches 0.990 at worst there (mean 0.994; 0.981 at worst, mean 0.993, on 1,569 ASAP
    essays), and at that agreement `bench quality` on ASAP prompt 7 moved by less than one
    standard error (grade QWK 0.795 +- 0.009 exact, 0.800 +- 0.010 int8). The margin allows
    for other CPUs' int8 kernels; an export that pooled wrongly ([CLS] instead of the mean:
    cosine ~0.45) falls far below."""
    gate_min_qwk: float = Field(default=0.70, alias="HULEEDU_GATE_MIN_QWK")
    gate_min_adjacent_agreement: float = Field(
        default=0.90, alias="HULEEDU_GATE_MIN_ADJACENT_AGREEMENT"
    )
    gate_max_ece: float = Field(default=0.05, alias="HULEEDU_GATE_MAX_ECE")
    gate_max_grade_share_difference: float = Field(
        default=0.10, alias="HULEEDU_GATE_MAX_GRADE_SHARE_DIFFERENCE"
    )
    # ONNX vs native parity: the shares of holdout rows allowed over the tolerance / with a
    # different predicted class (float32 thresholds flip a few rows in 100k; see onnx_export).
    gate_max_onnx_share_over_tolerance: float = Field(
        default=1e-4, alias="HULEEDU_GATE_MAX_ONNX_SHARE_OVER_TOLERANCE"
    )
    gate_max_onnx_share_flipped: float = Field(
        default=1e-3, alias="HULEEDU_GATE_MAX_ONNX_SHARE_FLIPPED"
    )
    gate_max_p95_single_ms: float = Field(default=100.0, alias="HULEEDU_GATE_MAX_P95_SINGLE_MS")
    gate_max_batch50_ms: float = Field(default=2000.0, alias="HULEEDU_GATE_MAX_BATCH50_MS")
    gate_min_skill_pearson_r: float = Field(default=0.50, alias="HULEEDU_GATE_MIN_SKILL_R")
    gate_max_qwk_drop: float = Field(default=0.01, alias="HULEEDU_GATE_MAX_QWK_DROP")
    gate_max_band_mae: float = Field(default=1.0, alias="HULEEDU_GATE_MAX_BAND_MAE")
    gate_min_cefr_qwk: float = Field(default=0.40, alias="HULEEDU_GATE_MIN_CEFR_QWK")
    gate_min_skill_roc_auc: float = Field(default=0.70, alias="HULEEDU_GATE_MIN_SKILL_ROC_AUC")
    # Two-sided level of the paired bootstrap interval of the model's margin over a baseline:
    # beats_trivial needs its lower end above zero, not_worse_than_ridge its upper end at or
    # above zero; 0.90 makes each end a one-sided 95% bound.
    gate_baseline_confidence: float = Field(
        default=0.90, gt=0, lt=1, alias="HULEEDU_GATE_BASELINE_CONFIDENCE"
    )
    # Fairness (modeling/fairness.py): |SMD| of the model's scores against the human scores on
    # the whole holdout, and in every subgroup with at least `min_n_per_group` essays (smaller
    # subgroups are reported as too few essays, not gated).
    gate_max_abs_smd: float = Field(default=0.15, ge=0, alias="HULEEDU_GATE_MAX_ABS_SMD")
    gate_max_abs_subgroup_smd: float = Field(
        default=0.10, ge=0, alias="HULEEDU_GATE_MAX_ABS_SUBGROUP_SMD"
    )
    min_n_per_group: int = Field(default=30, ge=1, alias="HULEEDU_MIN_N_PER_GROUP")
    # Human–human baseline (modeling/rater_agreement.py): on the holdout essays two humans scored
    # (`<label>_rater2` imports), human–human QWK minus human–machine QWK may be at most this.
    # Applied only with at least `min_n_per_group` double-scored essays (a QWK on fewer moves
    # by ±0.1 or more by chance), like a subgroup's SMD.
    gate_max_qwk_degradation: float = Field(
        default=0.10, ge=0, alias="HULEEDU_GATE_MAX_QWK_DEGRADATION"
    )
    # Anti-gaming (services/gaming.py): up to `gaming_essays` held-out essays are padded,
    # shuffled, stuffed, extended off topic and turned to gibberish, and re-scored through the
    # full feature path; a score *rises* when it moves up by more than `gaming_tolerance_sd`
    # SDs of the model's scores on the originals. For every perturbation, at most
    # `gate_max_gaming_share` of the copies may rise.
    gate_max_gaming_share: float = Field(
        default=0.05, ge=0, le=1, alias="HULEEDU_GATE_MAX_GAMING_SHARE"
    )
    gaming_tolerance_sd: float = Field(default=0.25, ge=0, alias="HULEEDU_GAMING_TOLERANCE_SD")
    gaming_essays: int = Field(default=50, ge=1, alias="HULEEDU_GAMING_ESSAYS")
    # A copy a validity advisory sends to review (modeling/advisories.py) gains nothing, so
    # only copies that rose *and* would be served count. The gate blocks promotion; set false
    # to make it warn only. Perturbations listed in `gaming_warn_only` are reported but not
    # judged: on real essays another prompt's essay appended and sentences shuffled into one
    # paragraph still raise today's models' scores (fluent text, no value outside the
    # training essays' range to flag; see docs/architecture.md, "Resistance to gaming").
    gaming_gate_blocks: bool = Field(default=True, alias="HULEEDU_GAMING_GATE_BLOCKS")
    gaming_warn_only: str = Field(
        default="append_off_topic,shuffle_sentences", alias="HULEEDU_GAMING_WARN_ONLY"
    )
    demo_essays: int = Field(default=2000, alias="HULEEDU_DEMO_ESSAYS")
    # Who generates validation reports (their provenance and sign-off); the OS user when unset.
    operator: str | None = Field(default=None, alias="HULEEDU_OPERATOR")

    # Nightly scoring. Confidence is the grade model's 1 - normalised entropy of its 8
    # probabilities. Each grade model records its own threshold at training: the confidence
    # below which `review_target_share` of its validation split's essays fall
    # (modeling/coherence.py). `review_confidence_threshold` is only the fallback for bundles
    # trained before they recorded one (the demo's models once gave 0.41-0.45 for most essays,
    # and 0.42 flagged about a quarter of them).
    review_target_share: float = Field(
        default=0.15, gt=0, lt=1, alias="HULEEDU_REVIEW_TARGET_SHARE"
    )
    review_confidence_threshold: float = Field(
        default=0.42, alias="HULEEDU_REVIEW_CONFIDENCE_THRESHOLD"
    )
    explain_scope: Literal["all", "needs_review", "none"] = Field(
        default="needs_review", alias="HULEEDU_EXPLAIN_SCOPE"
    )
    """Which champion skill rows get `top_features`: by default only essays flagged
    `needs_review` (the ones a teacher will open) are explained."""
    explain_method: Literal["saabas", "treeshap"] = Field(
        default="saabas", alias="HULEEDU_EXPLAIN_METHOD"
    )
    """How `top_features` are computed, by the nightly job and the API alike
    (`modeling.explanations`): `saabas` path attribution from the booster's trees (about one
    prediction's cost; contributions sum to the raw margin minus the expected value, like
    TreeSHAP's, but it is a different attribution) or `treeshap`, LightGBM's exact
    `pred_contrib` (~100x the prediction)."""
    compiled_scorer: bool = Field(default=False, alias="HULEEDU_COMPILED_SCORER")
    """Score with LLVM-compiled trees (lleaves, the `compiled` extra) instead of ONNX Runtime
    where a model's compiled copy matches its ONNX output on a parity check."""
    shadow_scoring: bool = Field(default=True, alias="HULEEDU_SHADOW_SCORING")
    scoring_chunk_size: int = Field(default=5000, alias="HULEEDU_SCORING_CHUNK_SIZE")
    scoring_shards: int = Field(default=4, ge=1, le=256, alias="HULEEDU_SCORING_SHARDS")
    """Static shards of a night's essays (`domain.shards.shard_of`): each (day, shard) is its
    own partition and run of `nightly_inference_job`, so a night fans out over run workers.
    Read when the definitions load; changing it changes the partition keys."""
    nightly_freshness_hours: float = Field(
        default=26.0, gt=0, alias="HULEEDU_NIGHTLY_FRESHNESS_HOURS"
    )
    """The nightly outputs (`skill_assessments`, `essay_grade_predictions`) are stale in the
    Dagster UI when no partition has been materialized for this long (a night plus slack)."""
    monitor_psi_warn: float = Field(default=0.2, alias="HULEEDU_MONITOR_PSI_WARN")
    monitor_min_skill_r: float = Field(default=0.50, alias="HULEEDU_MONITOR_MIN_SKILL_R")
    monitor_min_rated_essays: int = Field(default=30, alias="HULEEDU_MONITOR_MIN_RATED_ESSAYS")

    # Input limits, applied by `import-csv` and the ingest assets: an essay longer than this is
    # quarantined (the real sets' longest is ~6,000 characters; 5 MB costs ~12 minutes of
    # embedding per run), and so is a timestamp later than now by more than the skew.
    max_essay_chars: int = Field(default=50_000, ge=1, alias="HULEEDU_MAX_ESSAY_CHARS")
    max_future_skew_seconds: float = Field(
        default=300.0, ge=0, alias="HULEEDU_MAX_FUTURE_SKEW_SECONDS"
    )

    # The online scoring API (`huleedu-pipelines serve`, huleedu_pipelines/serving/). It binds
    # to loopback unless told otherwise; it checks the registry every `serve_reload_seconds`
    # for a moved `champion` alias. An essay longer than the smaller of `serve_max_text_chars`
    # and `max_essay_chars` (or a batch of more than `serve_max_batch` essays) is refused with
    # 413; `serve_feature_cache_entries` texts keep their features in memory (about 5 kB each).
    serve_host: str = Field(default="127.0.0.1", alias="HULEEDU_SERVE_HOST")
    serve_port: int = Field(default=8000, ge=0, le=65535, alias="HULEEDU_SERVE_PORT")
    serve_reload_seconds: float = Field(default=30.0, gt=0, alias="HULEEDU_SERVE_RELOAD_SECONDS")
    serve_max_batch: int = Field(default=100, ge=1, alias="HULEEDU_SERVE_MAX_BATCH")
    serve_max_text_chars: int = Field(default=50_000, ge=1, alias="HULEEDU_SERVE_MAX_TEXT_CHARS")
    serve_feature_cache_entries: int = Field(
        default=10_000, ge=0, alias="HULEEDU_SERVE_FEATURE_CACHE_ENTRIES"
    )
    serve_explain_scope: Literal["all", "needs_review", "none"] = Field(
        default="all", alias="HULEEDU_SERVE_EXPLAIN_SCOPE"
    )
    """Which API responses carry each skill's `top_features` (computed by `explain_method`)."""
    # Canary: this share of the API's traffic, chosen by a hash of the student id (else the
    # essay id, else the text) so a student always gets the same models, is scored by the
    # `challenger` versions that differ from the champions. 0 loads no challenger.
    serve_canary_share: float = Field(default=0.0, ge=0, le=1, alias="HULEEDU_SERVE_CANARY_SHARE")
    # The nightly run's figures on the API's /metrics (serving/batch_metrics.py) are read from
    # the warehouse and the Dagster instance at most once per this many seconds.
    nightly_metrics_cache_seconds: float = Field(
        default=60.0, ge=0, alias="HULEEDU_NIGHTLY_METRICS_CACHE_SECONDS"
    )

    # Retries and alerts (jobs/retries.py, schedules/alerts.py). A step of the nightly job
    # (idempotent upserts only) that fails is retried up to `retry_max_retries` times, waiting
    # `retry_delay_seconds` doubled each time, plus or minus a random jitter. A failed run is
    # logged and, when `alert_webhook_url` is set, POSTed there as JSON.
    retry_max_retries: int = Field(default=3, ge=0, alias="HULEEDU_RETRY_MAX_RETRIES")
    retry_delay_seconds: float = Field(default=10.0, ge=0, alias="HULEEDU_RETRY_DELAY_SECONDS")
    alert_webhook_url: str | None = Field(default=None, alias="HULEEDU_ALERT_WEBHOOK_URL")
    alert_timeout_seconds: float = Field(default=5.0, gt=0, alias="HULEEDU_ALERT_TIMEOUT_SECONDS")

    @property
    def max_future_skew(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.max_future_skew_seconds)

    @property
    def home(self) -> Path:
        return self.huleedu_home.expanduser().resolve()

    @property
    def resolved_warehouse_url(self) -> str:
        return self.warehouse_url or f"sqlite:///{self.home / 'warehouse.db'}"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Artifact root for new experiments: the home's folder with the embedded store; None
        with a tracking server (`MLFLOW_TRACKING_URI`), which then decides."""
        return None if self.mlflow_tracking_uri else self.mlflow_artifact_root.as_uri()

    @property
    def resolved_dagster_home(self) -> Path:
        return (self.dagster_home or self.home / "dagster").expanduser().resolve()

    @property
    def storage_dir(self) -> Path:
        """Parquet intermediates written by the IO manager."""
        return self.home / "storage"

    @property
    def compiled_trees_dir(self) -> Path:
        """Compiled boosters (`HULEEDU_COMPILED_SCORER`), cached by the sha256 of each booster."""
        return self.home / "compiled_trees"

    @property
    def feature_cache_dir(self) -> Path:
        """Per-essay features cached by (content hash, feature version); shareable between
        homes (e.g. a shared volume) because entries are keyed by content and version."""
        return (self.feature_cache or self.home / "feature_cache").expanduser().resolve()

    @property
    def models_dir(self) -> Path:
        """Local copies of trained model bundles (the registry holds the real ones)."""
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def demo_latent_truth_path(self) -> Path:
        """The demo generator's truth (`seed-demo` writes it), for the best achievable QWK."""
        return self.home / "demo_latent_truth.parquet"

    @property
    def embedding_model_cache_dir(self) -> Path:
        """Where a faster embedding runtime keeps its converted model (named by the bundled
        model's hash): beside the cached features, so it is made once per cache."""
        return self.feature_cache_dir

    def embedder(self) -> SentenceEmbedder:
        """The sentence embedder with this environment's runtime, tolerance and threads."""
        from huleedu_pipelines.features.embeddings import SentenceEmbedder

        return SentenceEmbedder(
            num_threads=self.n_jobs,
            runtime=self.embedding_runtime,
            min_cosine=self.embedding_min_cosine,
            model_cache_dir=self.embedding_model_cache_dir,
        )

    def gaming_check(self) -> GamingCheck:
        """The anti-gaming check on this home's feature cache and embedder."""
        from huleedu_pipelines.services.gaming import GamingCheck, featurizer

        return GamingCheck(
            featurize=featurizer(self.feature_cache_dir, self.embedder()),
            max_essays=self.gaming_essays,
            tolerance_sd=self.gaming_tolerance_sd,
        )

    def gate_thresholds(self) -> GateThresholds:
        """The promotion gates' thresholds: each `gate_<name>` setting as field `<name>`, and
        the `GATE_SETTINGS_OF_THEIR_OWN_NAME` as themselves."""
        from huleedu_pipelines.modeling.gates import GateThresholds

        names = (field.name for field in dataclasses.fields(GateThresholds))
        return GateThresholds(
            **{
                name: getattr(
                    self, name if name in GATE_SETTINGS_OF_THEIR_OWN_NAME else f"gate_{name}"
                )
                for name in names
            }
        )


GATE_SETTINGS_OF_THEIR_OWN_NAME = frozenset(
    {"min_n_per_group", "gaming_gate_blocks", "gaming_warn_only"}
)
"""`GateThresholds` fields that are not thresholds but decide what is gated (a subgroup needs
`min_n_per_group` essays; whether the anti-gaming gate blocks), so their settings carry no
`gate_` prefix."""


def get_settings() -> Settings:
    """Read the environment now (not at import), so tests and the CLI can set variables first."""
    return Settings()
