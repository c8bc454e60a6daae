"""Which static shard of the nightly scoring an essay belongs to.

The shard is a pure function of the essay id: the first 8 bytes of its SHA-256 as an unsigned
integer, modulo the number of shards. Unlike Python's `hash()` (salted per process) it is the
same in every process, machine and release, so each essay always lands in the same shard and
two shards never write the same essay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def shard_of(essay_id: str, shards: int) -> int:
    """The shard (0..shards-1) of `essay_id`."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    digest = hashlib.sha256(essay_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def in_shard(essay_ids: Iterable[str], shard: int, shards: int) -> list[bool]:
    """Per essay id: does it belong to `shard` of `shards`."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in 0..{shards - 1}, got {shard}")
    return [shard_of(essay_id, shards) == shard for essay_id in essay_ids]
