"""Fixtures of the API tests: a real server whose LLM gateway talks to the LLM test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import grpc.aio
import pytest
import yaml
from crm.ai.v1 import insight_pb2_grpc

from ai_orchestration.server import Server
from tests.conftest import running_server, server_settings
from tests.fixtures.llm_server import LlmTestServer

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    InsightStub: TypeAlias = insight_pb2_grpc.InsightServiceAsyncStub


def write_llm_config(path: Path, server: LlmTestServer) -> Path:
    """A routing file sending every logical model to the test server."""

    def deployment(name: str) -> dict[str, object]:
        return {
            "model_name": name,
            "litellm_params": {
                "model": "openai/test-model",
                "api_base": server.base_url + "/v1",
                "api_key": "sk-test",
            },
            "model_info": {
                "id": f"test-{name}",
                "retries": 0,
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
            },
        }

    path.write_text(yaml.safe_dump({"model_list": [deployment("fast"), deployment("smart")]}))
    return path


@pytest.fixture(params=["database", "redis"])
async def workflow_server(
    tmp_path: Path, llm_server: LlmTestServer, request: pytest.FixtureRequest
) -> AsyncIterator[Server]:
    """A server running workflows, once with each run queue: the run table, and Redis
    Streams (with Redis carrying the bus and the LLM gateway's shared state too)."""
    redis = {}
    if request.param == "redis":
        redis = {"redis_url": request.getfixturevalue("redis_url"), "workflow_queue": "redis"}
    settings = server_settings(
        tmp_path,
        llm_config_file=str(write_llm_config(tmp_path / "llm.yaml", llm_server)),
        llm_cache_ttl_seconds=0,
        workflow_lease_seconds=2,
        **redis,
    )
    async with running_server(settings) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
async def insight_server(
    tmp_path: Path, llm_server: LlmTestServer, request: pytest.FixtureRequest
) -> AsyncIterator[Server]:
    overrides: dict[str, object] = {
        "llm_config_file": str(write_llm_config(tmp_path / "llm.yaml", llm_server)),
        "llm_cache_ttl_seconds": 0,
    }
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_database_url")
    async with running_server(server_settings(tmp_path, **overrides)) as running:
        yield running


@pytest.fixture
async def stub(insight_server: Server) -> AsyncIterator[InsightStub]:
    async with grpc.aio.insecure_channel(insight_server.address) as channel:
        yield insight_pb2_grpc.InsightServiceStub(channel)
