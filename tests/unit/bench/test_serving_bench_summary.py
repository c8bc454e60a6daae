"""The serving benchmark's arithmetic on fixed numbers: percentiles interpolate between ranks
as numpy does, a phase's summary turns latencies into milliseconds and rates, and the
server's stage shares and cache hit rate come from the difference of two /metrics scrapes."""

import json

import numpy as np
import pytest

from benchmarks.serving import (
    PHASES,
    ServerReading,
    _payloads,
    percentile,
    print_serving,
    read_metrics,
    server_shares,
    summarise,
)

LATENCIES = [0.010, 0.020, 0.030, 0.040, 0.050, 0.060, 0.070, 0.080, 0.090, 1.000]


@pytest.mark.parametrize("q", [0, 50, 95, 99, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    assert percentile(LATENCIES, q) == pytest.approx(float(np.percentile(LATENCIES, q)))


def test_percentile_by_hand_and_edges() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([7.0], 99) == 7.0
    assert np.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_summary_of_a_phase() -> None:
    summary = summarise(LATENCIES, seconds=2.0, essays_per_request=50, errors=1)
    assert summary == {
        "requests": 10,
        "errors": 1,
        "p50_ms": 55.0,
        "p95_ms": 590.5,  # rank 9 * 0.95 = 8.55: 0.09 + 0.55 * (1.0 - 0.09)
        "p99_ms": 918.1,
        "requests_per_s": 5.0,
        "essays_per_s": 250.0,
    }
    empty = summarise([], seconds=1.0, essays_per_request=1)
    assert empty["requests"] == 0 and empty["p95_ms"] is None and empty["requests_per_s"] == 0


EXPOSITION = """\
# HELP huleedu_serving_stage_duration_seconds Time per scoring request in each stage.
# TYPE huleedu_serving_stage_duration_seconds histogram
huleedu_serving_stage_duration_seconds_bucket{le="0.005",stage="features"} 1.0
huleedu_serving_stage_duration_seconds_count{stage="features"} 4.0
huleedu_serving_stage_duration_seconds_sum{stage="features"} 3.0
huleedu_serving_stage_duration_seconds_sum{stage="models"} 1.0
huleedu_serving_feature_cache_hits_total{layer="memory"} 6.0
huleedu_serving_feature_cache_hits_total{layer="disk"} 2.0
huleedu_serving_feature_cache_hits_created{layer="disk"} 1.7e+09
huleedu_serving_feature_cache_misses_total 12.0
"""


def test_metrics_are_read_from_the_exposition() -> None:
    reading = read_metrics(EXPOSITION)
    assert reading == ServerReading({"features": 3.0, "models": 1.0}, 8.0, 12.0)


def test_shares_are_taken_between_two_scrapes() -> None:
    before = ServerReading({"features": 1.0, "models": 0.5}, cache_hits=8.0, cache_misses=12.0)
    after = ServerReading({"features": 4.0, "models": 1.5}, cache_hits=38.0, cache_misses=22.0)
    assert server_shares(before, after) == {
        "share_features": 0.75,
        "share_models": 0.25,
        "cache_hit_rate": 0.75,
    }
    assert server_shares(after, after) == {
        "share_features": None,
        "share_models": None,
        "cache_hit_rate": None,
    }


def test_cold_payloads_never_repeat_and_run_out_cached_ones_cycle() -> None:
    texts = [{"text": f"essay {i}"} for i in range(120)]
    cold = _payloads("batch", texts, repeat=False)
    batches = [cold(), cold()]
    assert cold() is None  # 120 texts make two whole batches of 50
    sent = [essay["text"] for batch in batches for essay in batch["essays"]]
    assert len(sent) == len(set(sent)) == 100
    cached = _payloads("single", texts[:3], repeat=True)
    expected = ["essay 0", "essay 1", "essay 2", "essay 0", "essay 1"]
    assert [cached()["text"] for _ in range(5)] == expected


def test_print_ends_with_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    figures = {"benchmark": "serving", "concurrency": 2}
    for kind, cache in PHASES:
        figures |= {f"{kind}_{cache}_{k}": v for k, v in summarise(LATENCIES, 2.0, 1).items()}
    print_serving(figures)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["single_cached_p95_ms"] == 590.5
