"""Resources for feature computation: the compute-once cache and the sentence embedder."""

from pathlib import Path

import dagster as dg

from huleedu_pipelines.features.embeddings import EmbeddingRuntime, SentenceEmbedder
from huleedu_pipelines.progress import progress_bar, stop_bars


class FeatureStoreResource(dg.ConfigurableResource):
    """Where per-essay features are cached by (content hash, feature version)."""

    cache_dir: str

    @property
    def root(self) -> Path:
        return Path(self.cache_dir)


class EmbedderResource(dg.ConfigurableResource):
    """all-MiniLM-L6-v2 from the installed package; the model loads on first use.

    `runtime` is `torch` (exact) or `onnx_int8` (faster, checked against the exact vectors for
    a cosine of at least `min_cosine` before use; its model file lives in `model_cache_dir`).
    """

    batch_size: int = 32
    max_tokens: int = 256
    num_threads: int
    runtime: EmbeddingRuntime
    min_cosine: float
    model_cache_dir: str

    def embedder(self) -> SentenceEmbedder:
        """A new embedder; in a run the command line executes on a terminal it also draws a
        bar of the chunks embedded (`huleedu_pipelines.progress`)."""
        return SentenceEmbedder(
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
            num_threads=self.num_threads,
            runtime=self.runtime,
            min_cosine=self.min_cosine,
            model_cache_dir=Path(self.model_cache_dir),
            display=progress_bar("embedding essay chunks"),
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """The run is over: its bars, if any, stop drawing."""
        stop_bars()
