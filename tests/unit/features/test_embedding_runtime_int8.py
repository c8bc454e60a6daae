"""The int8 ONNX embedding runtime: same shape and unit norm as the exact vectors, within the
cosine tolerance of them, never sharing a feature version or cache folder with them, and
refusing to run when its measured agreement is under the tolerance."""

from pathlib import Path
from typing import get_args

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from huleedu_pipelines.features.build import cached_embeddings, feature_version
from huleedu_pipelines.features.embeddings import (
    EMBEDDING_DIM,
    EMBEDDING_RUNTIMES,
    REFERENCE_TEXTS,
    EmbeddingToleranceError,
    SentenceEmbedder,
    int8_model_file,
    source_model_hash,
)
from huleedu_pipelines.features.store import with_content_hash

slow = pytest.mark.slow

TOLERANCE = 0.98

_TEXTS = [
    "I like reading books.",
    "In my opinion, public transport should be free for students, because it is cheaper for "
    "families and better for the environment.",
    " ".join(
        f"Sentence {i} of a long essay about patience, waiting and what we learn from it."
        for i in range(60)
    ),  # several 256-token windows
]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export and quantisation of the bundled model for the whole module."""
    cache = tmp_path_factory.mktemp("embedding-model-cache")
    int8_model_file(cache)
    return cache


@pytest.fixture(scope="module")
def exact() -> SentenceEmbedder:
    return SentenceEmbedder(batch_size=4, num_threads=2)


def _int8(model_cache: Path, min_cosine: float = TOLERANCE) -> SentenceEmbedder:
    return SentenceEmbedder(
        batch_size=4,
        num_threads=2,
        runtime="onnx_int8",
        min_cosine=min_cosine,
        model_cache_dir=model_cache,
    )


@slow
def test_int8_vectors_are_unit_rows_within_tolerance_of_the_exact_ones(
    exact: SentenceEmbedder, model_cache: Path
) -> None:
    expected = exact.embed(_TEXTS)

    vectors = _int8(model_cache).embed(_TEXTS)

    assert vectors.shape == expected.shape == (len(_TEXTS), EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors.astype(np.float64) * expected, axis=1)
    assert np.all(cosines >= TOLERANCE), cosines
    assert np.all(cosines < 1.0 - 1e-6), "int8 vectors equal to exact ones: not quantised?"


@slow
def test_one_at_a_time_gives_the_batched_int8_vectors(model_cache: Path) -> None:
    int8 = _int8(model_cache)

    np.testing.assert_allclose(int8.embed_one_at_a_time(_TEXTS), int8.embed(_TEXTS), atol=1e-6)


@slow
def test_the_reference_agreement_is_measured_on_every_reference_text(model_cache: Path) -> None:
    agreement = _int8(model_cache).runtime_agreement()

    assert agreement.texts == len(REFERENCE_TEXTS) >= 24
    assert TOLERANCE <= agreement.min_cosine <= agreement.mean_cosine < 1.0


@slow
def test_a_tolerance_above_the_measured_agreement_refuses_with_the_figures(
    model_cache: Path,
) -> None:
    measured = _int8(model_cache).runtime_agreement().min_cosine

    with pytest.raises(EmbeddingToleranceError) as refused:
        _int8(model_cache, min_cosine=0.99999).embed(_TEXTS[:1])

    message = str(refused.value)
    assert f"{measured:.5f}" in message
    assert "HULEEDU_EMBEDDING_MIN_COSINE=0.99999" in message


def test_the_runtime_is_part_of_the_feature_version(tmp_path: Path) -> None:
    exact = SentenceEmbedder()
    int8 = _int8(tmp_path)

    assert exact.version == "all-MiniLM-L6-v2/window=256/overlap=32/chunk-mean"  # unchanged
    assert int8.version == f"{exact.version}/runtime=onnx_int8"
    assert feature_version(exact) != feature_version(int8)


@slow
def test_int8_vectors_never_reuse_cached_exact_vectors(
    exact: SentenceEmbedder, model_cache: Path, tmp_path: Path
) -> None:
    essays = with_content_hash(pl.DataFrame({"text": _TEXTS, "prompt_text": [None] * 3}))
    first = cached_embeddings(essays, tmp_path, exact)

    second = cached_embeddings(essays, tmp_path, _int8(model_cache))
    again = cached_embeddings(essays, tmp_path, exact)

    assert (first.computed, second.computed, second.reused) == (3, 3, 0)
    assert (again.computed, again.reused) == (0, 3)
    exact_vectors = first.frame.drop("content_hash").to_numpy()
    int8_vectors = second.frame.drop("content_hash").to_numpy()
    assert not np.allclose(exact_vectors, int8_vectors, atol=1e-6)


@slow
def test_the_model_file_is_made_once_and_named_by_the_source_model(model_cache: Path) -> None:
    path = int8_model_file(model_cache)
    made = path.stat().st_mtime_ns

    assert int8_model_file(model_cache) == path
    assert path.stat().st_mtime_ns == made
    assert source_model_hash()[:16] in path.name
    assert [p.name for p in path.parent.glob("*.onnx")] == [path.name]  # no leftovers


def test_the_int8_runtime_needs_a_tolerance_and_a_model_folder() -> None:
    with pytest.raises(ValueError, match="min_cosine"):
        SentenceEmbedder(runtime="onnx_int8")
    with pytest.raises(ValueError, match="unknown embedding runtime"):
        SentenceEmbedder(runtime="openvino")  # type: ignore[arg-type]


def test_settings_offer_exactly_the_runtimes_the_embedder_knows() -> None:
    from huleedu_pipelines.settings import Settings

    annotation = Settings.model_fields["embedding_runtime"].annotation
    assert set(get_args(annotation)) == set(EMBEDDING_RUNTIMES) == {"torch", "onnx_int8"}


def test_settings_choose_the_runtime_of_the_embedder_resource(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huleedu_pipelines.resources import build_resources
    from huleedu_pipelines.settings import get_settings

    monkeypatch.delenv("HULEEDU_EMBEDDING_RUNTIME", raising=False)
    monkeypatch.delenv("HULEEDU_EMBEDDING_MIN_COSINE", raising=False)
    default = build_resources(get_settings())["embedder"].embedder()
    monkeypatch.setenv("HULEEDU_EMBEDDING_RUNTIME", "onnx_int8")
    monkeypatch.setenv("HULEEDU_EMBEDDING_MIN_COSINE", "0.97")
    settings = get_settings()
    chosen = build_resources(settings)["embedder"].embedder()

    assert (default.runtime, default.min_cosine) == ("torch", 0.98)
    assert (chosen.runtime, chosen.min_cosine) == ("onnx_int8", 0.97)
    assert chosen.model_cache_dir == settings.feature_cache_dir
    assert settings.embedder().version == chosen.version
    monkeypatch.setenv("HULEEDU_EMBEDDING_RUNTIME", "int4")
    with pytest.raises(ValidationError, match="HULEEDU_EMBEDDING_RUNTIME"):
        get_settings()
