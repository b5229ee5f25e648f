"""Two server processes sharing PostgreSQL and Redis: an alert raised by an ingest on one
replica reaches a WatchAlerts stream on the other through the bus (well before the watcher's
poll interval), and a watcher that reads slowly loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc.aio
import pytest
from crm.ai.v1 import insight_pb2, insight_pb2_grpc

from tests.api._leads import metadata
from tests.api.test_insight_ingest import interaction
from tests.conftest import make_token
from tests.integration._replicas import Replica, replicas_running

ANGRY = (
    "This is unacceptable. Our lawyers will be in touch and we are cancelling the contract at "
    "the end of the month."
)


@pytest.fixture
def replicas(tmp_path: Path, postgres_database_url: str, redis_url: str) -> Iterator[list[Replica]]:
    # The watchers' safety-net poll is an hour: an alert that arrives at all was woken through
    # Redis, the mechanism under test (no timing is asserted).
    with replicas_running(
        tmp_path,
        database_url=postgres_database_url,
        redis_url=redis_url,
        AIO_ALERT_WATCH_POLL_SECONDS="3600",
    ) as started:
        yield started


async def _requests(
    *messages: insight_pb2.Interaction,
) -> AsyncIterator[insight_pb2.IngestInteractionsRequest]:
    for message in messages:
        yield insight_pb2.IngestInteractionsRequest(interaction=message)


async def test_ingest_on_one_replica_alert_on_the_other(
    replicas: list[Replica],
) -> None:
    (_, address_a), (_, address_b) = replicas
    md = metadata(make_token(roles=["insight.writer"]))
    async with (
        grpc.aio.insecure_channel(address_a) as channel_a,
        grpc.aio.insecure_channel(address_b) as channel_b,
    ):
        on_a = insight_pb2_grpc.InsightServiceStub(channel_a)
        on_b = insight_pb2_grpc.InsightServiceStub(channel_b)
        watch = on_b.WatchAlerts(insight_pb2.WatchAlertsRequest(), metadata=md)
        first = asyncio.ensure_future(anext(aiter(watch)))
        await asyncio.sleep(0.5)  # B follows the log from its current end
        reply = await on_a.IngestInteractions(_requests(interaction("r-1", ANGRY)), metadata=md)
        assert reply.alerts_raised >= 1
        # B polls its log once an hour here: only A's wake-up through Redis can bring it.
        alert = await asyncio.wait_for(first, 30)
        watch.cancel()
    assert alert.evidence[0].interaction_id == "r-1"


async def test_a_slow_watcher_loses_nothing(
    replicas: list[Replica],
) -> None:
    (_, address_a), (_, address_b) = replicas
    md = metadata(make_token(roles=["insight.writer"]))
    count = 40
    async with (
        grpc.aio.insecure_channel(address_a) as channel_a,
        grpc.aio.insecure_channel(address_b) as channel_b,
    ):
        on_a = insight_pb2_grpc.InsightServiceStub(channel_a)
        on_b = insight_pb2_grpc.InsightServiceStub(channel_b)
        watch = on_b.WatchAlerts(insight_pb2.WatchAlertsRequest(after_sequence=0), metadata=md)
        stream = aiter(watch)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.5)
        # Each customer gets its own alerts (the cooldown is per customer and kind).
        reply = await on_a.IngestInteractions(
            _requests(*(interaction(f"s-{n}", ANGRY, customer=f"c-{n}") for n in range(count))),
            metadata=md,
        )
        raised = reply.alerts_raised
        assert raised >= count
        received = [await asyncio.wait_for(first, 10)]
        while len(received) < raised:
            await asyncio.sleep(0.02)  # a reader slower than the alerts arrive
            received.append(await asyncio.wait_for(anext(stream), 10))
        watch.cancel()
    sequences = [a.sequence for a in received]
    assert sequences == list(range(sequences[0], sequences[0] + raised))  # no gap, no repeat
    assert {a.customer_id for a in received} == {f"c-{n}" for n in range(count)}
