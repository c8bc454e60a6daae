"""Compute-once cache of per-essay features, keyed by (essay content hash, feature version).

Each feature kind (text, embeddings) has a folder per version of Parquet part files. New
rows are appended as a new part (written to a temporary name, then renamed), so a killed run
never leaves a broken cache and concurrent readers always see whole files.

Several processes share a cache (the shards of a night, the scoring API). Compaction merges
the parts into a new one before it deletes the old ones, one compaction at a time (a lock
file); a reader that listed a part just deleted lists again and finds its rows in the merged
part.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

CONTENT_HASH = "content_hash"

COMPACT_AFTER_PARTS = 32
LOOKUP_ATTEMPTS = 5


def content_hash(text: str, prompt_text: str | None) -> str:
    """What a text feature can depend on: the essay text and the prompt it answers."""
    digest = hashlib.sha256()
    digest.update(text.encode("utf-8"))
    digest.update(b"\x1f")
    digest.update((prompt_text or "").encode("utf-8"))
    return digest.hexdigest()


def with_content_hash(essays: pl.DataFrame) -> pl.DataFrame:
    hashes = [
        content_hash(text, prompt)
        for text, prompt in essays.select("text", "prompt_text").iter_rows()
    ]
    return essays.with_columns(pl.Series(CONTENT_HASH, hashes, dtype=pl.String))


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", part)


@dataclass(frozen=True)
class CachedResult:
    frame: pl.DataFrame
    """One row per distinct content hash asked for: `content_hash` + the feature columns."""
    computed: int
    reused: int


class FeatureCache:
    def __init__(self, root: Path, kind: str, version: str) -> None:
        self.directory = Path(root) / _safe(kind) / _safe(version)

    def _parts(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.parquet")) if self.directory.exists() else []

    def lookup(self, hashes: list[str]) -> pl.DataFrame | None:
        wanted = pl.Series(CONTENT_HASH, hashes, dtype=pl.String)
        for attempt in range(LOOKUP_ATTEMPTS):
            parts = self._parts()
            if not parts or not hashes:
                return None
            try:
                return (
                    pl.scan_parquet(parts)
                    .filter(pl.col(CONTENT_HASH).is_in(wanted.implode()))
                    .unique(CONTENT_HASH, keep="first", maintain_order=True)
                    .collect()
                )
            except FileNotFoundError:  # compacted away while we read: its rows are merged
                if attempt == LOOKUP_ATTEMPTS - 1:
                    raise
        return None

    def store(self, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        temporary = self.directory / f".{name}.tmp"
        frame.write_parquet(temporary)
        temporary.replace(self.directory / name)
        if len(self._parts()) > COMPACT_AFTER_PARTS:
            self.compact()

    def compact(self) -> None:
        """Merge all parts into one (same rows), so lookups stay one scan. One process at a
        time: a second waits, then merges what is left."""
        with open(self.directory / ".compact.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            parts = self._parts()
            if len(parts) < 2:
                return
            merged = pl.scan_parquet(parts).unique(CONTENT_HASH, keep="first").collect()
            name = f"part-{uuid.uuid4().hex}.parquet"
            temporary = self.directory / f".{name}.tmp"
            merged.write_parquet(temporary)
            temporary.replace(self.directory / name)
            for part in parts:
                part.unlink(missing_ok=True)

    def get_or_compute(
        self, keyed: pl.DataFrame, compute: Callable[[pl.DataFrame], pl.DataFrame]
    ) -> CachedResult:
        """Features for every distinct `content_hash` in `keyed`, computing only unseen ones.

        `compute` receives the rows to compute (with all columns of `keyed`) and returns the
        feature columns in the same row order.
        """
        distinct = keyed.unique(CONTENT_HASH, keep="first", maintain_order=True)
        known = self.lookup(distinct[CONTENT_HASH].to_list())
        known_hashes = set() if known is None else set(known[CONTENT_HASH].to_list())
        missing = distinct.filter(~pl.col(CONTENT_HASH).is_in(list(known_hashes)))
        fresh = None
        if not missing.is_empty():
            features = compute(missing)
            fresh = pl.concat([missing.select(CONTENT_HASH), features], how="horizontal")
            self.store(fresh)
        frames = [frame for frame in (known, fresh) if frame is not None]
        frame = pl.concat(frames, how="vertical_relaxed") if frames else None
        if frame is None:
            raise ValueError("no essays to compute features for")
        return CachedResult(frame, computed=missing.height, reused=len(known_hashes))
