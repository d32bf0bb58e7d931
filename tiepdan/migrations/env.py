"""Alembic environment: run with a connection handed over by ``tiepdan.db.prepare_database`` (or by
the ``alembic`` command for authoring revisions, with ``-x url=…``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from tiepdan.db import metadatas

config = context.config
target_metadata = metadatas()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
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
