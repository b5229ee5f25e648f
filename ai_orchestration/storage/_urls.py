"""Database URL normalisation: operators write plain URLs, the service needs async drivers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["normalize_database_url", "sqlite_file_path"]

_ASYNC_DRIVERS = {
    "sqlite": "aiosqlite",
    "postgresql": "asyncpg",
}
# Heroku-style and libpq-style URLs say ``postgres://``; SQLAlchemy only knows ``postgresql``.
_BACKEND_ALIASES = {"postgres": "postgresql"}


def normalize_database_url(url: str | URL) -> URL:
    """Return ``url`` with its backend's async driver.

    ``sqlite:///f.db`` becomes ``sqlite+aiosqlite:///f.db`` and ``postgresql://`` or
    ``postgres://`` become ``postgresql+asyncpg://``. A URL naming another driver (say
    ``postgresql+psycopg2``) is refused rather than silently rewritten, because its query
    parameters are driver-specific.

    Raises:
        ValueError: the URL cannot be parsed, or names an unsupported backend or driver.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise ValueError(f"cannot parse database URL: {err}") from None
    backend = _BACKEND_ALIASES.get(parsed.get_backend_name(), parsed.get_backend_name())
    async_driver = _ASYNC_DRIVERS.get(backend)
    if async_driver is None:
        supported = ", ".join(f"{name}+{driver}" for name, driver in _ASYNC_DRIVERS.items())
        raise ValueError(f"unsupported database backend {backend!r}; use one of {supported}")
    driver = parsed.get_driver_name() if "+" in parsed.drivername else ""
    if driver not in ("", async_driver):
        raise ValueError(
            f"unsupported driver {driver!r} for {backend}; use {backend}+{async_driver}:// "
            f"or plain {backend}://"
        )
    return parsed.set(drivername=f"{backend}+{async_driver}")


def sqlite_file_path(url: URL) -> Path | None:
    """The file a SQLite URL points at, or ``None`` for in-memory and ``file:`` URI databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)
