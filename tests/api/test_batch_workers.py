"""BatchScoreLeads in worker processes: the same scores as in-process, stored on both backends,
models sent once per worker, errors, invalid requests and lost workers handled, workers stopped
with the server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc
from crm_ai_client import ServiceError
from google.protobuf.message import DecodeError

from ai_orchestration.batch_scoring import WorkerLostError, WorkerPool
from ai_orchestration.batch_scoring._batch import route_of
from ai_orchestration.batch_scoring._child import ChunkJob, ModelKey, ScoredChunk, score_leads
from ai_orchestration.scoring import (
    Deployment,
    ScoringSettings,
    ServingModel,
    generate_leads,
    to_matrix,
    train_model,
)
from ai_orchestration.server import Server
from tests.api._leads import lead_messages, metadata
from tests.conftest import TokenFactory, running_server, server_settings

_LEADS = lead_messages(generate_leads(300, seed=21).leads, "w")


def _model(seed: int, owner: str, version: str) -> ServingModel:
    data = generate_leads(5_000, seed=seed)
    trained = train_model(to_matrix(data.leads), data.converted, data.created_days, seed=seed)
    return ServingModel.load(owner, version, trained, trained.to_bytes())


@pytest.fixture(scope="module")
def experiment() -> Deployment:
    """A champion and a challenger (different models) splitting leads half and half."""
    settings = ScoringSettings(challenger_version="tenant-v2", challenger_share=0.5)
    return Deployment(settings, _model(1, "*", "global-v1"), _model(2, "acme", "tenant-v2"))


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(1)
    workers.start()
    await workers.wait_ready()
    yield workers
    await workers.close()


def _job(deployment: Deployment, leads: list[scoring_pb2.Lead], first_index: int = 0) -> ChunkJob:
    chunk = scoring_pb2.BatchScoreLeadsRequest(leads=leads).SerializeToString()
    return ChunkJob("acme", route_of(deployment), chunk, first_index, datetime.now(UTC))


class _Artifacts:
    """Hands out the deployment's artifacts, counting the requests per model."""

    def __init__(self, deployment: Deployment) -> None:
        self.models = {
            (m.owner, m.version): m for m in (deployment.champion, deployment.challenger) if m
        }
        self.sent: Counter[ModelKey] = Counter()

    def __call__(self, key: ModelKey) -> bytes:
        self.sent[key] += 1
        return self.models[key].artifact


def _without_ids(
    chunk: ScoredChunk,
) -> tuple[scoring_pb2.BatchScoreLeadsResponse, list[tuple[Any, ...]]]:
    response = scoring_pb2.BatchScoreLeadsResponse.FromString(chunk.response)
    for score in response.scores:
        score.score_id = ""
    return response, [row[:1] + row[2:] for row in chunk.rows.rows]


async def test_a_worker_scores_a_chunk_as_this_process_does(
    pool: WorkerPool, experiment: Deployment
) -> None:
    artifacts = _Artifacts(experiment)
    job = _job(experiment, _LEADS, first_index=1000)
    in_worker = await pool.score(job, artifacts)
    here = score_leads(experiment, job.tenant_id, _LEADS, job.first_index, job.now)
    assert in_worker.count == here.count == len(_LEADS)
    assert _without_ids(in_worker) == _without_ids(here)
    response = scoring_pb2.BatchScoreLeadsResponse.FromString(in_worker.response)
    assert response.first_index == 1000
    arms = Counter((s.experiment_arm, s.model_version) for s in response.scores)
    assert set(arms) == {("control", "global-v1"), ("challenger", "tenant-v2")}
    assert [row[0] for row in in_worker.rows.rows] == ["acme"] * len(_LEADS)


async def test_models_go_to_a_worker_once(pool: WorkerPool, experiment: Deployment) -> None:
    artifacts = _Artifacts(experiment)
    for start in range(0, 300, 100):
        await pool.score(_job(experiment, _LEADS[start : start + 100], start), artifacts)
    assert artifacts.sent == {("*", "global-v1"): 1, ("acme", "tenant-v2"): 1}


async def test_a_failing_job_raises_and_the_worker_goes_on(
    pool: WorkerPool, experiment: Deployment
) -> None:
    artifacts = _Artifacts(experiment)
    bad = ChunkJob("acme", route_of(experiment), b"\xff\xff not a message", 0, datetime.now(UTC))
    with pytest.raises(DecodeError):
        await pool.score(bad, artifacts)
    scored = await pool.score(_job(experiment, _LEADS[:10]), artifacts)
    assert scored.count == 10


async def test_a_killed_worker_fails_its_job_and_is_replaced(
    pool: WorkerPool, experiment: Deployment
) -> None:
    artifacts = _Artifacts(experiment)
    await pool.score(_job(experiment, _LEADS[:10]), artifacts)
    (victim,) = pool.pids
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerLostError):
        await pool.score(_job(experiment, _LEADS), artifacts)
    await pool.wait_ready()
    (replacement,) = pool.pids
    assert replacement != victim
    scored = await pool.score(_job(experiment, _LEADS[:10]), artifacts)
    assert scored.count == 10
    # The new worker had no model: it was sent them again.
    assert artifacts.sent == {("*", "global-v1"): 2, ("acme", "tenant-v2"): 2}


async def test_a_worker_leaves_ctrl_c_to_the_server(
    pool: WorkerPool, experiment: Deployment
) -> None:
    # A terminal's Ctrl-C reaches the whole process group; the server drains, then stops them.
    (pid,) = pool.pids
    os.kill(pid, signal.SIGINT)
    scored = await pool.score(_job(experiment, _LEADS[:10]), _Artifacts(experiment))
    assert scored.count == 10 and pool.pids == [pid]


async def test_close_stops_the_workers() -> None:
    workers = WorkerPool(2)
    workers.start()
    await workers.wait_ready()
    pids = workers.pids
    assert len(pids) == 2
    await workers.close()
    for pid in pids:  # reaped by close(): the ids are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not workers.ready


async def _batch(
    server: Server, leads: list[scoring_pb2.Lead], md: tuple[tuple[str, str], ...]
) -> list[scoring_pb2.BatchScoreLeadsResponse]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        request = scoring_pb2.BatchScoreLeadsRequest(leads=leads)
        return [chunk async for chunk in stub.BatchScoreLeads(request, metadata=md)]


def _sample(server: Server, name: str, **labels: str) -> float | None:
    return server.metrics.registry.get_sample_value(name, labels)


def _comparable(score: scoring_pb2.LeadScore) -> scoring_pb2.LeadScore:
    copy = scoring_pb2.LeadScore()
    copy.CopyFrom(score)
    copy.ClearField("score_id")
    copy.ClearField("score_time")
    copy.ClearField("expire_time")
    return copy


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_batch_in_workers_matches_a_thread_and_is_stored(
    backend: str, tmp_path: Path, token: TokenFactory, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {}
    if backend == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres_database_url")
    leads = lead_messages(generate_leads(2_300, seed=22).leads, "b")
    md = metadata(token())
    settings = server_settings(tmp_path / "workers", scoring_batch_workers=2, **overrides)
    async with running_server(settings) as server:
        assert server.batch_scoring.pool is not None
        await server.batch_scoring.pool.wait_ready()
        chunks = await _batch(server, leads, md)
        assert _sample(server, "aio_scoring_batch_workers") == 2
        assert _sample(server, "aio_scoring_batch_leads_total", where="worker") == len(leads)
        assert _sample(server, "aio_scoring_batch_leads_total", where="server") is None
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            stored = {}
            for index in (0, 1_500, 2_299):
                history = await stub.ListLeadScores(
                    scoring_pb2.ListLeadScoresRequest(lead_id=f"b-{index}"), metadata=md
                )
                stored[index] = list(history.scores)
    async with running_server(server_settings(tmp_path / "thread")) as server:
        threaded = await _batch(server, leads, md)
        assert _sample(server, "aio_scoring_batch_leads_total", where="server") == len(leads)

    assert [(c.first_index, len(c.scores)) for c in chunks] == [
        (0, 1000),
        (1000, 1000),
        (2000, 300),
    ]
    scores = [s for c in chunks for s in c.scores]
    assert [s.lead_id for s in scores] == [lead.lead_id for lead in leads]
    assert [_comparable(s) for s in scores] == [_comparable(s) for c in threaded for s in c.scores]
    # Stored as streamed, JSON columns included (encoded in the worker, not by the engine).
    for index, stored_scores in stored.items():
        assert stored_scores == [scores[index]]


async def test_a_batch_survives_its_worker_being_killed(
    tmp_path: Path, token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    leads = lead_messages(generate_leads(5_000, seed=23).leads, "k")
    settings = server_settings(tmp_path, scoring_batch_workers=1)
    async with running_server(settings) as server:
        pool = server.batch_scoring.pool
        assert pool is not None
        await pool.wait_ready()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            call = stub.BatchScoreLeads(
                scoring_pb2.BatchScoreLeadsRequest(leads=leads), metadata=metadata(token())
            )
            received: list[scoring_pb2.LeadScore] = []
            (victim,) = pool.pids
            async for chunk in call:
                if not received:
                    os.kill(victim, signal.SIGKILL)  # the chunk it held is scored here
                received.extend(chunk.scores)
        assert [s.lead_id for s in received] == [lead.lead_id for lead in leads]
        assert "in this process" in caplog.text
        here = _sample(server, "aio_scoring_batch_leads_total", where="server") or 0
        there = _sample(server, "aio_scoring_batch_leads_total", where="worker") or 0
        assert here >= 1000 and here + there == len(leads)
        await asyncio.wait_for(pool.wait_ready(), 60)
        assert len(pool.pids) == 1 and pool.pids != [victim]


@pytest.mark.parametrize("workers", [0, 2])
async def test_an_invalid_lead_fails_the_batch_and_stores_nothing(
    workers: int, tmp_path: Path, token: TokenFactory
) -> None:
    # Validated while the first chunks are scored: none of them may be stored or sent.
    leads = lead_messages(generate_leads(2_300, seed=24).leads, "v")
    leads[1_500].email = "not an address"
    md = metadata(token())
    async with running_server(server_settings(tmp_path, scoring_batch_workers=workers)) as server:
        if server.batch_scoring.pool is not None:
            await server.batch_scoring.pool.wait_ready()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            call = stub.BatchScoreLeads(
                scoring_pb2.BatchScoreLeadsRequest(leads=leads), metadata=md
            )
            received = []
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for chunk in call:
                    received.append(chunk)
            error = ServiceError.from_rpc_error(caught.value)
            assert error.code is grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in error.field_violations] == ["leads[1500].email"]
            assert received == []
            for lead_id in ("v-0", "v-999", "v-1000"):
                history = await stub.ListLeadScores(
                    scoring_pb2.ListLeadScoresRequest(lead_id=lead_id), metadata=md
                )
                assert list(history.scores) == []
