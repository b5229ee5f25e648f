"""Alembic environment: runs the migrations on the connection ``Database.migrate()`` hands over.

There is no ``alembic.ini``: the config is built in code (``_migrate.alembic_config``) and the
connection, already inside a locked transaction, arrives in ``config.attributes["connection"]``.
To write a new revision, call ``alembic.command.revision(config, message=..., autogenerate=True)``
with such a config and a connection to a database at head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ai_orchestration.storage._insight_models import include_in_comparison
from ai_orchestration.storage._models import Base


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        include_object=include_in_comparison,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run migrations through ai_orchestration.storage.Database.migrate(), "
            "which passes a connection in config.attributes['connection']"
        )
    _run_migrations(connection)


_main()
