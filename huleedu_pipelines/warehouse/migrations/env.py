"""Alembic environment: runs on the connection that `warehouse.engine.migrate` passes in."""

from alembic import context

from huleedu_pipelines.warehouse.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run warehouse migrations through huleedu_pipelines.warehouse.engine.migrate(engine)"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
