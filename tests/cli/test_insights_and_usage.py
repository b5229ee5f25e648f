"""``ask``, ``alerts watch`` and ``usage`` on a tenant with ingested interactions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import grpc.aio
from crm.ai.v1 import insight_pb2_grpc

from ai_orchestration.server import Server
from tests.api._leads import metadata
from tests.api.test_insight_ingest import interaction, stream
from tests.cli.conftest import Cli
from tests.fixtures.llm_server import LlmTestServer

DISCOUNT = "We need a 15% discount on the 40 seats before we sign the renewal."
CHURN = "This is unacceptable. We are going to cancel our subscription and switch vendors."


async def _ingest(
    server: Server, token: str, *items: tuple[str, str], customer: str = "cust-1"
) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = insight_pb2_grpc.InsightServiceStub(channel)
        reply = await stub.IngestInteractions(
            stream(
                *(interaction(i, body, customer=customer, subject="Renewal") for i, body in items)
            ),
            metadata=metadata(token),
        )
    assert reply.ingested == len(items)
    assert server.insights is not None
    await server.insights.worker.drain()


async def test_ask_streams_the_answer_then_the_citations_and_usage_counts_it(
    cli: Cli, cli_server: Server, llm_server: LlmTestServer
) -> None:
    await _ingest(cli_server, cli.token, ("e-1", DISCOUNT))
    llm_server.reply_with("They asked for a 15% discount on 40 seats [1].")
    done = await cli("ask", "cust-1", "What discount did they ask for?")
    assert done.code == 0, done.stderr
    answer, sources = done.stdout.split("\n\nsources:\n")
    assert answer == "They asked for a 15% discount on 40 seats [1]."
    assert sources.startswith("[1] e-1 (relevance ")
    assert "15% discount on the 40 seats" in sources

    assert cli_server.llm is not None
    await cli_server.llm.accountant.flush()  # usage records are written behind the answer
    usage = await cli("usage", "--json")
    assert usage.code == 0, usage.stderr
    report = json.loads(usage.stdout)
    assert int(report["usage"]["totals"]["calls"]) >= 1
    assert "budget" in report
    table = await cli("usage", "--by", "model", "--by", "day")
    assert table.code == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if " fast " in line)
    assert "cost_usd" in table.stdout and "monthly limit (USD)" in table.stdout
    assert row.split()[0:2] == ["│", "fast"]


async def test_ask_about_nobody_is_an_answer_without_sources(cli: Cli) -> None:
    done = await cli("ask", "nobody", "What did they say?")
    assert done.code == 0, done.stderr
    assert "sources:" in done.stdout
    bad = await cli("ask", "cust-1", "")
    assert bad.code == 1
    assert bad.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "\n  question: " in bad.stderr


async def test_alerts_watch_replays_then_follows(cli: Cli, cli_server: Server) -> None:
    await _ingest(cli_server, cli.token, ("e-1", CHURN))
    # A separate process (CliRunner swaps sys.stdout: one at a time) waits for cust-2's first
    # alert: the log replayed from the start holds none, so it comes live.
    watcher = asyncio.ensure_future(
        cli.process(
            "alerts", "watch", "--from-start", "--customer", "cust-2", "--limit", "1", "--json"
        )
    )
    first = await cli("alerts", "watch", "--from-start", "--limit", "2")
    assert first.code == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["#1", "#2"]
    assert all(" cust-1: " in line and line.endswith("[e-1]") for line in lines)
    assert any(" high churn_risk cust-1: " in line for line in lines)
    await _ingest(cli_server, cli.token, ("e-2", CHURN), customer="cust-2")
    done = await watcher
    assert done.code == 0, done.stderr
    (alert,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert alert["customer_id"] == "cust-2"
    assert alert["evidence"][0]["interaction_id"] == "e-2"
    assert int(alert["sequence"]) > 2
    unknown = await cli("alerts", "watch", "--kind", "weather")
    assert unknown.code == 2


async def test_ctrl_c_ends_a_watch_with_130_and_no_traceback(cli: Cli, cli_server: Server) -> None:
    await _ingest(cli_server, cli.token, ("e-1", CHURN))
    env = {**os.environ, "AIO_ADDRESS": cli.address, "AIO_TOKEN": cli.token}
    watch = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ai_orchestration.cli", "alerts", "watch", "--from-start"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert watch.stdout is not None and watch.stderr is not None
    try:
        first = await watch.stdout.readline()  # a replayed alert: it is watching now
        assert first.startswith(b"#1 ")
        watch.send_signal(signal.SIGINT)
        err = await watch.stderr.read()
        code = await watch.wait()
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
    assert code == 130
    assert b"Traceback" not in err
