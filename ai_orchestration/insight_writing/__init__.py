"""Where models write words about customers: answers with citations, insight wording.

Apart from :mod:`ai_orchestration.insights` because it calls the LLM gateway, which records its
usage in storage, which in turn imports the insight vocabulary: the core stays below storage,
and this package sits above the gateway, storage and the core, so imports only point down.
"""

from ai_orchestration.insight_writing._ask import (
    DEFAULT_SOURCES,
    AnswerEnd,
    AskSettings,
    CustomerAnswers,
    PassageIndex,
    RankedHit,
    Retriever,
)
from ai_orchestration.insight_writing._generate import (
    HistorySource,
    InsightGenerator,
    InsightProgress,
    InsightSink,
    word_problems,
)

__all__ = [
    "DEFAULT_SOURCES",
    "AnswerEnd",
    "AskSettings",
    "CustomerAnswers",
    "HistorySource",
    "InsightGenerator",
    "InsightProgress",
    "InsightSink",
    "PassageIndex",
    "RankedHit",
    "Retriever",
    "word_problems",
]
