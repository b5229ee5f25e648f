"""IngestInteractions and the insight settings over real gRPC, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import grpc
import grpc.aio
import pytest
from crm.ai.v1 import insight_pb2, insight_pb2_grpc
from crm_ai_client import ServiceError
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from ai_orchestration.server import Server
from ai_orchestration.storage import Database, InteractionRepository
from tests.api._leads import metadata
from tests.conftest import TokenFactory, running_server, server_settings

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    Stub: TypeAlias = insight_pb2_grpc.InsightServiceAsyncStub

Request = insight_pb2.IngestInteractionsRequest
_T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
_INGEST = "/crm.ai.v1.InsightService/IngestInteractions"


@pytest.fixture(params=["sqlite", "postgres"])
async def insight_server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    overrides = {}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_database_url")
    async with running_server(server_settings(tmp_path, **overrides)) as running:
        yield running


@pytest.fixture
async def channel(insight_server: Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(insight_server.address) as chan:
        yield chan


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Stub:
    return insight_pb2_grpc.InsightServiceStub(channel)


def interaction(
    interaction_id: str,
    body: str,
    *,
    customer: str = "cust-1",
    subject: str = "Our contract",
    days: int = 0,
) -> insight_pb2.Interaction:
    stamp = Timestamp()
    stamp.FromDatetime(_T0 + timedelta(days=days))
    return insight_pb2.Interaction(
        interaction_id=interaction_id,
        customer_id=customer,
        kind=insight_pb2.Interaction.KIND_EMAIL,
        direction=insight_pb2.Interaction.DIRECTION_INBOUND,
        occur_time=stamp,
        subject=subject,
        body=body,
        participants=["ana@example.com"],
    )


async def stream(*messages: insight_pb2.Interaction | Request) -> AsyncIterator[Request]:
    for message in messages:
        yield message if isinstance(message, Request) else Request(interaction=message)


def writer(token: TokenFactory, tenant: str = "acme") -> tuple[tuple[str, str], ...]:
    return metadata(token(tenant_id=tenant, roles=["insight.writer"]))


async def test_bad_items_are_rejected_one_by_one(stub: Stub, token: TokenFactory) -> None:
    no_body = interaction("e-2", "")
    no_kind = interaction("e-3", "Hello")
    no_kind.kind = insight_pb2.Interaction.KIND_UNSPECIFIED
    bad_id = interaction("bad id with spaces", "Hello")
    reply = await stub.IngestInteractions(
        stream(
            interaction("e-1", "We love the product."),
            no_body,
            no_kind,
            Request(),
            bad_id,
            interaction("e-6", "Please send the invoice."),
        ),
        metadata=writer(token),
    )
    assert (reply.received, reply.ingested, reply.duplicates) == (6, 2, 0)
    rejected = {r.index: r for r in reply.rejected}
    assert sorted(rejected) == [1, 2, 3, 4]
    assert any(v.startswith("interaction.body:") for v in rejected[1].violations)
    assert any(v.startswith("interaction.kind:") for v in rejected[2].violations)
    assert any(v.startswith("interaction:") for v in rejected[3].violations)
    assert rejected[4].interaction_id == "bad id with spaces"
    assert any(v.startswith("interaction.interaction_id:") for v in rejected[4].violations)


async def test_undecodable_message_is_rejected_and_the_stream_goes_on(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    call = channel.stream_unary(
        _INGEST,
        request_serializer=lambda raw: raw,
        response_deserializer=insight_pb2.IngestInteractionsResponse.FromString,
    )
    good = Request(interaction=interaction("e-1", "Fine.")).SerializeToString()
    reply = await call(iter([b"\xff\xff\xff", good]), metadata=writer(token))
    assert (reply.received, reply.ingested) == (2, 1)
    assert reply.rejected[0].index == 0
    assert "does not decode" in reply.rejected[0].violations[0]


async def test_resent_interactions_are_duplicates_and_edits_are_refused(
    stub: Stub, insight_server: Server, token: TokenFactory
) -> None:
    first = interaction("e-1", "We plan to renew next year.")
    await stub.IngestInteractions(stream(first), metadata=writer(token))
    edited = interaction("e-1", "We will not renew.")
    reply = await stub.IngestInteractions(
        stream(first, edited, interaction("e-2", "New one.")), metadata=writer(token)
    )
    assert (reply.received, reply.ingested, reply.duplicates) == (3, 1, 1)
    [conflict] = reply.rejected
    assert (conflict.index, conflict.interaction_id) == (1, "e-1")
    assert "different content" in conflict.violations[0]
    assert insight_server.insights is not None
    history = await insight_server.insights.interactions.history("acme", "cust-1")
    assert [s.interaction.body for s in history] == ["We plan to renew next year.", "New one."]


async def test_signals_use_the_tenants_competitors(
    stub: Stub, insight_server: Server, token: TokenFactory
) -> None:
    admin = metadata(token(tenant_id="acme", roles=["insight.admin"]))
    settings = insight_pb2.InsightSettings(
        competitors=[insight_pb2.Competitor(name="Globex CRM", aliases=["Globex"])]
    )
    updated = await stub.UpdateInsightSettings(
        insight_pb2.UpdateInsightSettingsRequest(settings=settings), metadata=admin
    )
    assert list(updated.competitors) == list(settings.competitors)
    got = await stub.GetInsightSettings(insight_pb2.GetInsightSettingsRequest(), metadata=admin)
    assert got == updated
    body = "Honestly this is unacceptable. Globex offered us a better price; we may cancel."
    await stub.IngestInteractions(stream(interaction("e-1", body)), metadata=writer(token))
    assert insight_server.insights is not None
    [stored] = await insight_server.insights.interactions.history("acme", "cust-1")
    signals = stored.signals
    assert signals.competitors == ("Globex CRM",)
    assert signals.pricing and signals.churn_intent
    assert signals.sentiment.score < 0
    # Another tenant has its own (empty) list.
    other = metadata(token(tenant_id="globex", roles=["insight.reader"]))
    empty = await stub.GetInsightSettings(insight_pb2.GetInsightSettingsRequest(), metadata=other)
    assert list(empty.competitors) == []


async def test_invalid_settings_name_the_field(stub: Stub, token: TokenFactory) -> None:
    admin = metadata(token(roles=["insight.admin"]))
    clash = insight_pb2.InsightSettings(
        competitors=[
            insight_pb2.Competitor(name="Initech"),
            insight_pb2.Competitor(name="Umbrella", aliases=["initech"]),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateInsightSettings(
            insight_pb2.UpdateInsightSettingsRequest(settings=clash), metadata=admin
        )
    error = ServiceError.from_rpc_error(caught.value)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.field_violations] == ["settings.competitors[1].aliases[0]"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateInsightSettings(
            insight_pb2.UpdateInsightSettingsRequest(
                settings=insight_pb2.InsightSettings(), update_mask=FieldMask(paths=["colour"])
            ),
            metadata=admin,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_roles_and_tenants(stub: Stub, insight_server: Server, token: TokenFactory) -> None:
    reader = metadata(token(roles=["insight.reader"]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.IngestInteractions(stream(interaction("e-1", "Hi.")), metadata=reader)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    writer_only = writer(token)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateInsightSettings(
            insight_pb2.UpdateInsightSettingsRequest(settings=insight_pb2.InsightSettings()),
            metadata=writer_only,
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    await stub.IngestInteractions(stream(interaction("e-1", "Hi.")), metadata=writer(token))
    assert insight_server.insights is not None
    assert await insight_server.insights.interactions.history("globex", "cust-1") == []


async def test_a_stream_is_committed_in_batches(
    stub: Stub, insight_server: Server, token: TokenFactory
) -> None:
    count = 450  # more than two batches of 200
    reply = await stub.IngestInteractions(
        stream(*(interaction(f"e-{n}", f"Message {n}.", days=n % 50) for n in range(count))),
        metadata=writer(token),
    )
    assert (reply.ingested, len(reply.rejected)) == (count, 0)
    assert insight_server.insights is not None
    assert len(await insight_server.insights.interactions.history("acme", "cust-1")) == count


def _served(tmp_path: Path, database_url: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIO_")}
    env["AIO_DATA_DIR"] = str(tmp_path)
    env["AIO_DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_orchestration.cli", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if match := re.search(r"listening on (\S+)", line):
            return proc, match.group(1)
    proc.kill()
    raise AssertionError("server did not start")


def _bodies(count: int) -> Iterable[insight_pb2.Interaction]:
    return (interaction(f"k-{n}", f"Acknowledged message {n}.", days=n) for n in range(count))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sigkill_right_after_the_response_loses_nothing(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    database_url = f"sqlite:///{tmp_path}/ai-orchestration.db"
    if backend == "postgres":
        database_url = request.getfixturevalue("postgres_database_url")
    proc, address = _served(tmp_path, database_url)
    try:
        async with grpc.aio.insecure_channel(address) as chan:
            reply = await insight_pb2_grpc.InsightServiceStub(chan).IngestInteractions(
                stream(*_bodies(300))
            )
        os.kill(proc.pid, signal.SIGKILL)  # dev mode: the caller is tenant "dev"
    finally:
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert reply.ingested == 300
    async with Database.from_url(database_url) as database:
        history = await InteractionRepository(database=database).history("dev", "cust-1")
    assert sorted(s.interaction.interaction_id for s in history) == sorted(
        f"k-{n}" for n in range(300)
    )


async def test_alert_settings_round_trip_and_name_bad_fields(
    stub: Stub, token: TokenFactory
) -> None:
    admin = metadata(token(roles=["insight.admin"]))
    defaults = await stub.GetInsightSettings(
        insight_pb2.GetInsightSettingsRequest(), metadata=admin
    )
    assert list(defaults.alerts.disabled_kinds) == []
    assert defaults.alerts.negative_threshold == -0.5
    assert defaults.alerts.cooldown.ToTimedelta() == timedelta(hours=24)
    wanted = insight_pb2.AlertSettings(
        disabled_kinds=[insight_pb2.Alert.KIND_NEGATIVE_SENTIMENT],
        negative_threshold=-0.7,
        cooldown=Duration(seconds=0),
    )
    updated = await stub.UpdateInsightSettings(
        insight_pb2.UpdateInsightSettingsRequest(
            settings=insight_pb2.InsightSettings(alerts=wanted),
            update_mask=FieldMask(paths=["alerts"]),
        ),
        metadata=admin,
    )
    assert list(updated.alerts.disabled_kinds) == [insight_pb2.Alert.KIND_NEGATIVE_SENTIMENT]
    assert updated.alerts.negative_threshold == -0.7
    assert updated.alerts.cooldown.ToTimedelta() == timedelta(0)
    assert updated.alerts.churn_drop == 0.35  # untouched: the default
    assert list(updated.follow_up.kinds) == []  # no follow-ups unless asked for
    follow_up = insight_pb2.FollowUpSettings(
        kinds=[insight_pb2.Alert.KIND_CHURN_RISK], min_severity=insight_pb2.SEVERITY_HIGH
    )
    both = await stub.UpdateInsightSettings(
        insight_pb2.UpdateInsightSettingsRequest(
            settings=insight_pb2.InsightSettings(follow_up=follow_up),
            update_mask=FieldMask(paths=["follow_up"]),
        ),
        metadata=admin,
    )
    assert both.follow_up == follow_up
    assert both.alerts == updated.alerts  # outside the mask: kept
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateInsightSettings(
            insight_pb2.UpdateInsightSettingsRequest(
                settings=insight_pb2.InsightSettings(
                    alerts=insight_pb2.AlertSettings(negative_threshold=0.3, complaint_days=999),
                    competitors=[insight_pb2.Competitor(name="!!")],
                ),
            ),
            metadata=admin,
        )
    error = ServiceError.from_rpc_error(caught.value)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.field_violations} == {
        "settings.competitors[0].name",
        "settings.alerts.negative_threshold",
        "settings.alerts.complaint_days",
    }
