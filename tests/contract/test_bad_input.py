"""Malformed requests get a clear error, with a default-configured client: times and durations
out of range, bodies that do not decode, and more violations than trailers can carry."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import (
    scoring_pb2,
    scoring_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)
from crm_ai_client import ServiceError
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ai_orchestration.server import Server
from tests.conftest import TokenFactory

TRAILER_BUDGET = 8 * 1024
"""gRPC's default soft limit on metadata a client accepts."""


def _md(token: TokenFactory) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token()}"),)


def trailer_bytes(error: grpc.aio.AioRpcError) -> int:
    """The size of an error's trailers on the wire (binary values go out base64-encoded)."""
    size = len((error.details() or "").encode())
    for key, value in error.trailing_metadata() or ():
        raw = value if isinstance(value, bytes) else str(value).encode()
        size += len(key) + (len(raw) * 4 + 2) // 3 if key.endswith("-bin") else len(key) + len(raw)
    return size


def _raw(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    """A call of ``method`` that sends bytes as they are (no serialiser)."""
    return channel.unary_unary(method)


async def _refused(call: object) -> tuple[ServiceError, grpc.aio.AioRpcError]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        result = await call  # type: ignore[misc]
        if isinstance(result, AsyncIterator):
            async for _ in result:
                pass
    return ServiceError.from_rpc_error(caught.value), caught.value


@pytest.fixture
async def channel(server: Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as chan:
        yield chan


UUID = str(uuid.UUID(int=7))


def ts(seconds: int = 0, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def lead(lead_id: str, created: Timestamp | None = None) -> scoring_pb2.Lead:
    return scoring_pb2.Lead(lead_id=lead_id, create_time=created)


BAD_NANOS = ts(nanos=1_000_000_000)
BAD_START = workflow_pb2.StartRunRequest(
    request_id=UUID,
    lead_qualification=workflow_pb2.LeadQualificationInput(lead=lead("L-1", BAD_NANOS)),
)
TIME_CASES: list[tuple[str, Message, str]] = [
    (
        "/crm.ai.v1.WorkflowService/ListRuns",
        workflow_pb2.ListRunsRequest(create_time_after=BAD_NANOS),
        "create_time_after",
    ),
    (
        "/crm.ai.v1.UsageService/GetUsage",
        usage_pb2.GetUsageRequest(start_time=ts(), end_time=ts(-4611686018427387904)),
        "end_time",
    ),
    (
        "/crm.ai.v1.ScoringService/RecordLeadOutcome",
        scoring_pb2.RecordLeadOutcomeRequest(
            request_id=UUID,
            lead_id="L-1",
            outcome=scoring_pb2.LeadOutcome.OUTCOME_DISQUALIFIED,
            outcome_time=BAD_NANOS,
        ),
        "outcome_time",
    ),
    (
        "/crm.ai.v1.ScoringService/RecordLeadOutcome",
        scoring_pb2.RecordLeadOutcomeRequest(
            request_id=UUID,
            lead_id="L-1",
            outcome=scoring_pb2.LeadOutcome.OUTCOME_DISQUALIFIED,
            lead=lead("L-1", BAD_NANOS),
        ),
        "lead.create_time",
    ),
    (
        "/crm.ai.v1.ScoringService/ScoreLead",
        scoring_pb2.ScoreLeadRequest(lead=lead("L-1", ts(253402300800))),
        "lead.create_time",
    ),
    (
        "/crm.ai.v1.ScoringService/UpdateScoringSettings",
        scoring_pb2.UpdateScoringSettingsRequest(
            settings=scoring_pb2.ScoringSettings(score_ttl=Duration(seconds=4611686018427387904))
        ),
        "settings.score_ttl",
    ),
    (
        "/crm.ai.v1.WorkflowService/StartRun",
        BAD_START,
        "lead_qualification.lead.create_time",
    ),
]


@pytest.mark.parametrize(("method", "request_message", "field"), TIME_CASES)
async def test_a_time_that_is_no_valid_value_names_its_field(
    channel: grpc.aio.Channel,
    token: TokenFactory,
    method: str,
    request_message: Message,
    field: str,
) -> None:
    call = _raw(channel, method)(request_message.SerializeToString(), metadata=_md(token))
    err, _ = await _refused(call)
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in err.field_violations]


async def test_streamed_runs_and_batches_check_their_times_too(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stream = workflow_pb2_grpc.WorkflowServiceStub(channel).StreamRun(
        workflow_pb2.StreamRunRequest(run=BAD_START), metadata=_md(token)
    )
    err, _ = await _refused(_drain(stream))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == ["run.lead_qualification.lead.create_time"]
    batch = scoring_pb2_grpc.ScoringServiceStub(channel).BatchScoreLeads(
        scoring_pb2.BatchScoreLeadsRequest(leads=[lead("L-1"), lead("L-2", ts(-(2**62)))]),
        metadata=_md(token),
    )
    err, _ = await _refused(_drain(batch))
    assert [v.field for v in err.field_violations] == ["leads[1].create_time"]


async def test_a_duration_past_its_declared_range_is_refused(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    request = scoring_pb2.UpdateScoringSettingsRequest(
        settings=scoring_pb2.ScoringSettings(score_ttl=Duration(seconds=10 * 365 * 86400))
    )
    err, _ = await _refused(stub.UpdateScoringSettings(request, metadata=_md(token)))
    assert [(v.field, v.reason) for v in err.field_violations] == [
        ("settings.score_ttl", "DURATION_GTE_LTE")
    ]


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass


async def test_a_body_that_does_not_decode_is_invalid_argument_and_logged_once(
    channel: grpc.aio.Channel, token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = b"\x0a\x02\xff\xfe"  # field 1 (a string) holding invalid UTF-8
    caplog.set_level(logging.INFO)
    for method in (
        "/crm.ai.v1.ScoringService/ScoreLead",
        "/crm.ai.v1.WorkflowService/GetRun",
        "/crm.ai.v1.UsageService/GetUsage",
    ):
        for _ in range(20):
            call = _raw(channel, method)(garbage, metadata=_md(token))
            err, raw = await _refused(call)
            assert err.code is grpc.StatusCode.INVALID_ARGUMENT
            assert err.reason == "MALFORMED_REQUEST" and err.correlation_id
            assert [v.reason for v in err.field_violations] == ["MALFORMED"]
            assert "DecodeError" not in (raw.details() or "")
    watch: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
        "/crm.ai.v1.WorkflowService/WatchRun"
    )
    stream = watch(garbage, metadata=_md(token))
    err, _ = await _refused(_drain(stream))
    assert err.reason == "MALFORMED_REQUEST"
    logged = [r for r in caplog.records if "malformed" in r.getMessage().lower()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING
    assert not any(r.exc_info for r in caplog.records)  # no traceback


async def test_a_malformed_body_from_an_unknown_caller_is_unauthenticated(
    channel: grpc.aio.Channel,
) -> None:
    call = _raw(channel, "/crm.ai.v1.ScoringService/ScoreLead")(b"\xff\xff\xff")
    err, _ = await _refused(call)
    assert err.code is grpc.StatusCode.UNAUTHENTICATED


async def test_hundreds_of_violations_fit_a_default_clients_trailers(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    leads = [scoring_pb2.Lead(lead_id="bad id!") for _ in range(200)]
    stream = scoring_pb2_grpc.ScoringServiceStub(channel).BatchScoreLeads(
        scoring_pb2.BatchScoreLeadsRequest(leads=leads), metadata=_md(token)
    )
    err, raw = await _refused(_drain(stream))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT  # not RESOURCE_EXHAUSTED
    # The first violations in order, as many as fit (at most 50), then how many more there are.
    listed = [v for v in err.field_violations if v.reason != "MORE_VIOLATIONS"]
    assert 30 <= len(listed) <= 50
    assert [v.field for v in listed] == [f"leads[{i}].lead_id" for i in range(len(listed))]
    (more,) = [v for v in err.field_violations if v.reason == "MORE_VIOLATIONS"]
    assert more.description.startswith(f"{200 - len(listed)} more violations are not listed")
    assert trailer_bytes(raw) < TRAILER_BUDGET

    states = [workflow_pb2.Run.STATE_UNSPECIFIED] * 1000
    runs = workflow_pb2_grpc.WorkflowServiceStub(channel)
    err, raw = await _refused(
        runs.ListRuns(workflow_pb2.ListRunsRequest(states=states), metadata=_md(token))
    )
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and trailer_bytes(raw) < TRAILER_BUDGET
    # A caller's correlation id is reused only when it is short and tame: no way to make the
    # trailers grow from the request headers.
    usage = usage_pb2_grpc.UsageServiceStub(channel)
    err, raw = await _refused(
        usage.GetUsage(
            usage_pb2.GetUsageRequest(start_time=ts(10), end_time=ts(5)),
            metadata=(*_md(token), ("x-request-id", "y" * 4000)),
        )
    )
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and trailer_bytes(raw) < TRAILER_BUDGET
    assert err.correlation_id != "y" * 4000
