"""Alembic environment: run with a connection handed over by ``tiepdan.db.prepare_database`` (or by
the ``alembic`` command for authoring revisions, with ``-x url=…``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from complaints.tables import is_search_shadow_table
from tiepdan.db import metadatas

config = context.config
target_metadata = metadatas()


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave SQLite's FTS5 search table and its shadow tables out of autogenerate."""
    return not (type_ == "table" and name is not None and is_search_shadow_table(name))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with: alembic -x url=sqlite:///path.db …")
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
