"""The warehouse: SQLAlchemy Core tables, migrations, reads and idempotent writes."""
