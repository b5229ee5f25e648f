"""The scoring RPCs' wire side: conversions between ``crm.ai.v1`` scoring messages and the
scoring core, and BatchScoreLeads' chunked scoring in worker processes.

Apart from ``api`` because a worker process imports it: it pulls in the scoring core, the
protobuf messages and storage, never grpc or the servicers (and so neither the LLM gateway nor
LangGraph).
"""

from ai_orchestration.scoring_rpc._batch import DEFAULT_CHUNK, BatchScorer
from ai_orchestration.scoring_rpc._messages import (
    batch_response,
    duration,
    lead_features,
    lead_message,
    lead_outcome,
    lead_score,
    scoring_model,
    settings_message,
    timestamp,
    training_event,
)
from ai_orchestration.scoring_rpc._pool import WorkerLostError, WorkerPool

__all__ = [
    "DEFAULT_CHUNK",
    "BatchScorer",
    "WorkerLostError",
    "WorkerPool",
    "batch_response",
    "duration",
    "lead_features",
    "lead_message",
    "lead_outcome",
    "lead_score",
    "scoring_model",
    "settings_message",
    "timestamp",
    "training_event",
]
