"""Alembic migrations of the storage schema; applied by ``Database.migrate()``."""
