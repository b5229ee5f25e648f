"""Two server processes sharing PostgreSQL and Redis: a run survives the death of its replica.

The run starts on one replica; the test watches it from the other, SIGKILLs the replica that
executes it once its first step is checkpointed, and checks that the survivor takes the run
over after the lease expires, resumes it from the checkpoint (the finished step does not run
again), streams it to the end with no gap, and delivers the message exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import uuid

import grpc.aio
import redis.asyncio as aioredis
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc

from ai_orchestration.storage import Database, DeliveryLedger, RunRepository
from ai_orchestration.workflows.engine._streams import GROUP, INDEX
from tests.api._leads import hot_lead, metadata
from tests.conftest import make_token
from tests.fixtures.llm_server import LlmTestServer
from tests.integration._replicas import Replica

State = workflow_pb2.Run.State
HOT = hot_lead("failover-1")


async def _owner_pid(runs: RunRepository, run_id: str) -> int:
    """The pid of the replica holding the run's lease (worker ids are host-pid-random)."""
    for _ in range(600):
        run = await runs.get_any(run_id)
        if run.state is not None and run.lease_owner:
            return int(run.lease_owner.rsplit("-", 2)[1])
        await asyncio.sleep(0.05)
    raise AssertionError("nobody claimed the run")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_a_run_survives_the_death_of_its_replica(
    workflow_replicas: list[Replica],
    postgres_database_url: str,
    redis_url: str,
    llm_server: LlmTestServer,
) -> None:
    llm_server.set_latency(1.0)  # every LLM call takes a second: time to kill mid-run
    md = metadata(make_token(tenant_id="failover"))
    (proc_a, address_a), (proc_b, address_b) = workflow_replicas
    async with (
        Database.from_url(postgres_database_url) as database,
        grpc.aio.insecure_channel(address_a) as channel_a,
        grpc.aio.insecure_channel(address_b) as channel_b,
    ):
        runs = RunRepository(database=database)
        start = workflow_pb2.StartRunRequest(
            request_id=str(uuid.uuid4()),
            lead_qualification=workflow_pb2.LeadQualificationInput(lead=HOT),
        )
        run = await workflow_pb2_grpc.WorkflowServiceStub(channel_a).StartRun(start, metadata=md)
        pid = await _owner_pid(runs, run.run_id)
        victim, survivor = (proc_a, channel_b) if pid == proc_a.pid else (proc_b, channel_a)
        assert pid == victim.pid

        events: list[workflow_pb2.RunEvent] = []
        second_step = asyncio.Event()

        async def watch() -> None:
            request = workflow_pb2.WatchRunRequest(run_id=run.run_id)
            stub = workflow_pb2_grpc.WorkflowServiceStub(survivor)
            async for event in stub.WatchRun(request, metadata=md, timeout=120):
                events.append(event)
                if event.step_started.step == "decision":
                    second_step.set()

        watching = asyncio.create_task(watch())
        # Durability is synchronous: once the decision step starts, the analysis step's
        # checkpoint is committed.
        await asyncio.wait_for(second_step.wait(), timeout=60)
        queue = aioredis.Redis.from_url(redis_url)
        # The replicas queue runs on Redis Streams: the run's entry is pending on the victim.
        entry = await queue.hget(INDEX, run.run_id)
        assert entry is not None
        stream, entry_id = _text(entry).split(" ")
        (pending,) = await queue.xpending_range(stream, GROUP, min="-", max="+", count=10)
        assert _text(pending["message_id"]) == entry_id
        assert _text(pending["consumer"]).split("-")[-2] == str(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        await asyncio.wait_for(watching, timeout=120)

        stub = workflow_pb2_grpc.WorkflowServiceStub(survivor)
        final = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run.run_id), metadata=md)
        if final.state == State.STATE_WAITING_FOR_INPUT:  # the rules asked a human: approve
            await stub.ResumeRun(
                workflow_pb2.ResumeRunRequest(
                    run_id=run.run_id,
                    interrupt_id=final.pending_interrupt.interrupt_id,
                    approve=workflow_pb2.Approval(),
                ),
                metadata=md,
            )
            after = workflow_pb2.WatchRunRequest(run_id=run.run_id, after_sequence=len(events))
            events += [e async for e in stub.WatchRun(after, metadata=md, timeout=120)]
            final = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run.run_id), metadata=md)

        assert final.state == State.STATE_SUCCEEDED, final
        assert final.attempts == 2  # the victim's, then the survivor's
        # The survivor's stream has every event once, in order, with no gap.
        assert [e.sequence for e in events] == list(range(1, final.last_sequence + 1))
        assert events[-1].state_changed.to == State.STATE_SUCCEEDED
        # Resumed from the checkpoint: the finished analysis step did not run again.
        analysis = [e for e in events if e.step_started.step == "lead_analysis"]
        assert len(analysis) == 1
        # The side-effect ledger holds exactly one delivery.
        deliveries = await DeliveryLedger(database=database).list_for_run("failover", run.run_id)
        assert len(deliveries) == 1
        assert final.output.lead_qualification.delivered
        # The survivor re-claimed the entry; acknowledged when the run ended, it is gone.
        assert await queue.hlen(INDEX) == 0 and not await queue.exists(stream)
        await queue.aclose()
