"""Log records of a real server: the access line and its sample rate, and the JSON format."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc

from ai_orchestration.observability import LogContext, bind_log_context
from ai_orchestration.observability._logging import JsonFormatter, quiet_libraries
from ai_orchestration.server import Server
from tests.api._leads import hot_lead, metadata
from tests.conftest import TokenFactory, running_server, server_settings

SCORE_LEAD = "/crm.ai.v1.ScoringService/ScoreLead"


@pytest.fixture
async def sampled_out(tmp_path: Path) -> AsyncIterator[Server]:
    """A server that logs the access line of failed calls only."""
    async with running_server(server_settings(tmp_path, access_log_sample_rate=0.0)) as server:
        yield server


async def test_failed_calls_always_get_an_access_line_and_sampled_out_successes_none(
    sampled_out: Server, token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ai_orchestration.access")
    md = metadata(token(tenant_id="acme"))
    async with grpc.aio.insecure_channel(sampled_out.address) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        for number in range(5):
            await stub.ScoreLead(
                scoring_pb2.ScoreLeadRequest(lead=hot_lead(f"a-{number}")), metadata=md
            )
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=scoring_pb2.Lead()), metadata=md)
    lines = [r for r in caplog.records if r.name == "ai_orchestration.access"]
    assert [(r.method, r.code) for r in lines] == [(SCORE_LEAD, "INVALID_ARGUMENT")]  # type: ignore[attr-defined]
    assert lines[0].duration_ms > 0 and lines[0].peer.startswith("ipv")  # type: ignore[attr-defined]


def test_a_json_line_carries_the_bound_context_the_extra_fields_and_the_exception() -> None:
    record = logging.LogRecord(
        "ai_orchestration.x", logging.ERROR, __file__, 1, "failed %s", ("it",), None
    )
    record.attempt = 3
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    bind_log_context(LogContext(correlation_id="c-1", tenant="acme", rpc=SCORE_LEAD, run_id="r-9"))
    try:
        document = json.loads(JsonFormatter().format(record))
    finally:
        bind_log_context(LogContext())
    assert document["message"] == "failed it" and document["level"] == "ERROR"
    assert document["logger"] == "ai_orchestration.x" and document["time"].endswith("Z")
    assert (
        document["correlation_id"],
        document["tenant"],
        document["rpc"],
        document["run_id"],
    ) == (
        "c-1",
        "acme",
        SCORE_LEAD,
        "r-9",
    )
    assert document["attempt"] == 3
    assert "ValueError: boom" in document["exception"]
    assert "trace_id" not in document  # no span is current


def test_library_loggers_lose_their_own_handlers_and_are_held_at_the_level() -> None:
    logger = logging.getLogger("tests.fake_library")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    quiet_libraries("WARNING", ["tests.fake_library"])
    assert handler not in logger.handlers
    assert logger.level == logging.WARNING and logger.propagate
