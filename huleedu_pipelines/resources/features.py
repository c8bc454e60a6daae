"""Resources for feature computation: the compute-once cache and the sentence embedder."""

from pathlib import Path

import dagster as dg

from huleedu_pipelines.features.embeddings import SentenceEmbedder


class FeatureStoreResource(dg.ConfigurableResource):
    """Where per-essay features are cached by (content hash, feature version)."""

    cache_dir: str

    @property
    def root(self) -> Path:
        return Path(self.cache_dir)


class EmbedderResource(dg.ConfigurableResource):
    """all-MiniLM-L6-v2 from the installed package; the model loads on first use."""

    batch_size: int = 32
    max_tokens: int = 256
    num_threads: int

    def embedder(self) -> SentenceEmbedder:
        return SentenceEmbedder(
            batch_size=self.batch_size, max_tokens=self.max_tokens, num_threads=self.num_threads
        )
