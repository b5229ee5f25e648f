"""Validation errors and the error mapping, decoded from rich status on the client side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import insight_pb2, insight_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from crm_ai_client import ServiceError
from google.protobuf import empty_pb2

from ai_orchestration.api import ServicePipeline
from ai_orchestration.errors import ConflictError
from ai_orchestration.observability import Metrics
from ai_orchestration.security import Authenticator
from tests.conftest import TokenFactory


def _md(token: TokenFactory) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token()}"),)


async def test_invalid_request_lists_every_field_violation(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    lead = scoring_pb2.Lead(lead_id="has space", email="nope", employee_count=0, country="de")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=lead), metadata=_md(token))
    err = ServiceError.from_rpc_error(caught.value)
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field: v.reason for v in err.field_violations}
    assert fields == {
        "lead.lead_id": "STRING_PATTERN",
        "lead.email": "STRING_EMAIL",
        "lead.employee_count": "INT32_GTE_LTE",
        "lead.country": "STRING_PATTERN",
    }
    assert err.domain == "ai-orchestration.crm"
    assert err.correlation_id


async def test_batch_violation_names_the_index(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    request = scoring_pb2.BatchScoreLeadsRequest(
        leads=[scoring_pb2.Lead(lead_id="ok"), scoring_pb2.Lead(lead_id="")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.BatchScoreLeads(request, metadata=_md(token)):
            pass
    err = ServiceError.from_rpc_error(caught.value)
    assert [v.field for v in err.field_violations] == ["leads[1].lead_id"]


async def test_client_stream_messages_are_validated(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stub = insight_pb2_grpc.InsightServiceStub(channel)

    async def requests() -> AsyncIterator[insight_pb2.IngestInteractionsRequest]:
        yield insight_pb2.IngestInteractionsRequest()  # missing interaction

    # Each message is validated on its own: a bad one is rejected with its index and field
    # violations, and the stream (here empty otherwise) still succeeds.
    reply = await stub.IngestInteractions(requests(), metadata=_md(token))
    assert (reply.received, reply.ingested) == (1, 0)
    [rejected] = reply.rejected
    assert rejected.index == 0
    assert any(v.startswith("interaction:") for v in rejected.violations)


async def test_valid_request_reaches_the_handler(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    lead = scoring_pb2.Lead(lead_id="L-1", email="a@example.com", employee_count=200)
    reply = await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=lead), metadata=_md(token))
    assert reply.lead_id == "L-1"
    assert 0 <= reply.score <= 100


# A bespoke service on a real server, to show how handler failures come out on the wire.
_SERVICE = "test.Failing"


def _failing_server_handlers() -> grpc.GenericRpcHandler:
    async def crash(request: empty_pb2.Empty, context: object) -> empty_pb2.Empty:
        raise RuntimeError("secret database password is hunter2")

    async def conflict(request: empty_pb2.Empty, context: object) -> empty_pb2.Empty:
        raise ConflictError("request_id reused with another request", reason="REQUEST_ID_REUSED")

    kwargs: dict[str, Any] = {
        "request_deserializer": empty_pb2.Empty.FromString,
        "response_serializer": empty_pb2.Empty.SerializeToString,
    }
    return grpc.method_handlers_generic_handler(
        _SERVICE,
        {
            "Crash": grpc.unary_unary_rpc_method_handler(crash, **kwargs),
            "Conflict": grpc.unary_unary_rpc_method_handler(conflict, **kwargs),
        },
    )


@pytest.fixture
async def failing_channel() -> AsyncIterator[tuple[grpc.aio.Channel, Metrics]]:
    metrics = Metrics()
    server = grpc.aio.server(
        interceptors=[
            ServicePipeline(
                authenticator=Authenticator(
                    verifier=None, required_roles={f"/{_SERVICE}/Crash": "scoring.reader"}
                ),
                metrics=metrics,
            )
        ]
    )
    server.add_generic_rpc_handlers((_failing_server_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
            yield chan, metrics
    finally:
        await server.stop(0)


async def _call(chan: grpc.aio.Channel, name: str) -> ServiceError:
    rpc = chan.unary_unary(
        f"/{_SERVICE}/{name}",
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=empty_pb2.Empty.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc(empty_pb2.Empty())
    return ServiceError.from_rpc_error(caught.value)


async def test_unknown_exception_is_internal_with_correlation_id(
    failing_channel: tuple[grpc.aio.Channel, Metrics],
) -> None:
    chan, metrics = failing_channel
    err = await _call(chan, "Crash")
    assert err.code is grpc.StatusCode.INTERNAL
    assert "hunter2" not in err.message and "Traceback" not in err.message
    assert len(err.correlation_id) == 32
    assert err.metadata["correlationId"] == err.correlation_id
    assert metrics.rpc_total.labels(method=f"/{_SERVICE}/Crash", code="INTERNAL")._value.get() == 1


async def test_method_outside_role_table_is_denied(
    failing_channel: tuple[grpc.aio.Channel, Metrics],
) -> None:
    chan, _ = failing_channel
    err = await _call(chan, "Conflict")
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED")
