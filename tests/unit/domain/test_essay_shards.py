"""The shard of an essay: a pure, stable function of its id, balanced across shards."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter

import pytest

from huleedu_pipelines.domain.shards import in_shard, shard_of

IDS = [f"essay-{i:05d}" for i in range(10_000)]


def test_known_ids_keep_their_shard() -> None:
    # Pinned values: a change here re-shards every warehouse (sha256, first 8 bytes, big end).
    known = ("essay-00000", "essay-00001", "s1-e1", "Ä-ö")
    assert [shard_of(e, 4) for e in known] == [2, 0, 0, 3]
    assert [shard_of(e, 16) for e in known] == [14, 0, 8, 11]
    for essay_id in known:
        digest = hashlib.sha256(essay_id.encode()).digest()
        assert shard_of(essay_id, 7) == int.from_bytes(digest[:8], "big") % 7


def test_the_shard_is_the_same_in_another_process_with_another_hash_seed() -> None:
    sample = IDS[:200]
    code = (
        "import json, sys\n"
        "from huleedu_pipelines.domain.shards import shard_of\n"
        "ids = json.loads(sys.stdin.read())\n"
        "print(json.dumps([shard_of(e, 4) for e in ids]))\n"
    )
    for seed in ("1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(sample),
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        assert json.loads(out.stdout) == [shard_of(e, 4) for e in sample]


@pytest.mark.parametrize("shards", [1, 2, 4, 8, 16])
def test_ten_thousand_ids_spread_evenly(shards: int) -> None:
    counts = Counter(shard_of(e, shards) for e in IDS)
    assert set(counts) == set(range(shards))
    expected = len(IDS) / shards
    # Binomial sd at 16 shards is ~24 essays (4 % of 625): 10 % leaves > 4 sd of room.
    assert all(abs(n - expected) <= 0.10 * expected for n in counts.values()), counts


def test_every_id_is_in_exactly_one_shard() -> None:
    masks = [in_shard(IDS, shard, 4) for shard in range(4)]
    assert all(sum(column) == 1 for column in zip(*masks, strict=True))


def test_a_bad_shard_or_count_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("e", 0)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        in_shard(["e"], 4, 4)
