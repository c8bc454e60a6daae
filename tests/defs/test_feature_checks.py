import polars as pl

from huleedu_pipelines.assets.features_checks import PROMPT_COLUMNS, check_feature_table_values
from huleedu_pipelines.features.build import CJ_FEATURE_COLUMNS, MODEL_FEATURE_COLUMNS


def table(**overrides: list) -> pl.DataFrame:
    """Three essays with every feature set and no CJ data."""
    columns = {name: [1.0, 2.0, 3.0] for name in MODEL_FEATURE_COLUMNS}
    columns |= {name: [None] * 3 for name in CJ_FEATURE_COLUMNS}
    columns |= {"cj_has_data": [0.0] * 3}
    columns |= overrides
    return pl.DataFrame(columns, schema=dict.fromkeys(MODEL_FEATURE_COLUMNS, pl.Float64))


def test_columns_the_data_cannot_support_may_be_null_and_say_why() -> None:
    no_prompts = {name: [None] * 3 for name in PROMPT_COLUMNS}
    result = check_feature_table_values(table(**no_prompts))
    assert result.passed
    reasons = result.metadata["null_by_design"].value
    assert reasons["prompt_cosine"] == "no essay has a prompt text"
    assert reasons[CJ_FEATURE_COLUMNS[0]] == "no essay has CJ comparisons"


def test_a_null_column_the_data_could_support_fails() -> None:
    one_prompt_feature_null = table(prompt_cosine=[None] * 3)
    result = check_feature_table_values(one_prompt_feature_null)
    assert not result.passed
    assert result.metadata["entirely_null_columns"].value == ["prompt_cosine"]
    assert not check_feature_table_values(table(word_count=[None] * 3)).passed
