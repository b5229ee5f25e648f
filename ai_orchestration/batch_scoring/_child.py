"""What a scoring worker process runs: a chunk of a BatchScoreLeads request in, the chunk's
serialised response and its storage rows out.

A worker is ``python -m ai_orchestration.batch_scoring._worker_main`` (not multiprocessing, whose
``spawn`` re-imports the parent's main module: the whole service) and imports the scoring core,
the protobuf messages and the storage row encoding, never grpc or the other services: it is
ready in about 2 s and 160 MB where the service takes 8 s and 380 MB. Jobs and outcomes are
length-prefixed pickles on its standard input and output, between two processes of ours. The
models a job names are loaded once per worker and kept (:data:`KEPT_MODELS`); the parent knows
which, and sends an artifact only to a worker that lacks it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Final

from crm.ai.v1 import scoring_pb2
from threadpoolctl import threadpool_limits

from ai_orchestration.scoring import (
    Deployment,
    LeadInput,
    ScoringSettings,
    ServingModel,
    TrainedModel,
    compute_scores,
)
from ai_orchestration.storage import EncodedScoreRows, encode_score_rows
from ai_orchestration.wire.scoring import batch_response, lead_features

KEPT_MODELS: Final[int] = 8
"""Model versions a worker keeps loaded (least recently used dropped first)."""

READY: Final[str] = "ready"
OK: Final[str] = "ok"
ERROR: Final[str] = "error"
"""Kinds of the frames a worker writes: ``(READY, pid, ())`` once, then ``(OK, ScoredChunk,
loaded)`` or ``(ERROR, exception, loaded)`` per job, ``loaded`` being the model keys it holds
afterwards (so the parent's view of them cannot drift)."""
HEADER: Final[struct.Struct] = struct.Struct("!Q")
"""Each frame: its length as an unsigned 64-bit big-endian integer, then a pickle."""

ModelKey = tuple[str, str]
"""A model version by ``(owner, version)``: a tenant's versions and the global ones."""


@dataclass(frozen=True, slots=True)
class Route:
    """A tenant's deployment, by model keys instead of loaded models."""

    settings: ScoringSettings
    champion: ModelKey
    challenger: ModelKey | None

    def versions(self) -> tuple[ModelKey, ...]:
        """The versions the route scores with."""
        return (self.champion,) if self.challenger is None else (self.champion, self.challenger)


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """One chunk of a BatchScoreLeads call."""

    tenant_id: str
    route: Route
    leads: bytes
    """A serialised ``BatchScoreLeadsRequest`` holding the chunk's leads."""
    first_index: int
    """Index in the call's request of the chunk's first lead."""
    now: datetime
    """The scoring time (the parent's clock)."""
    models: dict[ModelKey, bytes] = field(default_factory=dict)
    """Artifacts (:meth:`TrainedModel.to_bytes`) of the route's versions this worker has not
    loaded yet."""


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A scored chunk: what goes on the wire and what goes in the database."""

    response: bytes
    """A serialised ``BatchScoreLeadsResponse``."""
    rows: EncodedScoreRows
    """The chunk's scores for :meth:`LeadScoreRepository.add_encoded`."""
    count: int
    """Scores in the chunk."""


_loaded: OrderedDict[ModelKey, ServingModel] = OrderedDict()


def _serving(job: ChunkJob) -> dict[ModelKey, ServingModel]:
    serving = {}
    for key in job.route.versions():
        model = _loaded.get(key)
        if model is None:
            artifact = job.models.get(key)
            if artifact is None:  # the parent tracks what each worker holds: a bug if reached
                raise LookupError(f"model {key} was neither sent nor loaded before")
            trained = TrainedModel.from_bytes(artifact)
            model = _loaded[key] = ServingModel.load(key[0], key[1], trained, artifact)
            while len(_loaded) > KEPT_MODELS:
                _loaded.popitem(last=False)
        _loaded.move_to_end(key)
        serving[key] = model
    return serving


def score_leads(
    deployment: Deployment,
    tenant_id: str,
    leads: Sequence[scoring_pb2.Lead],
    first_index: int,
    now: datetime,
) -> ScoredChunk:
    """Scores, explains and encodes a chunk with ``deployment`` (the same
    :func:`compute_scores` as every other scoring path): the whole work of a chunk, in a worker
    process or, without one, in a thread of the service."""
    inputs = [LeadInput(lead.lead_id, lead_features(lead)) for lead in leads]
    records = compute_scores(deployment, inputs, now)
    response = batch_response(records, first_index).SerializeToString()
    return ScoredChunk(response, encode_score_rows(tenant_id, records), len(records))


def score_chunk(job: ChunkJob) -> ScoredChunk:
    """:func:`score_leads` of the job's chunk with the models it names, loading those it
    carries."""
    serving = _serving(job)
    route = job.route
    champion = serving[route.champion]
    challenger = serving[route.challenger] if route.challenger is not None else None
    deployment = Deployment(route.settings, champion, challenger)
    leads = scoring_pb2.BatchScoreLeadsRequest.FromString(job.leads).leads
    return score_leads(deployment, job.tenant_id, leads, job.first_index, job.now)


def _read(stream: BinaryIO) -> object | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None  # the parent closed the pipe: time to go
    (size,) = HEADER.unpack(head)
    job: object = pickle.loads(stream.read(size))
    return job


def _write(stream: BinaryIO, value: object) -> None:
    """One length-prefixed pickle (the framing both ends use)."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _outcome(job: object) -> tuple[str, object]:
    if not isinstance(job, ChunkJob):
        return ERROR, TypeError(f"expected a ChunkJob, got {type(job).__name__}")
    try:
        return OK, score_chunk(job)
    except Exception as error:  # handed to the parent, which raises it for the call
        return ERROR, error


def serve() -> None:
    """The worker's loop: jobs on stdin, outcomes on stdout, until stdin closes.

    The protocol gets the original standard output to itself; file descriptor 1 is pointed at
    standard error, so a library that prints cannot corrupt a frame.
    """
    # The parent ends a worker by closing its input; a terminal's Ctrl-C, which reaches the
    # whole process group, is the parent's to handle (it drains, then closes).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # One OpenMP thread: the workers are the parallelism (two workers with two LightGBM threads
    # each on two cores spin against each other).
    threadpool_limits(limits=1)
    jobs = sys.stdin.buffer
    _write(replies, (READY, os.getpid(), ()))
    with contextlib.suppress(BrokenPipeError):  # the parent went away: so do we
        while (job := _read(jobs)) is not None:
            kind, value = _outcome(job)
            loaded = tuple(_loaded)
            try:
                _write(replies, (kind, value, loaded))
            except (pickle.PicklingError, TypeError, AttributeError):  # pickle refused it
                _write(replies, (ERROR, RuntimeError(repr(value)), loaded))
