"""Migration 0005 on a home that already scored essays: rows keep their flags and gain an
empty `review_reasons`, the current view shows the new column, and a downgrade gives 0004's
schema back."""

import datetime as dt

import sqlalchemy as sa

from huleedu_pipelines.warehouse.engine import (
    MIGRATIONS_DIR,
    current_revision,
    make_engine,
    migrate,
)

T = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _view_columns(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        result = connection.execute(sa.text("SELECT * FROM current_essay_grade_predictions"))
        return list(result.keys())


def test_upgrade_adds_review_reasons_to_the_table_and_the_current_view(warehouse_url: str) -> None:
    engine = make_engine(warehouse_url)
    migrate(engine, "0004")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO serving_models (model_name, alias, version, since) "
                "VALUES ('huleedu-grade-sv', 'champion', '1', :t)"
            ),
            {"t": T},
        )
        connection.execute(
            sa.text(
                "INSERT INTO essay_grade_predictions (essay_id, model_alias, grade, "
                "needs_review, grade_model_version, cefr_model_version, "
                "ielts_band_model_version, feature_hash, run_id, scored_at) "
                "VALUES ('e1', 'champion', 'C', true, '1', '', '', 'h', 'r', :t)"
            ),
            {"t": T},
        )
    assert "review_reasons" not in _view_columns(engine)

    migrate(engine, "0005")

    assert current_revision(engine) == "0005"
    columns = _view_columns(engine)
    assert columns.index("review_reasons") == columns.index("needs_review") + 1
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT essay_id, needs_review, review_reasons FROM current_essay_grade_predictions"
            )
        ).one()
    assert (row.essay_id, bool(row.needs_review), row.review_reasons) == ("e1", True, None)

    _downgrade(engine, "0004")

    assert current_revision(engine) == "0004"
    assert "review_reasons" not in _view_columns(engine)
    assert "review_reasons" not in {
        column["name"] for column in sa.inspect(engine).get_columns("essay_grade_predictions")
    }
    with engine.connect() as connection:
        count = connection.execute(
            sa.text("SELECT count(*) FROM current_essay_grade_predictions")
        ).scalar_one()
    assert count == 1
    engine.dispose()
