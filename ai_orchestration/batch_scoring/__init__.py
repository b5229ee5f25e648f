"""BatchScoreLeads' worker pool: chunks of leads scored in worker processes.

A worker is a child process that imports only the scoring core, the scoring messages
(:mod:`ai_orchestration.wire.scoring`) and storage's score encoding: never grpc, the servicers,
the LLM gateway or LangGraph, so it starts fast and stays small. :class:`BatchScorer` feeds the
pool chunk by chunk and writes the scores.
"""

from ai_orchestration.batch_scoring._batch import DEFAULT_CHUNK, BatchScorer
from ai_orchestration.batch_scoring._pool import WorkerLostError, WorkerPool

__all__ = [
    "DEFAULT_CHUNK",
    "BatchScorer",
    "WorkerLostError",
    "WorkerPool",
]
