"""The domain's records that storage keeps: workflow runs and lead scoring.

A run's record, states, events, errors, usage and deliveries (re-exported by
:mod:`ai_orchestration.workflows`); scoring model versions, lead scores and outcomes
(re-exported by :mod:`ai_orchestration.scoring`). They import nothing of the service but each
other: storage stores them, the domain packages work with them, the API converts them to the
wire. They are a room of their own, below storage, because ``workflows`` and ``scoring`` sit
above storage (they use its repositories) while storage must speak their words. (The insight
core needs no storage at all, so its records stay in :mod:`ai_orchestration.insights`.)
"""

from ai_orchestration.records._json import JsonDoc, JsonValue
from ai_orchestration.records._runs import (
    TERMINAL_STATES,
    DeliveryRequest,
    EventKind,
    RunError,
    RunEvent,
    RunRecord,
    RunState,
    RunUsage,
)
from ai_orchestration.records._scoring import (
    GLOBAL_OWNER,
    MODEL_STATES,
    NewScoringModel,
    OutcomeRecord,
    ScoredOutcome,
    ScoreRecord,
    StoredScoringModel,
)

__all__ = [
    "GLOBAL_OWNER",
    "MODEL_STATES",
    "TERMINAL_STATES",
    "DeliveryRequest",
    "EventKind",
    "JsonDoc",
    "JsonValue",
    "NewScoringModel",
    "OutcomeRecord",
    "RunError",
    "RunEvent",
    "RunRecord",
    "RunState",
    "RunUsage",
    "ScoreRecord",
    "ScoredOutcome",
    "StoredScoringModel",
]
