"""The server as operators run it, with every telemetry output on: JSON logs on stderr,
``/metrics``, and OTLP traces to a real receiver (rotel, an OpenTelemetry collector, in its own
process on loopback) that prints what it received."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import rotel
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc, workflow_pb2, workflow_pb2_grpc

from tests.api._leads import hot_lead, metadata
from tests.api.conftest import write_llm_config
from tests.conftest import SECRET, make_token
from tests.fixtures.llm_server import LlmTestServer
from tests.fixtures.ports import free_port
from tests.integration._replicas import start_server_process

ROTEL = Path(rotel.__file__).with_name("rotel-agent")
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
SCORE_LEAD = "/crm.ai.v1.ScoringService/ScoreLead"


def _wait_for_port(port: int, proc: subprocess.Popen[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the receiver exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """rotel on a free OTLP/gRPC port, printing every span it receives to a file."""
    port, printed = free_port(), tmp_path / "rotel.out"
    with printed.open("w") as out:
        proc = subprocess.Popen(
            [
                str(ROTEL),
                "start",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{port}",
                "--otlp-http-endpoint",
                f"127.0.0.1:{free_port()}",
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_for_port(port, proc)
            yield port, printed
        finally:
            proc.terminate()
            proc.wait(10)


def _serve(
    tmp_path: Path, otlp_port: int, metrics_port: int, **extra: str
) -> tuple[subprocess.Popen[str], str, list[str]]:
    """The server process, its address, and what it wrote until it listened; ``extra``: more
    environment variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIO_", "OTEL_"))}
    env.update(
        AIO_DATA_DIR=str(tmp_path / "data"),
        AIO_AUTH_HS256_SECRET=SECRET,
        AIO_SCORING_BOOTSTRAP_ROWS="5000",
        AIO_SCORING_BATCH_WORKERS="0",
        AIO_SHUTDOWN_GRACE_SECONDS="2",
        AIO_LOG_FORMAT="json",
        AIO_METRICS_PORT=str(metrics_port),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
        OTEL_BSP_SCHEDULE_DELAY="100",
        **extra,
    )
    return start_server_process(env)


def _json_lines(output: str) -> list[dict[str, Any]]:
    """Every log line, parsed: each one must be a JSON object."""
    lines = [line for line in output.splitlines() if line.strip()]
    logs = [line for line in lines if not line.startswith("ai-orchestration listening on")]
    # gRPC's C core writes its own lines (``E1206 ...``) to the same stream; they are not ours.
    ours = [line for line in logs if not re.match(r"^[EWID]\d{4} ", line)]
    return [json.loads(line) for line in ours]


def _received(printed: Path, trace_id: str, seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = printed.read_text()
        if trace_id in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"the receiver got no span of trace {trace_id}:\n{printed.read_text()}")


def test_json_logs_metrics_and_otlp_traces_of_one_call(
    tmp_path: Path, receiver: tuple[int, Path]
) -> None:
    otlp_port, printed = receiver
    metrics_port = free_port()
    proc, address, before = _serve(tmp_path, otlp_port, metrics_port)
    try:
        md = (
            *metadata(make_token(tenant_id="acme")),
            ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),
            ("x-correlation-id", "corr-42"),
        )
        with grpc.insecure_channel(address) as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=hot_lead("p-1")), metadata=md)
        scraped = (
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
            .read()
            .decode()
        )
        spans = _received(printed, TRACE_ID)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)

    assert proc.returncode == 0
    # The receiver got the RPC's span, in the caller's trace, from our service.
    assert f"Name           : {SCORE_LEAD}" in spans
    assert f"Parent ID      : {PARENT_ID}" in spans
    assert "service.name: Str(ai-orchestration)" in spans
    assert "crm.tenant_id: Str(acme)" in spans

    logs = _json_lines("".join(before) + output)
    started = [r for r in logs if r["message"].startswith("serving gRPC on")]
    assert len(started) == 1
    assert started[0]["grpc_address"] == address
    assert started[0]["metrics_url"] == f"http://127.0.0.1:{metrics_port}/metrics"
    assert f"OTLP http://127.0.0.1:{otlp_port}" in started[0]["message"]
    access = [r for r in logs if r["logger"] == "ai_orchestration.access"]
    assert len(access) == 1
    line = access[0]
    assert (line["method"], line["code"], line["tenant"]) == (SCORE_LEAD, "OK", "acme")
    assert line["correlation_id"] == "corr-42" and line["rpc"] == SCORE_LEAD
    assert line["trace_id"] == TRACE_ID and len(line["span_id"]) == 16
    assert line["duration_ms"] > 0 and line["peer"].startswith("ipv")
    for record in logs:
        assert {"time", "level", "logger", "message"} <= record.keys()

    # Every metric family is exposed, with its help text.
    for family in (
        "aio_rpc_requests",
        "aio_rpc_duration_seconds",
        "aio_gen_ai_client_token_usage",
        "aio_gen_ai_client_operation_duration_seconds",
        "aio_insight_interactions_ingested",
        "aio_insight_embedding_backlog",
        "aio_insight_alerts_raised",
        "aio_workflow_queue_depth",
    ):
        assert f"# HELP {family}" in scraped, family
    assert f'aio_rpc_requests_total{{code="OK",method="{SCORE_LEAD}"}} 1.0' in scraped


@dataclass(frozen=True)
class _Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: str


def _spans(printed: str) -> dict[str, _Span]:
    """The spans in the receiver's detailed debug output, by span id."""
    found: dict[str, _Span] = {}
    for block in printed.split("Span #")[1:]:
        fields = dict(re.findall(r"^\s*(Trace ID|Parent ID|ID|Name)\s*: ?(.*)$", block, re.M))
        span = _Span(fields["Trace ID"], fields["ID"], fields["Parent ID"], fields["Name"], block)
        found[span.span_id] = span
    return found


def _chain(span: _Span, spans: dict[str, _Span]) -> list[str]:
    names = [span.name]
    while span.parent_id in spans:
        span = spans[span.parent_id]
        names.append(span.name)
    return names


def test_a_stream_run_reaches_the_receiver_as_one_span_tree(
    tmp_path: Path, receiver: tuple[int, Path], llm_server: LlmTestServer
) -> None:
    otlp_port, printed = receiver
    config = write_llm_config(tmp_path / "llm.yaml", llm_server)
    proc, address, before = _serve(
        tmp_path, otlp_port, free_port(), AIO_LLM_CONFIG_FILE=str(config),
        AIO_LLM_CACHE_TTL_SECONDS="0",
    )  # fmt: skip
    trace_id = "5b8efff798038103d269b633813fc60c"
    try:
        md = (
            *metadata(make_token(tenant_id="acme")),
            ("traceparent", f"00-{trace_id}-{PARENT_ID}-01"),
        )
        run = workflow_pb2.StartRunRequest(
            request_id=str(uuid.uuid4()),
            lead_qualification=workflow_pb2.LeadQualificationInput(lead=hot_lead("p-2")),
        )
        with grpc.insecure_channel(address) as channel:
            stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
            events = list(stub.StreamRun(workflow_pb2.StreamRunRequest(run=run), metadata=md))
        assert events
        deadline = time.monotonic() + 20
        while "Name           : chat fast" not in _received(printed, trace_id):
            assert time.monotonic() < deadline, "no LLM call span arrived"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    # litellm's records are ours too: JSON, and each written once (its own handler is gone).
    logs = _json_lines("".join(before) + output)
    litellm = [r["message"] for r in logs if r["logger"].startswith("LiteLLM")]
    assert len(litellm) == len(set(litellm))
    spans = {k: v for k, v in _spans(printed.read_text()).items() if v.trace_id == trace_id}
    chat = next(s for s in spans.values() if s.name == "chat fast")
    assert _chain(chat, spans) == [
        "chat fast",
        "workflow.step lead_analysis",
        "workflow.run lead_qualification",
        "/crm.ai.v1.WorkflowService/StreamRun",
    ]
    (rpc,) = [s for s in spans.values() if s.name == "/crm.ai.v1.WorkflowService/StreamRun"]
    assert rpc.parent_id == PARENT_ID  # the caller's span
    assert "gen_ai.provider.name: Str(openai)" in chat.attributes
    assert "gen_ai.response.model: Str(openai/test-model)" in chat.attributes
