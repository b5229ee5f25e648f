"""Fixtures of the storage conformance suite: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ai_orchestration.storage import Database
from tests.storage._support import FakeClock

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database: a SQLite file in a not-yet-existing directory, or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/not/yet/there/storage.db"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated :class:`Database` on each backend, closed after the test."""
    async with Database.from_url(database_url) as db:
        await db.migrate()
        yield db


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()
