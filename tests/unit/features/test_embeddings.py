import itertools
import subprocess
import sys

import numpy as np
import pytest

from huleedu_pipelines.features.embeddings import (
    EMBEDDING_DIM,
    SentenceEmbedder,
    chunk_text,
    load_sentence_transformer,
)

# Loading the model takes several seconds; everything that needs it is marked slow.
slow = pytest.mark.slow

_SENTENCE = (
    "the student argues that school uniforms reduce bullying; however, the evidence "
    "suggests otherwise, because many pupils feel unbelievably constrained by rules"
)


def _long_essay(n_words: int = 1500, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = _SENTENCE.split()
    sentences = [" ".join(rng.choice(words, 15)).capitalize() + "." for _ in range(n_words // 15)]
    return " ".join(sentences)


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder(batch_size=4, num_threads=2)


def test_importing_the_module_does_not_import_torch() -> None:
    code = (
        "import sys, huleedu_pipelines.features.embeddings; "
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@slow
def test_vectors_are_unit_float32_rows(embedder: SentenceEmbedder) -> None:
    texts = ["I like reading books.", "", "   ", "Short essays are fine too."]

    vectors = embedder.embed(texts)

    assert vectors.shape == (4, EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@slow
def test_embedding_is_deterministic_and_the_model_is_loaded_once(
    embedder: SentenceEmbedder,
) -> None:
    texts = ["Climate change is a serious problem.", "My summer holiday was fun."]

    first = embedder.embed(texts)
    second = SentenceEmbedder(batch_size=1).embed(texts)

    np.testing.assert_allclose(first, second, atol=1e-6)
    assert load_sentence_transformer() is embedder.model


@slow
def test_long_essay_is_the_normalised_mean_of_its_chunks(embedder: SentenceEmbedder) -> None:
    essay = _long_essay()

    chunks = embedder.chunks(essay)
    chunk_vectors = embedder.model.encode(chunks, normalize_embeddings=True)
    mean = chunk_vectors.mean(axis=0)

    assert len(chunks) > 1
    np.testing.assert_allclose(embedder.embed([essay])[0], mean / np.linalg.norm(mean), atol=1e-5)


@slow
def test_chunks_fit_the_window_cover_the_text_and_overlap(embedder: SentenceEmbedder) -> None:
    essay = _long_essay(seed=1)
    tokenizer = embedder.tokenizer

    chunks = chunk_text(essay, tokenizer, max_tokens=128, overlap=16)

    lengths = [len(tokenizer(chunk)["input_ids"]) for chunk in chunks]
    assert len(chunks) > 5
    assert max(lengths) <= 128
    assert essay.startswith(chunks[0])
    assert essay.endswith(chunks[-1])
    # Each chunk is a slice of the essay that starts inside the previous one (the overlap).
    starts = [0]
    for previous, current in itertools.pairwise(chunks):
        start = essay.find(current, starts[-1] + 1)
        assert starts[-1] < start < starts[-1] + len(previous)
        starts.append(start)
    assert chunk_text("A short essay.", tokenizer, max_tokens=128) == ["A short essay."]
    assert chunk_text("", tokenizer, max_tokens=128) == [""]


@slow
def test_a_word_longer_than_the_window_is_cut_inside(embedder: SentenceEmbedder) -> None:
    text = "see " + "qzxjvk" * 15 + " end"  # the nonsense word is ~90 word pieces

    chunks = chunk_text(text, embedder.tokenizer, max_tokens=20, overlap=4)

    assert len(chunks) > 3
    assert all(len(embedder.tokenizer(chunk)["input_ids"]) <= 20 for chunk in chunks)
    assert text.startswith(chunks[0])
    assert text.endswith(chunks[-1])
    # Windows advance by at least budget - overlap = 14 tokens, so they overlap little.
    assert sum(len(chunk) for chunk in chunks) < 1.5 * len(text)


@slow
def test_chunk_text_rejects_an_overlap_as_large_as_the_window(
    embedder: SentenceEmbedder,
) -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("text", embedder.tokenizer, max_tokens=34, overlap=32)


@slow
def test_similar_sentences_are_closer_than_unrelated_ones(embedder: SentenceEmbedder) -> None:
    cat, kitten, tax = embedder.embed(
        [
            "The cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Corporate tax rates were raised by the government last year.",
        ]
    )

    assert float(cat @ kitten) > float(cat @ tax) + 0.2


@slow
def test_batched_equals_one_at_a_time(embedder: SentenceEmbedder) -> None:
    texts = ["One sentence.", _long_essay(400, seed=2), "", "Another, rather different one."]

    np.testing.assert_allclose(
        embedder.embed(texts), embedder.embed_one_at_a_time(texts), atol=1e-5
    )


@slow
def test_progress_reports_every_batch_and_ends_at_total(embedder: SentenceEmbedder) -> None:
    texts = ["a", "b", "c", _long_essay(400, seed=3), "d", "e"]
    total_chunks = sum(len(embedder.chunks(text)) for text in texts)
    calls: list[tuple[int, int]] = []

    embedder.embed(texts, progress=lambda done, total: calls.append((done, total)))

    assert len(calls) == -(-total_chunks // embedder.batch_size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1] == (total_chunks, total_chunks)


def test_rejects_non_text_and_accepts_nothing_without_loading_the_model() -> None:
    embedder = SentenceEmbedder()
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embedder.embed(["fine", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single string"):
        embedder.embed("not a list")

    assert embedder.embed([]).shape == (0, EMBEDDING_DIM)
