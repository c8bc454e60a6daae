"""The compute-once feature cache shared by several processes (the shards of a night, the
scoring API): compaction keeps every row, and readers and compactors never trip over each
other's files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from huleedu_pipelines.features.store import CONTENT_HASH, FeatureCache


def rows(start: int, n: int = 5) -> pl.DataFrame:
    return pl.DataFrame(
        {CONTENT_HASH: [f"h{i}" for i in range(start, start + n)], "value": range(start, start + n)}
    )


def filled(root: Path, parts: int) -> FeatureCache:
    cache = FeatureCache(root, "text", "v1")
    for part in range(parts):
        cache.store(rows(5 * part))
    return cache


def test_compaction_keeps_every_row_in_one_part(tmp_path: Path) -> None:
    cache = filled(tmp_path, 3)
    cache.compact()
    assert len(cache._parts()) == 1
    found = cache.lookup([f"h{i}" for i in range(15)])
    assert found is not None and sorted(found["value"].to_list()) == list(range(15))


def test_a_reader_whose_parts_were_compacted_away_reads_the_merged_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = filled(tmp_path, 3)
    listed_before = cache._parts()
    cache.compact()  # another process, between the reader's listing and its scan
    listings = iter([listed_before])
    real_parts = FeatureCache._parts
    monkeypatch.setattr(
        FeatureCache, "_parts", lambda self: next(listings, None) or real_parts(self)
    )

    found = cache.lookup(["h0", "h14"])

    assert found is not None and sorted(found["value"].to_list()) == [0, 14]


def test_two_processes_compacting_at_once_lose_nothing(tmp_path: Path) -> None:
    cache = filled(tmp_path, 30)
    script = (
        "import sys; from pathlib import Path; "
        "from huleedu_pipelines.features.store import FeatureCache; "
        "FeatureCache(Path(sys.argv[1]), 'text', 'v1').compact()"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [worker.communicate(timeout=120)[1].decode() for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], errors
    assert len(cache._parts()) == 1
    found = cache.lookup([f"h{i}" for i in range(150)])
    assert found is not None and found.height == 150
