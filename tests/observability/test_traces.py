"""Traces of a real server, caught by the SDK's in-memory exporter.

The server is the real one (gRPC on port 0, SQLite, the LangGraph graphs, the LLM gateway
talking to the OpenAI-compatible test server); only where its spans go differs from
production (an in-memory exporter instead of OTLP).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc, workflow_pb2, workflow_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.observability import Tracing
from ai_orchestration.server import Server
from ai_orchestration.storage import Database
from tests.api._leads import hot_lead, metadata
from tests.api.conftest import write_llm_config
from tests.conftest import TokenFactory, server_settings
from tests.fixtures.llm_server import LlmTestServer

STREAM_RUN = "/crm.ai.v1.WorkflowService/StreamRun"
State = workflow_pb2.Run.State


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(
    tmp_path: Path, llm_server: LlmTestServer, exporter: InMemorySpanExporter
) -> AsyncIterator[Server]:
    settings = server_settings(
        tmp_path,
        llm_config_file=str(write_llm_config(tmp_path / "llm.yaml", llm_server)),
        llm_cache_ttl_seconds=0,
    )
    tracing = Tracing.exporting_to(SimpleSpanProcessor(exporter))
    async with Database.from_url(settings.resolved_database_url()) as database:
        await database.migrate()
        async with Server(settings=settings, database=database, tracing=tracing) as server:
            yield server


@contextlib.asynccontextmanager
async def _channel(server: Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield channel


def _by_id(spans: Iterable[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans if span.context is not None}


def _ancestors(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> Iterator[ReadableSpan]:
    parent = span.parent
    while parent is not None and parent.span_id in spans:
        span = spans[parent.span_id]
        yield span
        parent = span.parent


def _named(spans: Iterable[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


def _attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


async def test_a_stream_run_is_one_span_tree_from_the_rpc_to_the_llm_call(
    traced: Server, exporter: InMemorySpanExporter, token: TokenFactory
) -> None:
    md = metadata(token(tenant_id="acme"))
    request = workflow_pb2.StartRunRequest(
        request_id=str(uuid.uuid4()),
        lead_qualification=workflow_pb2.LeadQualificationInput(lead=hot_lead("traced-1")),
    )
    async with _channel(traced) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        events = [
            e async for e in stub.StreamRun(workflow_pb2.StreamRunRequest(run=request), metadata=md)
        ]
    run_id = events[0].run_id
    spans = exporter.get_finished_spans()
    rpc = [s for s in spans if s.name == STREAM_RUN]
    assert len(rpc) == 1 and rpc[0].kind is SpanKind.SERVER
    root = rpc[0]
    assert root.context is not None
    assert _attr(root, "crm.tenant_id") == "acme"
    assert _attr(root, "crm.request_id") == request.request_id
    assert _attr(root, "crm.correlation_id")
    trace_id = root.context.trace_id
    in_trace = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    tree = _by_id(in_trace)

    runs = _named(in_trace, "workflow.run ")
    assert [_attr(r, "crm.run_id") for r in runs] == [run_id]
    assert root in _ancestors(runs[0], tree)
    steps = _named(in_trace, "workflow.step ")
    assert {_attr(s, "crm.step") for s in steps} >= {"lead_analysis", "decision"}
    assert all(runs[0] in _ancestors(s, tree) for s in steps)

    chats = [s for s in in_trace if _attr(s, "gen_ai.operation.name") == "chat"]
    assert chats, [s.name for s in in_trace]
    chat = chats[0]
    assert chat.kind is SpanKind.CLIENT and chat.name == "chat fast"
    step = next(s for s in _ancestors(chat, tree) if s.name.startswith("workflow.step "))
    assert _attr(step, "crm.step") == "lead_analysis"
    assert _attr(chat, "gen_ai.provider.name") == "openai"
    assert _attr(chat, "gen_ai.request.model") == "fast"
    assert _attr(chat, "gen_ai.response.model") == "openai/test-model"
    assert _attr(chat, "gen_ai.usage.input_tokens") > 0
    assert _attr(chat, "gen_ai.usage.output_tokens") > 0
    assert _attr(chat, "crm.llm.cache_hit") is False
    assert _attr(chat, "crm.run_id") == run_id

    tools = [s for s in in_trace if _attr(s, "gen_ai.operation.name") == "execute_tool"]
    tool_events = [e.tool_call.tool for e in events if e.HasField("tool_call")]
    assert sorted(_attr(s, "gen_ai.tool.name") for s in tools) == sorted(tool_events)
    assert all(any(a in steps for a in _ancestors(s, tree)) for s in tools)


async def test_a_resumed_run_stays_in_its_trace_and_the_resume_call_links_to_it(
    traced: Server, exporter: InMemorySpanExporter, token: TokenFactory
) -> None:
    started_in, resumed_in = "11111111111111111111111111111111", "22222222222222222222222222222222"
    md = metadata(token())
    request = workflow_pb2.StartRunRequest(
        request_id=str(uuid.uuid4()),
        content_generation=workflow_pb2.ContentGenerationInput(
            recipient=workflow_pb2.Recipient(name="Ada Lovelace", company="Analytical Engines"),
            purpose="invite to the product webinar",
            channel=workflow_pb2.CHANNEL_EMAIL,
            key_points=["live demo"],
            require_approval=True,
        ),
    )
    async with _channel(traced) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        events = [
            e
            async for e in stub.StreamRun(
                workflow_pb2.StreamRunRequest(run=request),
                metadata=(*md, ("traceparent", f"00-{started_in}-{'a' * 16}-01")),
            )
        ]
        run_id = events[0].run_id
        run = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
        assert run.state == State.STATE_WAITING_FOR_INPUT
        await stub.ResumeRun(
            workflow_pb2.ResumeRunRequest(
                run_id=run_id,
                interrupt_id=run.pending_interrupt.interrupt_id,
                approve=workflow_pb2.Approval(),
            ),
            metadata=(*md, ("traceparent", f"00-{resumed_in}-{'b' * 16}-01")),
        )
        for _ in range(500):
            run = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
            if run.state == State.STATE_SUCCEEDED:
                break
            await asyncio.sleep(0.02)
    assert run.state == State.STATE_SUCCEEDED
    for _ in range(250):  # the execution's span ends just after the run's last write
        spans = exporter.get_finished_spans()
        executions = [s for s in _named(spans, "workflow.run ") if _attr(s, "crm.run_id") == run_id]
        if len(executions) == 2:
            break
        await asyncio.sleep(0.02)
    assert len(executions) == 2
    assert all(format(s.context.trace_id, "032x") == started_in for s in executions if s.context)
    assert sorted(_attr(s, "crm.run.resumed") for s in executions) == [False, True]
    (stream,) = [s for s in spans if s.name == STREAM_RUN]
    (resume,) = [s for s in spans if s.name.endswith("/ResumeRun")]
    assert resume.context is not None and format(resume.context.trace_id, "032x") == resumed_in
    assert stream.context is not None
    assert [link.context.span_id for link in resume.links] == [stream.context.span_id]


async def test_the_callers_trace_is_continued_and_a_refusal_carries_its_code(
    traced: Server, exporter: InMemorySpanExporter, token: TokenFactory
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    md = (*metadata(token()), ("traceparent", f"00-{trace_id}-{parent_id}-01"))
    async with _channel(traced) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=hot_lead("t-1")), metadata=md)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ScoreLead(
                scoring_pb2.ScoreLeadRequest(lead=scoring_pb2.Lead(lead_id="")), metadata=md
            )
    spans = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(spans) == 2
    ok, refused = spans
    for span in spans:
        assert span.context is not None and span.parent is not None
        assert format(span.context.trace_id, "032x") == trace_id
        assert format(span.parent.span_id, "016x") == parent_id
    assert ok.status.status_code is not StatusCode.ERROR
    assert _attr(ok, "rpc.grpc.status_code") == 0
    # The gRPC conventions: a server span is an error only for the server's faults (INTERNAL,
    # UNAVAILABLE, ...); a refused request is the caller's, recorded by its code.
    assert refused.status.status_code is StatusCode.UNSET
    assert _attr(refused, "rpc.grpc.status_code") == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_a_batch_has_a_span_per_chunk_under_its_rpc(
    traced: Server, exporter: InMemorySpanExporter, token: TokenFactory
) -> None:
    traced.batch_scoring.chunk = 10
    leads = [hot_lead(f"b-{i}") for i in range(25)]
    async with _channel(traced) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        call = stub.BatchScoreLeads(
            scoring_pb2.BatchScoreLeadsRequest(leads=leads), metadata=metadata(token())
        )
        answered = [r async for r in call]
    assert sum(len(r.scores) for r in answered) == 25
    spans = exporter.get_finished_spans()
    tree = _by_id(spans)
    (rpc,) = [s for s in spans if s.name.endswith("/BatchScoreLeads")]
    chunks = _named(spans, "scoring.batch")
    assert sorted(_attr(c, "crm.batch.first_index") for c in chunks) == [0, 10, 20]
    assert sorted(_attr(c, "crm.batch.leads") for c in chunks) == [5, 10, 10]
    assert all(rpc in _ancestors(c, tree) for c in chunks)


async def test_a_stream_written_with_context_write_survives_the_instrumentation(
    traced: Server, exporter: InMemorySpanExporter
) -> None:
    """The health service's Watch streams by ``context.write()``, which OpenTelemetry's
    interceptor cannot wrap (opentelemetry-python-contrib#3066); the pipeline behind it turns
    every handler into an async generator first."""
    async with _channel(traced) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await anext(aiter(call))
        call.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    # The server ends the span once it has seen the cancellation.
    for _ in range(250):
        watched = [s for s in exporter.get_finished_spans() if s.name.endswith("Health/Watch")]
        if watched:
            break
        await asyncio.sleep(0.02)
    assert len(watched) == 1 and watched[0].kind is SpanKind.SERVER


def test_tracing_is_off_unless_an_endpoint_is_set() -> None:
    assert not Tracing.from_environment({}).enabled
    assert Tracing.from_environment({}).server_interceptors() == []
    on = Tracing.from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    assert on.enabled and len(on.server_interceptors()) == 1
    assert "127.0.0.1:4317" in on.describe()
    on.shutdown()
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_SDK_DISABLED": "true"}
    assert not Tracing.from_environment(disabled).enabled
    http = Tracing.from_environment(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
    )
    assert http.enabled
    http.shutdown()
    sampled = Tracing.from_environment(
        {
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
    )
    assert sampled.provider is not None
    assert "TraceIdRatioBased{0.1}" in sampled.provider.sampler.get_description()
    sampled.shutdown()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "zipkin"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"}, "sometimes"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "1.5"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift",
            },
            "thrift",
        ),
    ],
)
def test_an_exporter_we_do_not_ship_is_refused_by_name(environ: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        Tracing.from_environment(environ)
    assert named in refused.value.message
