"""Fixtures of the multi-replica tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import write_llm_config
from tests.fixtures.llm_server import LlmTestServer
from tests.integration._replicas import Replica, replicas_running


@pytest.fixture
def workflow_replicas(
    tmp_path: Path, postgres_database_url: str, redis_url: str, llm_server: LlmTestServer
) -> Iterator[list[Replica]]:
    """Two replicas running workflows on PostgreSQL and Redis, every LLM call to the test
    server (no cache), runs taken over 2 s after their replica dies."""
    with replicas_running(
        tmp_path,
        database_url=postgres_database_url,
        redis_url=redis_url,
        AIO_LLM_CONFIG_FILE=str(write_llm_config(tmp_path / "llm.yaml", llm_server)),
        AIO_LLM_CACHE_TTL_SECONDS="0",
        AIO_WORKFLOW_LEASE_SECONDS="2",
    ) as started:
        yield started
