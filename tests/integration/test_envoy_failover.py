"""Envoy (deploy/envoy/envoy.yaml, the real binary) in front of two server processes on
PostgreSQL and Redis: a replica dies and callers of the front do not notice it.

Unary calls and a StreamRun go through Envoy to both replicas. Then the replica serving the
StreamRun is SIGKILLed while callers keep scoring leads: every ScoreLead succeeds (Envoy
replays it on the other replica), and a WatchRun sent to Envoy after the last sequence received
continues on the survivor with no gap until the run ends.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc, workflow_pb2, workflow_pb2_grpc

from tests.api._leads import hot_lead, metadata
from tests.conftest import make_token
from tests.deploy._envoy import UPSTREAM_HEADER, Envoy, envoy_running, render
from tests.fixtures.llm_server import LlmTestServer
from tests.integration._replicas import Replica

State = workflow_pb2.Run.State
Metadata = tuple[tuple[str, str], ...]
SCORERS = 4
"""Callers scoring leads concurrently through the kill."""
BROKEN_STREAM = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE)
"""What a stream cut by the death of its replica ends with, through Envoy."""


@pytest.fixture
def envoy(tmp_path: Path, workflow_replicas: list[Replica]) -> Iterator[Envoy]:
    with envoy_running(
        render([address for _, address in workflow_replicas]), tmp_path / "envoy"
    ) as up:
        yield up


@pytest.fixture
async def front(envoy: Envoy) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to Envoy, the only address callers know."""
    async with grpc.aio.insecure_channel(envoy.address) as chan:
        yield chan


async def _served_by(call: grpc.aio.Call) -> str:
    """The replica Envoy sent the call to (the test config's response header)."""
    value = (await call.initial_metadata()).get(UPSTREAM_HEADER)
    assert isinstance(value, str), "no upstream header: did Envoy answer by itself?"
    return value


async def _score(stub: scoring_pb2_grpc.ScoringServiceAsyncStub, md: Metadata, n: int) -> str:
    call = stub.ScoreLead(scoring_pb2.ScoreLeadRequest(lead=hot_lead(f"envoy-{n}")), metadata=md)
    score = await call
    assert score.lead_id == f"envoy-{n}"
    return await _served_by(call)


class Scorers:
    """Callers scoring leads through Envoy, concurrently, until stopped; every outcome kept
    (the replica that answered, or the error) in the order the calls ended."""

    def __init__(self, stub: scoring_pb2_grpc.ScoringServiceAsyncStub, md: Metadata) -> None:
        self.outcomes: list[grpc.aio.AioRpcError | str] = []
        self._stub, self._md = stub, md
        self._stop = asyncio.Event()
        self._counted = asyncio.Condition()
        self._tasks = [asyncio.create_task(self._score(worker)) for worker in range(SCORERS)]

    async def _score(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                outcome: grpc.aio.AioRpcError | str = await _score(
                    self._stub, self._md, 1000 * (worker + 1) + n
                )
            except grpc.aio.AioRpcError as err:
                outcome = err
            async with self._counted:
                self.outcomes.append(outcome)
                self._counted.notify_all()
            await asyncio.sleep(0.005)  # busy, not flat out: the machine is shared

    async def wait_for(self, more: int) -> None:
        """Until ``more`` calls have ended from now."""
        async with self._counted:
            target = len(self.outcomes) + more
            await asyncio.wait_for(self._counted.wait_for(lambda: len(self.outcomes) >= target), 60)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def _watch_to_the_end(
    stub: workflow_pb2_grpc.WorkflowServiceAsyncStub,
    md: Metadata,
    run_id: str,
    events: list[workflow_pb2.RunEvent],
) -> tuple[workflow_pb2.Run, str]:
    """WatchRun after the last of ``events`` until the run ends (approving a hand-off to a
    human on the way); returns the run and the replica the first WatchRun reached."""
    watch = workflow_pb2.WatchRunRequest(run_id=run_id, after_sequence=events[-1].sequence)
    watching = stub.WatchRun(watch, metadata=md, timeout=120)
    served = await _served_by(watching)
    events += [event async for event in watching]
    final = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
    if final.state == State.STATE_WAITING_FOR_INPUT:  # the rules asked a human: approve
        resume = workflow_pb2.ResumeRunRequest(
            run_id=run_id,
            interrupt_id=final.pending_interrupt.interrupt_id,
            approve=workflow_pb2.Approval(),
        )
        await stub.ResumeRun(resume, metadata=md)
        after = workflow_pb2.WatchRunRequest(run_id=run_id, after_sequence=events[-1].sequence)
        events += [e async for e in stub.WatchRun(after, metadata=md, timeout=120)]
        final = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=md)
    return final, served


async def _answered_by_both(
    stub: scoring_pb2_grpc.ScoringServiceAsyncStub, md: Metadata, addresses: set[str]
) -> None:
    """Envoy balances per RPC over one HTTP/2 connection: both replicas answer unary calls."""
    served: set[str] = set()
    for n in range(50):
        served.add(await _score(stub, md, n))
        if served == addresses:
            break
    assert served == addresses


async def _out_of_rotation(envoy: Envoy, upstream: str) -> None:
    """Until Envoy's health checks have marked ``upstream`` failed (about 2 checks, 2 s apart)."""
    for _ in range(100):
        if "failed_active_hc" in envoy.health_flags(upstream):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{upstream} is still in rotation: {envoy.health_flags(upstream)}")


async def test_callers_of_envoy_do_not_notice_the_death_of_a_replica(
    workflow_replicas: list[Replica],
    envoy: Envoy,
    front: grpc.aio.Channel,
    llm_server: LlmTestServer,
) -> None:
    md: Metadata = metadata(make_token(tenant_id="envoy"))
    scoring = scoring_pb2_grpc.ScoringServiceStub(front)
    workflows = workflow_pb2_grpc.WorkflowServiceStub(front)
    addresses = {address: proc for proc, address in workflow_replicas}

    await _answered_by_both(scoring, md, set(addresses))
    llm_server.set_latency(1.0)  # every LLM call takes a second: time to kill mid-run
    start = workflow_pb2.StreamRunRequest(
        run=workflow_pb2.StartRunRequest(
            request_id=str(uuid.uuid4()),
            lead_qualification=workflow_pb2.LeadQualificationInput(lead=hot_lead("envoy-run")),
        )
    )
    stream = workflows.StreamRun(start, metadata=md, timeout=120)
    victim_address = await _served_by(stream)
    victim = addresses[victim_address]
    survivor = next(address for address in addresses if address != victim_address)
    events: list[workflow_pb2.RunEvent] = []
    while not events or events[-1].step_started.step != "decision":
        event = await stream.read()
        assert isinstance(event, workflow_pb2.RunEvent), "the run ended before its decision"
        events.append(event)

    scorers = Scorers(scoring, md)
    await scorers.wait_for(2 * SCORERS)
    scored_before_kill = len(scorers.outcomes)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    # The StreamRun broke with its replica (events already in flight still arrive). Envoy
    # resets a stream whose upstream died after answering (RST_STREAM INTERNAL_ERROR), which
    # gRPC reports as INTERNAL, not UNAVAILABLE: clients resume after either (README).
    with pytest.raises(grpc.aio.AioRpcError) as broken:
        while isinstance(event := await stream.read(), workflow_pb2.RunEvent):
            events.append(event)
    assert broken.value.code() in BROKEN_STREAM, broken.value

    # Resumed through Envoy after the last event received: on the survivor, to the end.
    final, watched_on = await _watch_to_the_end(workflows, md, events[0].run_id, events)
    await scorers.wait_for(5 * SCORERS)
    await scorers.stop()

    assert watched_on == survivor
    assert final.state == State.STATE_SUCCEEDED, final
    # StreamRun before the kill, WatchRun after it: every event once, in order, no gap.
    assert [e.sequence for e in events] == list(range(1, final.last_sequence + 1))
    assert events[-1].state_changed.to == State.STATE_SUCCEEDED
    # Every call made while and after the replica died succeeded; the survivor answered those
    # made after it (the first SCORERS to end may have been answered just before the kill).
    outcomes = scorers.outcomes
    failures = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert failures == [], failures[:3]
    assert set(outcomes[scored_before_kill + SCORERS :]) == {survivor}

    # The health checks took the dead replica out of rotation.
    await _out_of_rotation(envoy, victim_address)
    assert envoy.health_flags(survivor) == "healthy"

    # The access log has one JSON object per call, naming the RPC and the replica.
    lines = _access_log(envoy, until_rpc="/crm.ai.v1.WorkflowService/WatchRun")
    upstreams = {line["upstream"] for line in lines if line["rpc"].endswith("/ScoreLead")}
    assert set(addresses) <= upstreams
    watch_line = next(line for line in lines if line["rpc"].endswith("/WatchRun"))
    assert watch_line["upstream"] == survivor and str(watch_line["grpc_status"]) == "0"


def _access_log(envoy: Envoy, *, until_rpc: str) -> list[dict[str, Any]]:
    """The access log's lines, once one for ``until_rpc`` is written (Envoy flushes it to
    stdout about once a second)."""
    deadline = time.monotonic() + 15
    while True:
        written = envoy.access_log.read_text()
        complete = written[: written.rfind("\n") + 1]  # not a line Envoy is still writing
        lines = [json.loads(line) for line in complete.splitlines()]
        if any(line["rpc"] == until_rpc for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


async def test_callers_of_envoy_do_not_notice_a_replica_shutting_down(
    workflow_replicas: list[Replica], envoy: Envoy, front: grpc.aio.Channel
) -> None:
    """A rolling update: SIGTERM turns the replica's health NOT_SERVING and stops it after its
    grace period; Envoy takes it out of rotation and callers see no error."""
    md: Metadata = metadata(make_token(tenant_id="envoy"))
    scoring = scoring_pb2_grpc.ScoringServiceStub(front)
    (leaving, leaving_address), (_, staying) = workflow_replicas
    await _answered_by_both(scoring, md, {leaving_address, staying})

    scorers = Scorers(scoring, md)
    await scorers.wait_for(2 * SCORERS)
    leaving.terminate()
    await _out_of_rotation(envoy, leaving_address)
    await asyncio.to_thread(leaving.wait, 30)
    await scorers.wait_for(5 * SCORERS)
    await scorers.stop()

    failures = [o for o in scorers.outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert failures == [], failures[:3]
    # Once the replica was gone, the one that stayed answered.
    assert scorers.outcomes[-SCORERS:] == [staying] * SCORERS
